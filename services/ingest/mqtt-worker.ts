// The ingest worker for an external broker (Mosquitto, EMQX): a persistent session subscribed to
// every device topic at QoS 1 (durable-subscription.ts), acknowledging each message only once it is
// durable, so the broker keeps every message the spool does not yet hold.
import type { Logger } from 'pino';
import type { Intake, MessageBus, Source } from '../contract/source.ts';
import { topics } from '../contract/topics.ts';
import { DurableSubscription, roomInSpool } from './durable-subscription.ts';

export interface MqttWorkerOptions {
  url: string;
  clientId: string;
  username: string;
  password: string;
}

/** A source (contract/source.ts) and the service's way to publish on the external broker. */
export class MqttIngestWorker implements Source, MessageBus {
  readonly name = 'mqtt-worker';
  private intake: Intake | null = null;
  private readonly subscription: DurableSubscription;

  constructor(options: MqttWorkerOptions, private readonly log: Logger) {
    this.subscription = new DurableSubscription(
      {
        ...options,
        subscriptions: topics.ingestSubscriptions(),
        qos: 1,
        label: 'the ingest worker',
        loginHint: 'are WASTE_BROKER_URL, WASTE_INGEST_USERNAME and WASTE_INGEST_PASSWORD right',
        aclHint: `its ACL must let ${options.username} read waste/#`,
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

  private async ingestDurably(topic: string, payload: Buffer): Promise<void> {
    const intake = this.intake!;
    await roomInSpool(intake, () => this.subscription.stopped, this.log);
    await intake.ingest({ topic, payload, receivedAt: Date.now() });
  }
}
