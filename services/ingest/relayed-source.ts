// A source whose devices reach this process directly (the JT/T 808 gateway's terminals), on a
// worker sharing a RabbitMQ cluster's partitions: its devices' messages are judged by the worker
// whose partition their device id maps to, like those of devices connected to the cluster, so
// they are relayed there. Each message is validated here (refusals counted and reported here, as
// for any source), and its accepted readings are published on the cluster's amq.topic under the
// device's own topic, as if the device had published them over MQTT; the source's device is
// answered once RabbitMQ confirms them, on a majority of nodes (quorum queues). The partition's
// worker stores and judges them. A device going online or offline is relayed as its status.
import type { Reading } from '../contract/payloads.ts';
import type { DeviceMessage, Intake, IntakeOutcome, MessageBus, Source } from '../contract/source.ts';
import type { RejectReason, Rejection } from '../contract/rejections.ts';
import { topics, type DeviceClass } from '../contract/topics.ts';
import type { IngestPipeline } from './pipeline.ts';

/** The cluster, as the relay needs it (ingest/rabbitmq-partitions.ts). */
export interface Cluster extends MessageBus {
  /** Whether a publish can be confirmed now. */
  connected(): boolean;
}

export class RelayedSource implements Source {
  readonly name: string;

  constructor(
    private readonly source: Source,
    private readonly pipeline: IngestPipeline,
    private readonly cluster: Cluster,
  ) {
    this.name = source.name;
  }

  start(): Promise<void> {
    return this.source.start(new RelayIntake(this.pipeline, this.cluster));
  }

  stop(): Promise<void> {
    return this.source.stop();
  }
}

class RelayIntake implements Intake {
  constructor(
    private readonly pipeline: IngestPipeline,
    private readonly cluster: Cluster,
  ) {}

  accepting(): boolean {
    return this.cluster.connected();
  }

  async ingest(message: DeviceMessage): Promise<IntakeOutcome> {
    const { outcome, readings } = this.pipeline.check(message);
    // Written again from the readings, not passed on as sent: only what was accepted goes.
    if (readings.length > 0) await this.cluster.publish(message.topic, JSON.stringify(readings.map(contractReading)));
    return outcome;
  }

  reject(rejection: Rejection, counted?: boolean): void {
    this.pipeline.reject(rejection, counted);
  }

  countRefused(reason: RejectReason, count: number): void {
    this.pipeline.countRefused(reason, count);
  }

  async deviceStatus(deviceClass: DeviceClass, deviceId: string, online: boolean): Promise<void> {
    await this.cluster.publish(topics.status(deviceClass, deviceId), JSON.stringify({ online }));
  }
}

/** A reading as the contract's payload carries it: without the kind and device the topic says, ts in epoch ms. */
function contractReading(reading: Reading): Record<string, unknown> {
  const { kind: _kind, deviceId: _deviceId, ...payload } = reading;
  return payload;
}
