// The ingest worker for an external broker (Mosquitto, EMQX): a persistent session subscribed to
// every device topic at QoS 1 (durable-subscription.ts), acknowledging each message only once it is
// durable, so the broker keeps every message the spool does not yet hold.
import type { Logger } from 'pino';
import type { Intake, MessageBus, Source } from '../contract/source.ts';
import { deviceIdOf, topics } from '../contract/topics.ts';
import { DurableSubscription, roomInSpool } from './durable-subscription.ts';

export interface MqttWorkerOptions {
  url: string;
  clientId: string;
  username: string;
  password: string;
  /** ingest.maxPayloadBytes: a larger message is refused as payload_too_large. */
  maxPayloadBytes: number;
}

/**
 * Mosquitto's count of messages it acknowledged to a publisher and then dropped because a
 * subscriber's queue was full (max_queued_bytes): published every sys_interval seconds.
 */
export const MOSQUITTO_DROPPED_TOPIC = '$SYS/broker/publish/messages/dropped';

/** Room for a topic (at most 65,535 bytes, [MQTT 3.1.1] §1.5.3) and a packet id beside the largest payload. */
const TOPIC_ROOM_BYTES = 2 + 65_535 + 2;

/** A source (contract/source.ts) and the service's way to publish on the external broker. */
export class MqttIngestWorker implements Source, MessageBus {
  readonly name = 'mqtt-worker';
  private intake: Intake | null = null;
  private readonly subscription: DurableSubscription;
  /** The broker's own count of messages it dropped (Mosquitto), as last reported; null before any report. */
  private dropped: number | null = null;

  constructor(private readonly options: MqttWorkerOptions, private readonly log: Logger) {
    this.subscription = new DurableSubscription(
      {
        ...options,
        subscriptions: topics.ingestSubscriptions(),
        reports: [MOSQUITTO_DROPPED_TOPIC],
        qos: 1,
        label: 'the ingest worker',
        loginHint: 'are WASTE_BROKER_URL, WASTE_INGEST_USERNAME and WASTE_INGEST_PASSWORD right',
        aclHint: `its ACL must let ${options.username} read waste/#`,
        // Messages over the payload limit but within this are read and refused by validation;
        // larger ones are acknowledged unread, refused the same way.
        maxPacketBytes: options.maxPayloadBytes + TOPIC_ROOM_BYTES,
        refuseOversized: ({ topic, bytes }) =>
          this.intake?.reject({ reason: 'payload_too_large', message: `an MQTT packet of ${bytes} bytes; payloads of at most ${options.maxPayloadBytes} bytes are accepted`, deviceId: deviceIdOf(topic), topic, receivedAt: Date.now() }),
      },
      (topic, payload) => this.ingestDurably(topic, payload),
      log,
    );
  }

  async start(intake: Intake): Promise<void> {
    this.intake = intake;
    await this.subscription.start();
  }

  /** Publishes on the external broker (alerts, rejection reports); resolves once the broker has it. */
  publish(topic: string, payload: string | Buffer, options: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
    return this.subscription.publish(topic, payload, options);
  }

  stop(): Promise<void> {
    return this.subscription.stop();
  }

  /** Messages the broker says it dropped since it started; null where it does not say (not Mosquitto, or its ACL). */
  brokerDropped(): number | null {
    return this.dropped;
  }

  private async ingestDurably(topic: string, payload: Buffer): Promise<void> {
    if (topic === MOSQUITTO_DROPPED_TOPIC) return this.brokerReport(payload);
    const intake = this.intake!;
    await roomInSpool(intake, () => this.subscription.stopped, this.log);
    await intake.ingest({ topic, payload, receivedAt: Date.now() });
  }

  /**
   * Mosquitto acknowledges a device and then drops the message when the queue of a subscriber
   * that is away or behind is full: the device will not send it again, so this is data lost. It is
   * not said for whom, and the count starts at the broker's start.
   */
  private brokerReport(payload: Buffer): void {
    const count = Number(payload.toString());
    if (!Number.isSafeInteger(count) || count < 0) return;
    const before = this.dropped;
    this.dropped = count;
    if (count > (before ?? 0)) {
      this.log.error(
        { broker: this.options.url, dropped: count, since: before === null ? 'the broker started' : 'its last report' },
        `the broker dropped ${count - (before ?? 0)} messages it had acknowledged${before === null ? ' since it started' : ''}: a subscriber's queue was full (max_queued_bytes, docs/external-broker.md); if it was this worker's, those readings are lost`,
      );
    }
  }
}
