// A source of device data: something that receives traffic from devices (the embedded MQTT broker,
// the ingest worker on an external broker, the JT/T 808 gateway) and hands it to the pipeline
// (services/pipeline.ts) through the Intake below. Shaped like a Telegraf input: the pipeline
// builds the source with its configuration, calls start(intake) and stop(), and the source knows
// nothing else of the process. docs/architecture.md draws how the sources feed the pipeline.
import type { RejectReason, Rejection } from './rejections.ts';
import type { DeviceClass } from './topics.ts';

/** One message from a device, as the MQTT contract (docs/mqtt.md) carries it. */
export interface DeviceMessage {
  /** waste/{class}/{deviceId}/{channel}; the source has checked the device may use it. */
  topic: string;
  /** JSON, as sent by the device or as the source translated it (the JT/T 808 gateway). */
  payload: Buffer;
  /** Epoch ms when the message reached the service. */
  receivedAt: number;
}

export interface IntakeOutcome {
  accepted: number;
  rejected: number;
  /** What subscribers may see of the message: its accepted readings, or null when none were. */
  forward: Buffer | null;
}

/** What the pipeline offers a source. */
export interface Intake {
  /**
   * False while the spool has no room for one more message: the source refuses or holds new data
   * (no acknowledgement) so that devices keep it.
   */
  accepting(): boolean;
  /**
   * Validates one message and makes its accepted readings durable. The source acknowledges the
   * device only once this resolves; when it rejects (spool full, disk error) the device is not
   * acknowledged and sends the message again. Refused readings are reported by the pipeline.
   */
  ingest(message: DeviceMessage): Promise<IntakeOutcome>;
  /**
   * Counts and reports traffic the source refused itself (bad frames, foreign topics, oversized
   * packets). A report with `count` stands for that many; `counted` says they were counted
   * already, one by one as they came (countRefused), and the report only sums them up.
   */
  reject(rejection: Rejection, counted?: boolean): void;
  /** Counts refusals whose report the source withholds, to sum them up in one report later. */
  countRefused(reason: RejectReason, count: number): void;
  /** Records a device going online or offline (a login, a will, a closed connection). */
  deviceStatus(deviceClass: DeviceClass, deviceId: string, online: boolean): Promise<void>;
  /**
   * The source now receives these devices' messages, which another process received until now (a
   * RabbitMQ partition this worker took over): their state is rebuilt from what is stored before
   * they are judged here.
   */
  takeOver?(deviceIds: readonly string[]): void;
  /** The source no longer receives these devices' messages: another process does from now on. */
  release?(deviceIds: readonly string[]): void;
  /**
   * A message another worker accepted and stored, handed on to this one because it judges the
   * readings' subject (a weighing ticket forwarded to its truck's partition): validated again and
   * judged, not stored again.
   */
  judge?(message: DeviceMessage): void;
}

export interface Source {
  /** Named in logs and metrics: "mqtt", "mqtt-worker", "jt808". */
  readonly name: string;
  /** Opens the source's listeners or connections; from then on it hands traffic to the intake. */
  start(intake: Intake): Promise<void>;
  /** Stops taking traffic; what was handed to the intake before is not lost. */
  stop(): Promise<void>;
}

/** Publishing on the broker in use, for what the service itself tells subscribers (alerts, rejection reports, statuses). */
export interface MessageBus {
  /** Resolves once the broker has the message (QoS 1 by default). */
  publish(topic: string, payload: string | Buffer, options?: { qos?: 0 | 1; retain?: boolean }): Promise<void>;
}
