// Store-and-forward: tickets go from the queue file to `waste/scales/{deviceId}/tickets` at QoS 1,
// oldest first, at most `maxInFlight` awaiting their PUBACK, and leave the queue only on the PUBACK.
// Each connection is a fresh client without automatic reconnection (as device-sim/run/transport.ts
// does): when it closes, its unacknowledged publishes fail and stay queued, and the next connection,
// after a backoff, sends them again from the oldest, byte for byte the same. A duplicate delivery
// after a lost PUBACK carries the same ticket_id and payload, which the service stores once.
// Status `{"online":true}` is published retained on each connection, with `{"online":false}` as the
// will (docs/mqtt.md "Status and will").
import { EventEmitter } from 'node:events';
import mqtt from 'mqtt';
import { topics } from '../../services/contract/topics.ts';
import type { Logger } from '../log.ts';
import { Backoff, type BackoffOptions } from '../backoff.ts';
import type { TicketQueue } from '../store/queue.ts';
import { explainMqttError } from './explain.ts';

export interface ForwarderOptions {
  url: string;
  deviceId: string;
  secret: string;
  maxInFlight: number;
  keepaliveS: number;
  connectTimeoutMs: number;
  reconnect: BackoffOptions;
}

export interface ForwarderStatus {
  connected: boolean;
  /** What went wrong last, in words; null once connected again. */
  problem: string | null;
  inFlight: number;
  /** Tickets acknowledged since start. */
  sent: number;
  connectedSince: number | null;
}

const ONLINE = '{"online":true}';
const OFFLINE = '{"online":false}';

export class Forwarder extends EventEmitter<{ sent: [ticketId: string]; connected: []; disconnected: [problem: string] }> {
  private client: mqtt.MqttClient | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = true;
  /** Queue position of the newest ticket published on the current connection. */
  private cursor = 0;
  private readonly inFlight = new Set<string>();
  private readonly backoff: Backoff;
  private readonly state: Omit<ForwarderStatus, 'inFlight'> = { connected: false, problem: null, sent: 0, connectedSince: null };

  constructor(
    private readonly options: ForwarderOptions,
    private readonly queue: TicketQueue,
    private readonly log: Logger,
  ) {
    super();
    this.backoff = new Backoff(options.reconnect);
  }

  get status(): ForwarderStatus {
    return { ...this.state, inFlight: this.inFlight.size };
  }

  get statusTopic(): string {
    return topics.status('scales', this.options.deviceId);
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  /** A ticket was queued: send it if the connection has room. */
  kick(): void {
    const client = this.client;
    if (!client?.connected) return;
    const topic = topics.data('scales', this.options.deviceId);
    for (const ticket of this.queue.after(this.cursor, Math.max(0, this.options.maxInFlight - this.inFlight.size))) {
      this.cursor = ticket.seq;
      this.inFlight.add(ticket.ticketId);
      client.publish(topic, ticket.payload, { qos: 1 }, (error) => {
        if (this.client === client) this.inFlight.delete(ticket.ticketId);
        // An error: the connection closed before the PUBACK; the ticket stays queued for the next one.
        if (error) return;
        this.queue.delete(ticket.ticketId);
        this.state.sent++;
        this.log.info({ ticket_id: ticket.ticketId }, 'ticket acknowledged by the broker');
        this.emit('sent', ticket.ticketId);
        this.kick();
      });
    }
  }

  /** Says offline (retained) if connected, and disconnects; what is unacknowledged stays queued. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const client = this.client;
    this.client = null;
    this.inFlight.clear();
    if (!client) return;
    if (client.connected) {
      await Promise.race([client.publishAsync(this.statusTopic, OFFLINE, { qos: 1, retain: true }).catch(() => undefined), new Promise((r) => setTimeout(r, 2_000).unref())]);
    }
    await client.endAsync(true).catch(() => undefined);
  }

  private connect(): void {
    const { url, deviceId, secret, keepaliveS, connectTimeoutMs } = this.options;
    const client = mqtt.connect(url, {
      username: deviceId,
      password: secret,
      clientId: deviceId,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: connectTimeoutMs,
      keepalive: keepaliveS,
      will: { topic: this.statusTopic, payload: Buffer.from(OFFLINE), qos: 1, retain: true },
    });
    this.client = client;
    let problem: string | null = null;
    client.on('connect', () => {
      if (this.client !== client) return;
      this.backoff.reset();
      this.cursor = 0;
      this.inFlight.clear();
      Object.assign(this.state, { connected: true, problem: null, connectedSince: Date.now() });
      this.log.info({ url, device_id: deviceId, waiting: this.queue.summary().waiting }, 'connected to the broker');
      client.publish(this.statusTopic, ONLINE, { qos: 1, retain: true });
      this.emit('connected');
      this.kick();
    });
    client.on('error', (error) => (problem = explainMqttError(error, url, deviceId)));
    client.on('close', () => {
      if (this.client !== client) return;
      this.client = null;
      // Fails the callbacks of what was not acknowledged (reconnectPeriod 0 with a clean session).
      client.end(true);
      this.inFlight.clear();
      const wasConnected = this.state.connected;
      const wait = this.backoff.next();
      const message = problem ?? (wasConnected ? `lost the connection to the broker at ${url}` : `could not connect to the broker at ${url}`);
      const again = message === this.state.problem;
      Object.assign(this.state, { connected: false, problem: message, connectedSince: null });
      if (this.stopped) return;
      this.timer = setTimeout(() => this.connect(), wait);
      // The same failure on every retry: a warning once, then debug (the status line repeats it).
      this.log[again ? 'debug' : 'warn']({ url, retry_in_ms: wait, waiting: this.queue.summary().waiting }, message);
      this.emit('disconnected', message);
    });
  }
}
