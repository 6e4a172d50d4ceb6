// One path for every message, whichever source it came from (contract/source.ts: the embedded
// broker, the ingest worker on an external broker, the JT/T 808 gateway): validate, convert to
// points, tell the listeners (rules, sorting), and make durable in the spool. The source
// acknowledges the device once ingest() resolves; a rejection of the spool (full, disk error)
// propagates so the message is not acknowledged and the device keeps it. The order of it all is
// declared in services/pipeline.ts.
import type { Logger } from 'pino';
import type { Reading, TicketReading } from '../contract/payloads.ts';
import type { DeviceMessage, Intake, IntakeOutcome, MessageBus } from '../contract/source.ts';
import { DEVICE_CLASSES, REJECTED_TOPIC, deviceIdOf, parseDeviceTopic, type DeviceClass } from '../contract/topics.ts';
import type { Spool } from '../spool/spool.ts';
import { readingToLine } from './points.ts';
import { RejectionCounter, rejectionPayload, type RejectReason, type Rejection } from '../contract/rejections.ts';
import { validateMessage, type ValidationLimits } from './validate.ts';


/** Told of every message's accepted readings, before they are durable (see store()). */
export type ReadingsListener = (readings: Reading[]) => void;

/** Where the pipeline's results go besides the spool, given at construction. */
export interface IngestOutputs {
  /** In this order: the rules, then the separation-rate job. */
  listeners?: readonly ReadingsListener[];
  /** Where rejection reports are published on waste/ingest/rejected (the broker in use). */
  reports?: MessageBus | null;
  /**
   * Told when devices move to or from this process (Intake.takeOver, release), and of readings
   * stored by another that are this one's to judge (Intake.judge): the rules.
   */
  handover?: { takeOver(deviceIds: readonly string[]): void; release(deviceIds: readonly string[]): void; judge(readings: readonly Reading[]): void } | null;
  /**
   * Where accepted weighing tickets go to be judged, when that is another worker's (partitioned
   * workers judge a ticket with its truck): a device's message is acknowledged only once this
   * resolves too. Null: the listeners judge them here.
   */
  forwardTickets?: ((tickets: readonly TicketReading[]) => Promise<void>) | null;
}

/** Rejections logged one by one per stats interval; the rest appear in the periodic summary. */
const DETAILED_REJECTION_LOGS = 20;
/** Refused readings of one message reported one by one on waste/ingest/rejected; the rest are summed up per reason. */
const REPORTS_PER_MESSAGE = 10;
/**
 * Longest stretch of the event loop ingest takes before letting other work in. One message is
 * never cut (its readings are validated and handed on together), so the loop is held for at most
 * this or one message, whichever is longer.
 */
const INGEST_SLICE_MS = 10;

export class IngestPipeline implements Intake {
  received = 0;
  /** Messages per device class, on contract topics (the rest count in `received` only). */
  readonly receivedByClass = Object.fromEntries(DEVICE_CLASSES.map((c) => [c, 0])) as Record<DeviceClass, number>;
  accepted = 0;
  readonly rejections = new RejectionCounter();
  private detailedLogs = 0;
  /** Messages that arrived after a slice was spent: per topic, oldest first; topics in turn. */
  private readonly waiting = new Map<string, (() => void)[]>();
  private waitingCount = 0;
  private sliceScheduled = false;
  private sliceStart = 0;
  private readonly listeners: readonly ReadingsListener[];
  private readonly reports: MessageBus | null;
  private readonly handover: IngestOutputs['handover'];
  private readonly forwardTickets: IngestOutputs['forwardTickets'];

  constructor(
    private readonly spool: Spool,
    private readonly limits: ValidationLimits,
    private readonly log: Logger,
    outputs: IngestOutputs = {},
    private readonly clock: () => number = Date.now,
  ) {
    this.listeners = outputs.listeners ?? [];
    this.reports = outputs.reports ?? null;
    this.handover = outputs.handover ?? null;
    this.forwardTickets = outputs.forwardTickets ?? null;
  }

  takeOver(deviceIds: readonly string[]): void {
    this.handover?.takeOver(deviceIds);
  }

  release(deviceIds: readonly string[]): void {
    this.handover?.release(deviceIds);
  }

  judge(message: DeviceMessage): void {
    // Only workers forward, only weighing tickets, and only what they validated: anything else
    // here is a fault (or a forgery) worth the same report as a device's.
    const topic = parseDeviceTopic(message.topic);
    if (topic?.deviceClass !== 'scales' || topic.channel !== 'tickets') {
      // The topic came in a header, not through a broker's topic rules: quoted short.
      const quoted = message.topic.slice(0, 200);
      this.reject({ reason: 'unknown_topic', message: `a forwarded message names ${quoted}, not a weighbridge's tickets`, deviceId: null, topic: quoted, receivedAt: message.receivedAt });
      return;
    }
    const { readings, rejections } = validateMessage(topic, message.topic, message.payload, message.receivedAt, this.limits);
    this.rejectAll(rejections);
    if (readings.length > 0) this.handover?.judge(readings);
  }

  /**
   * False while the spool has no room for one more message of the largest accepted size: callers
   * refuse or hold new data so devices keep it.
   */
  accepting(): boolean {
    return !this.spool.isFull(this.limits.maxPayloadBytes);
  }

  /**
   * Takes one message; resolves once its accepted readings are durable. Messages are processed in
   * slices of at most INGEST_SLICE_MS of the event loop: one that arrives after a slice is spent
   * waits for a later turn of the loop, so a device sending its largest batches back to back
   * (aedes handles every packet of one socket read in one go) cannot hold other devices' PUBACKs,
   * the API and the shipper for longer than one of its messages takes. Waiting messages are taken
   * one topic (one device's channel) at a time, in turn, each topic's in the order they came: a
   * device with many waiting does not make the others wait behind all of them.
   */
  ingest(message: DeviceMessage): Promise<IntakeOutcome> {
    if (this.waiting.size === 0 && performance.now() - this.sliceStart < INGEST_SLICE_MS) return this.process(message);
    return new Promise((resolve, reject) => {
      // Queued per topic, which names one device's channel: parsing it for the device id cost
      // more than the rest of the queueing at 30,000 messages/s.
      const run = () => void this.process(message).then(resolve, reject);
      const queue = this.waiting.get(message.topic);
      if (queue) queue.push(run);
      else this.waiting.set(message.topic, [run]);
      this.waitingCount++;
      if (!this.sliceScheduled) {
        this.sliceScheduled = true;
        setImmediate(this.nextSlice);
      }
    });
  }

  /** Messages waiting for a slice (a measure of how far behind ingest is). */
  waitingMessages(): number {
    return this.waitingCount;
  }

  private readonly nextSlice = (): void => {
    this.sliceScheduled = false;
    this.sliceStart = performance.now();
    while (this.waiting.size > 0 && performance.now() - this.sliceStart < INGEST_SLICE_MS) {
      // A Map iterates in insertion order: the topic first in line runs one message and, if it
      // has more, goes to the back of the line.
      const [topic, queue] = this.waiting.entries().next().value!;
      this.waiting.delete(topic);
      const run = queue.shift()!;
      if (queue.length > 0) this.waiting.set(topic, queue);
      this.waitingCount--;
      run();
    }
    if (this.waiting.size > 0) {
      this.sliceScheduled = true;
      setImmediate(this.nextSlice);
    }
  };

  /** Validates and stores one message: synchronous up to the spool's append. */
  private async process(message: DeviceMessage): Promise<IntakeOutcome> {
    const { outcome, readings, lines } = this.examine(message);
    if (readings.length > 0) await this.store(readings, lines);
    return outcome;
  }

  /**
   * Validates one message, counting and reporting what it refuses, without telling the listeners
   * or storing anything: a source relaying its devices' messages to the worker that judges them
   * (ingest/relayed-source.ts) sends the accepted readings on, to be ingested there.
   */
  check(message: DeviceMessage): { outcome: IntakeOutcome; readings: Reading[] } {
    const { outcome, readings } = this.examine(message);
    return { outcome, readings };
  }

  private examine(message: DeviceMessage): { outcome: IntakeOutcome; readings: Reading[]; lines: string } {
    const refused = (outcome: IntakeOutcome) => ({ outcome, readings: [], lines: '' });
    this.received++;
    const topic = parseDeviceTopic(message.topic);
    if (!topic) {
      this.reject({
        reason: 'unknown_topic',
        message: `topic ${message.topic.slice(0, 200)} is not waste/{bins|trucks|scales}/{deviceId}/{telemetry|position|tickets|status}`,
        deviceId: deviceIdOf(message.topic),
        topic: message.topic,
        receivedAt: message.receivedAt,
      });
      return refused({ accepted: 0, rejected: 1, forward: null });
    }
    this.receivedByClass[topic.deviceClass]++;
    let result: ReturnType<typeof validateMessage>;
    let lines = '';
    try {
      result = validateMessage(topic, message.topic, message.payload, message.receivedAt, this.limits);
      for (const reading of result.readings) lines += readingToLine(reading) + '\n';
    } catch (error) {
      // Validation refuses one reading at a time and does not throw; this is the backstop for what
      // nobody foresaw. The message is refused and counted, so the device gets its PUBACK and does
      // not resend the same poison for ever, and the rest of its traffic flows.
      this.reject({ reason: 'unprocessable', message: `the message could not be processed: ${(error as Error).message.slice(0, 200)}`, deviceId: topic.deviceId, topic: message.topic, receivedAt: message.receivedAt });
      return refused({ accepted: 0, rejected: 1, forward: null });
    }
    const { readings, rejections, forward } = result;
    this.rejectAll(rejections);
    return { outcome: { accepted: readings.length, rejected: rejections.length, forward }, readings, lines };
  }

  /** Records a device going online or offline, as its source saw it (a login, a will, a closed connection). */
  async deviceStatus(deviceClass: DeviceClass, deviceId: string, online: boolean): Promise<void> {
    const status: Reading = { kind: 'status', deviceClass, deviceId, online, ts: this.clock() };
    await this.store([status], readingToLine(status) + '\n');
  }

  /** Counts (as many as rejection.count says, one by default, unless counted already), logs and reports a refusal of a source's own. */
  reject(rejection: Rejection, counted = false): void {
    if (!counted) this.rejections.add(rejection.reason, rejection.count ?? 1);
    if (this.detailedLogs < DETAILED_REJECTION_LOGS) {
      this.detailedLogs++;
      this.log.warn({ deviceId: rejection.deviceId, topic: rejection.topic, reason: rejection.reason, index: rejection.index }, `rejected: ${rejection.message}`);
    }
    this.publish(rejection);
  }

  countRefused(reason: RejectReason, count: number): void {
    this.rejections.add(reason, count);
  }

  private publish(rejection: Rejection): void {
    // Reports are QoS 1 on the broker, but not waited for: a device's traffic does not wait on them.
    this.reports?.publish(REJECTED_TOPIC, rejectionPayload(rejection), { qos: 1 }).catch((error: Error) => {
      this.log.debug({ error: error.message }, 'could not publish a rejection report');
    });
  }

  /**
   * Counts every refused reading of a message, and reports the first REPORTS_PER_MESSAGE of them
   * one by one and the rest as one report per reason: a batch of 1,000 invalid readings made 1,000
   * reports, and one device at 20 such messages a second kept the service busy with them.
   */
  private rejectAll(rejections: Rejection[]): void {
    const rest = new Map<RejectReason, { first: Rejection; count: number }>();
    rejections.forEach((rejection, i) => {
      if (i < REPORTS_PER_MESSAGE) return this.reject(rejection);
      this.rejections.add(rejection.reason);
      const group = rest.get(rejection.reason);
      if (group) group.count++;
      else rest.set(rejection.reason, { first: rejection, count: 1 });
    });
    for (const [reason, { first, count }] of rest) {
      this.publish({ ...first, message: `${count} more readings of this message refused as ${reason}; the first: ${first.message}`, count });
    }
  }

  /** Resets the per-interval log allowance (called by the stats reporter). */
  resetLogAllowance(): void {
    this.detailedLogs = 0;
  }

  private async store(readings: Reading[], lines: string): Promise<void> {
    // The rules see valid readings at once rather than after the spool's fsync, which takes a few
    // ms to tens of ms under load: alerts are not held back by the disk. If the spool then refuses
    // the message, the device is not acknowledged and sends it again; the rules drop the duplicate.
    for (const listener of this.listeners) {
      try {
        listener(readings);
      } catch (error) {
        this.log.error({ error: (error as Error).message }, 'a readings listener failed');
      }
    }
    let forwarded: Promise<void> | null = null;
    if (this.forwardTickets) {
      const tickets = readings.filter((r): r is TicketReading => r.kind === 'ticket');
      if (tickets.length > 0) forwarded = this.forwardTickets(tickets);
    }
    await Promise.all([this.spool.append(lines), forwarded]);
    this.accepted += readings.length;
  }
}
