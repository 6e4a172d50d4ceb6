// A persistent MQTT session on a broker the service does not run (an external device broker, a
// LoRaWAN network server's broker): an mqtt.js client with clean = false and a stable client id,
// subscribed at QoS 1, so that what is published while the service is down is queued by the broker
// and delivered when it returns. mqtt.js sends the PUBACK only once handleMessage calls back
// (mqtt.js README, "handleMessage"), and this calls back only once the handler resolves, that is
// once the message is durable: the broker keeps every message the spool does not yet hold.
//
// mqtt.js reads nothing more of the connection until the handler calls back, and a broker resends
// an unacknowledged message only on the next connection ([MQTT-4.4.0-1]). So a handler that fails
// (a disk error) is tried again here, with a growing wait, rather than left unacknowledged: that
// would hold one of the broker's in-flight slots for as long as the connection lasts. While the
// handler waits, the connection's keepalive goes unanswered and mqtt.js reconnects; the broker then
// delivers the message again on the new connection, and the handler still running for the old one
// gives up (its acknowledgement could no longer be sent). A handler may therefore be called for a
// message that an earlier call is still handling: the LoRaWAN bridge takes such a message once.
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { Intake } from '../contract/source.ts';
import { within } from '../within.ts';

export interface DurableSubscriptionOptions {
  url: string;
  clientId: string;
  username: string;
  password: string;
  subscriptions: string[];
  /** 1 for a persistent, acknowledged session; 0 where the broker offers nothing else (The Things Stack). */
  qos: 0 | 1;
  /** Who connects, in logs and errors: "the ingest worker", "network server cs-1". */
  label: string;
  /** What to check when the broker cannot be reached or refuses the login, in logs and errors. */
  loginHint: string;
  /** What the broker's ACL must allow, said when it refuses the subscriptions. */
  aclHint: string;
}

/** Handles one message; the broker is acknowledged once it resolves, and sends it again if it rejects. */
export type MessageHandler = (topic: string, payload: Buffer) => Promise<void>;

const CONNECT_TIMEOUT_MS = 10_000;
const SPOOL_FULL_RETRY_MS = 1000;
/** Waits before a failed handler is tried again: 1 s, doubling to 30 s. */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30_000;
/** How long stop() lets handlers in progress finish, so that their acknowledgements go out. */
const STOP_GRACE_MS = 5000;

export class DurableSubscription {
  private client: MqttClient | null = null;
  private stopping = false;
  /** Counts connections: a handler started on an earlier one can no longer acknowledge. */
  private connection = 0;
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly options: DurableSubscriptionOptions,
    private readonly handle: MessageHandler,
    private readonly log: Logger,
  ) {}

  get stopped(): boolean {
    return this.stopping;
  }

  async start(): Promise<void> {
    const { url, clientId, username, password, label, loginHint } = this.options;
    const client = mqtt.connect(url, {
      clientId,
      clean: false,
      username: username || undefined,
      password: password || undefined,
      reconnectPeriod: 1000,
      connectTimeout: CONNECT_TIMEOUT_MS,
    });
    this.client = client;
    client.handleMessage = (packet: IPublishPacket, callback: (error?: Error) => void) => {
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      const handled = this.handleUntilDone(packet.topic, payload, this.connection);
      this.running.add(handled);
      handled.then(() => callback(), (error: Error) => callback(error)).finally(() => this.running.delete(handled));
    };
    client.on('connect', () => this.connection++);
    client.on('error', (error) => this.log.warn({ broker: url, error: error.message }, `MQTT error on the connection of ${label}`));
    client.on('offline', () => {
      if (!this.stopping) this.log.warn({ broker: url }, `broker ${url} is unreachable for ${label}; retrying every second (${loginHint})`);
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.end(true);
        reject(new Error(`${label}: no connection to the broker at ${url} within ${CONNECT_TIMEOUT_MS / 1000} s: is it running, and ${loginHint}?`));
      }, CONNECT_TIMEOUT_MS);
      client.once('connect', (connack) => {
        clearTimeout(timer);
        this.log.info({ broker: url, clientId, sessionPresent: connack.sessionPresent }, `${label} connected`);
        resolve();
      });
    });
    // mqtt.js rejects when any filter gets SUBACK 0x80 ([MQTT-3.9.3]); a broker that never answers
    // would hold the start (and the service's) for ever.
    let timer: NodeJS.Timeout | undefined;
    const unanswered = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no SUBACK within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
    });
    await Promise.race([client.subscribeAsync(this.options.subscriptions, { qos: this.options.qos }), unanswered])
      .catch((error: Error) => {
        client.end(true);
        throw new Error(`${label}: the broker at ${url} refused the subscriptions ${this.options.subscriptions.join(', ')} (${error.message}); ${this.options.aclHint}`);
      })
      .finally(() => clearTimeout(timer));
  }

  /** Resolves once the broker has the message. */
  async publish(topic: string, payload: string | Buffer, options: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
    if (!this.client) throw new Error(`${this.options.label} is not connected`);
    await this.client.publishAsync(topic, payload, { qos: options.qos ?? 1, retain: options.retain ?? false });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const client = this.client;
    this.client = null;
    // Handlers about to finish send their acknowledgements; the rest give up and their messages
    // come again at the next start.
    if (this.running.size > 0) await within(Promise.allSettled([...this.running]), STOP_GRACE_MS);
    if (client) await client.endAsync(false);
  }

  /** Runs the handler until it succeeds, or until its acknowledgement could no longer be sent. */
  private async handleUntilDone(topic: string, payload: Buffer, connection: number): Promise<void> {
    for (let waitMs = RETRY_FIRST_MS; ; waitMs = Math.min(waitMs * 2, RETRY_MAX_MS)) {
      try {
        return await this.handle(topic, payload);
      } catch (error) {
        const gone = this.stopping || connection !== this.connection;
        this.log.error(
          { topic, error: (error as Error).message },
          gone
            ? 'could not make a message durable; not acknowledged, the broker sends it again on the next connection'
            : `could not make a message durable; trying again in ${waitMs / 1000} s (the broker holds what follows)`,
        );
        if (gone) throw error;
        await new Promise((resolve) => setTimeout(resolve, waitMs));
      }
    }
  }
}

/**
 * Resolves once the spool has room for a message; while it is full, waits instead of
 * acknowledging, so that the broker holds the backlog. Rejects when `stopping` turns true.
 */
export async function roomInSpool(intake: Intake, stopping: () => boolean, log: Logger): Promise<void> {
  while (!intake.accepting()) {
    if (stopping()) throw new Error('stopping while the spool is full');
    log.error('the spool is full; holding deliveries at the broker until InfluxDB takes the backlog');
    await new Promise((resolve) => setTimeout(resolve, SPOOL_FULL_RETRY_MS));
  }
}
