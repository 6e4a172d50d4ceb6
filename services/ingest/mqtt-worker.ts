// The ingest worker for an external broker (Mosquitto, EMQX): an mqtt.js client with a persistent
// session (clean = false, stable client id) subscribed at QoS 1, so what is published while it is
// down is queued by the broker and delivered when it returns. mqtt.js sends the PUBACK only after
// handleMessage calls back (mqtt.js README, "handleMessage"), and the worker calls back only once
// the message is durable: the broker keeps every message the spool does not yet hold.
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { Intake, MessageBus, Source } from '../contract/source.ts';
import { topics } from '../contract/topics.ts';

export interface MqttWorkerOptions {
  url: string;
  clientId: string;
  username: string;
  password: string;
}

const SPOOL_FULL_RETRY_MS = 1000;

/** A source (contract/source.ts) and the service's way to publish on the external broker. */
export class MqttIngestWorker implements Source, MessageBus {
  readonly name = 'mqtt-worker';
  private client: MqttClient | null = null;
  private intake: Intake | null = null;
  private stopping = false;

  constructor(
    private readonly options: MqttWorkerOptions,
    private readonly log: Logger,
  ) {}

  async start(intake: Intake): Promise<void> {
    this.intake = intake;
    const { url, clientId, username, password } = this.options;
    const client = mqtt.connect(url, {
      clientId,
      clean: false,
      username: username || undefined,
      password: password || undefined,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
    });
    this.client = client;
    client.handleMessage = (packet: IPublishPacket, callback: (error?: Error) => void) => {
      this.ingestDurably(packet).then(() => callback(), (error: Error) => {
        this.log.error({ topic: packet.topic, error: error.message }, 'could not make a message durable; not acknowledged, the broker will resend it');
        callback(error);
      });
    };
    client.on('error', (error) => this.log.warn({ broker: url, error: error.message }, 'MQTT error on the ingest connection'));
    client.on('offline', () => {
      if (!this.stopping) this.log.warn({ broker: url }, `broker ${url} is unreachable; retrying every second (check WASTE_BROKER_URL and the ingest credentials)`);
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.end(true);
        reject(new Error(`no connection to the broker at ${url} within 10 s: is it running, and are WASTE_INGEST_USERNAME and WASTE_INGEST_PASSWORD right?`));
      }, 10_000);
      client.once('connect', (connack) => {
        clearTimeout(timer);
        this.log.info({ broker: url, clientId, sessionPresent: connack.sessionPresent }, 'ingest worker connected');
        resolve();
      });
    });
    // mqtt.js rejects when any filter gets SUBACK 0x80 ([MQTT-3.9.3]).
    await client.subscribeAsync(topics.ingestSubscriptions(), { qos: 1 }).catch((error: Error) => {
      client.end(true);
      throw new Error(`the broker at ${url} refused the ingest subscriptions (${error.message}); its ACL must let ${username} read waste/#`);
    });
  }

  /** Publishes on the external broker (alerts, rejection reports); resolves once the broker has it. */
  async publish(topic: string, payload: string | Buffer, options: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
    if (!this.client) throw new Error('the ingest worker is not connected');
    await this.client.publishAsync(topic, payload, { qos: options.qos ?? 1, retain: options.retain ?? false });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const client = this.client;
    this.client = null;
    if (client) await client.endAsync(false);
  }

  /** While the spool is full, waits instead of acknowledging: the broker holds the backlog. */
  private async ingestDurably(packet: IPublishPacket): Promise<void> {
    const intake = this.intake!;
    while (!intake.accepting()) {
      if (this.stopping) throw new Error('stopping while the spool is full');
      this.log.error('the spool is full; holding deliveries at the broker until InfluxDB takes the backlog');
      await new Promise((resolve) => setTimeout(resolve, SPOOL_FULL_RETRY_MS));
    }
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    await intake.ingest({ topic: packet.topic, payload, receivedAt: Date.now() });
  }
}
