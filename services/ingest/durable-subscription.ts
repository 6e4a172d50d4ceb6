// A persistent MQTT session on a broker the service does not run (an external device broker, a
// LoRaWAN network server's broker): an mqtt.js client with clean = false and a stable client id,
// subscribed at QoS 1, so that what is published while the service is down is queued by the broker
// and delivered when it returns. mqtt.js sends the PUBACK only once handleMessage calls back
// (mqtt.js README, "handleMessage"), and this calls back only once the handler resolves, that is
// once the message is durable: the broker keeps every message the spool does not yet hold.
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { Intake } from '../contract/source.ts';

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

export class DurableSubscription {
  private client: MqttClient | null = null;
  private stopping = false;

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
      this.handle(packet.topic, payload).then(() => callback(), (error: Error) => {
        this.log.error({ topic: packet.topic, error: error.message }, 'could not make a message durable; not acknowledged, the broker will resend it');
        callback(error);
      });
    };
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
    // mqtt.js rejects when any filter gets SUBACK 0x80 ([MQTT-3.9.3]).
    await client.subscribeAsync(this.options.subscriptions, { qos: this.options.qos }).catch((error: Error) => {
      client.end(true);
      throw new Error(`${label}: the broker at ${url} refused the subscriptions ${this.options.subscriptions.join(', ')} (${error.message}); ${this.options.aclHint}`);
    });
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
    if (client) await client.endAsync(false);
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
