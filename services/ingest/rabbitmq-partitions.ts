// The ingest worker on a RabbitMQ cluster: devices publish over MQTT to any node (the MQTT plugin
// puts their messages on amq.topic, '/' turned into '.'), a consistent-hash exchange spreads them
// over P quorum queues by routing key, so that each device's data channel always lands in the same
// partition, and the worker consumes the partitions over AMQP 0-9-1 (docs/scale-out.md).
//
// The worker declares that topology before it takes anything: RabbitMQ confirms a publish that
// routes nowhere without storing it, so a device publishing before the partitions exist would be
// told its message was received and the message would be gone. A quorum queue confirms a message
// once a majority of its nodes hold it, and the MQTT plugin sends a device its PUBACK only then.
//
// Acknowledgements go in groups, as on every broker: deliveries are handed to the pipeline as
// they come, and once the spool has made a run of them durable, one basic.ack with multiple set
// acknowledges the run (delivery tags are per channel, so every delivery up to the acknowledged one
// must be durable: they are released in order). What is not yet acknowledged when the connection
// or the worker dies is delivered again, to this worker or the next.
import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib';
import type { Logger } from 'pino';
import type { Intake, MessageBus, Source } from '../contract/source.ts';
import type { TicketReading } from '../contract/payloads.ts';
import { parseDeviceTopic, topics } from '../contract/topics.ts';
import type { RegistryDb } from '../registry/db.ts';
import { within } from '../within.ts';
import { AckLine } from './ack-line.ts';
import { roomInSpool, untilDurable } from './durable-subscription.ts';
import { PartitionAssignment } from './partition-assignment.ts';

export interface RabbitmqPartitionsOptions {
  /** AMQP URLs of the cluster's nodes, tried in turn (amqp://user:password@host:5672). */
  urls: string[];
  /** Partitions (quorum queues); fixed for the life of the cluster: devices map to partitions by it. */
  partitions: number;
  /** Deliveries not yet acknowledged per partition consumer. */
  prefetch: number;
  /** The exchange the MQTT plugin publishes to (mqtt.exchange). */
  exchange: string;
  /**
   * Where the workers share the partitions (the registry on PostgreSQL) and this worker's id in
   * it; null: this worker consumes every partition (one process on SQLite).
   */
  assignment: { db: RegistryDb; workerId: string } | null;
  /** The terminal of the truck a weighing ticket names, whose partition judges it (null: none known). */
  ticketTruckTerminal: (ticket: TicketReading) => string | null;
}

export const PARTITION_EXCHANGE = 'waste.partitions';
/** The queue of partition `p`: waste.partition.00, … */
export const partitionQueue = (p: number): string => `waste.partition.${String(p).padStart(2, '0')}`;
/** Points each partition takes on the hash ring: more points, a more even spread of devices. */
const RING_POINTS_PER_PARTITION = '20';
/**
 * Marks a weighing ticket forwarded by a worker to its truck's partition (forwardTickets): its
 * value is the topic the weighbridge published it on. Believed only on a message published
 * straight to the partition exchange, which devices cannot reach (their messages arrive through
 * amq.topic, and MQTT 3.1.1 carries no headers).
 */
const FORWARDED_TOPIC_HEADER = 'x-waste-forwarded-from';
const RECONNECT_MS = 1000;
const SIGHTINGS_FLUSH_MS = 1000;
const SIGHTINGS_PER_STATEMENT = 500;
const STOP_GRACE_MS = 5000;

/** MQTT topic filters as AMQP binding keys ('/' is '.', '+' is '*'). */
export const bindingKey = (filter: string): string => filter.replaceAll('/', '.').replaceAll('+', '*');

interface Session {
  connection: ChannelModel;
  channel: Channel;
  publisher: ConfirmChannel;
  /** Deliveries on `channel` not yet acknowledged, by delivery tag, in order. */
  deliveries: AckLine<number>;
  ackScheduled: boolean;
  closed: boolean;
}

export class RabbitmqPartitions implements Source, MessageBus {
  readonly name = 'rabbitmq';
  private intake: Intake | null = null;
  private session: Session | null = null;
  private stopping = false;
  private reconnect: NodeJS.Timeout | null = null;
  private nextUrl = 0;
  private readonly running = new Set<Promise<void>>();
  /** The partition of each consumer tag of the current session. */
  private consumers: Record<string, number> = {};
  /** The partitions this worker consumes (all, without an assignment). */
  private owned = new Set<number>();
  private assignment: PartitionAssignment | null = null;
  /** Changes of the assignment, applied one after the other. */
  private applying: Promise<void> = Promise.resolve();
  /** Devices seen from each partition since this worker took it. */
  private readonly devicesOf = new Map<number, Set<string>>();
  /** The partition each of those devices came through. */
  private readonly partitionOf = new Map<string, number>();
  /** First sightings not yet recorded in device_partitions, and the timer that records them. */
  private readonly unrecorded = new Map<string, number>();
  private recording: NodeJS.Timeout | null = null;
  /** Partitions this worker took from others: their devices are taken over at first sight. */
  private readonly takenFromOthers = new Set<number>();
  /**
   * Deliveries, deliveries acknowledged, basic.acks sent (each for a run of deliveries), sessions
   * opened; tickets forwarded to their truck's partition, and forwarded tickets received.
   */
  readonly stats = { delivered: 0, acknowledged: 0, acks: 0, sessions: 0, ticketsForwarded: 0, forwardedReceived: 0 };

  constructor(
    private readonly options: RabbitmqPartitionsOptions,
    private readonly log: Logger,
  ) {}

  async start(intake: Intake): Promise<void> {
    this.intake = intake;
    this.stopping = false;
    const { assignment } = this.options;
    if (assignment) {
      let first = true;
      this.assignment = new PartitionAssignment(assignment.db, assignment.workerId, this.options.partitions, (owned) => {
        // At the first assignment a worker alone has replayed the history of every device at start;
        // otherwise its partitions come from workers that judged them until now.
        const alone = first && this.assignment!.liveWorkers().length === 1;
        const before = this.owned;
        this.owned = owned;
        const gained = [...owned].filter((p) => !before.has(p));
        if (!first || !alone) for (const p of gained) this.takenFromOthers.add(p);
        // Its devices known to have come through them, the silent ones too: their silence is
        // judged here from now on (their state rebuilt, unless this worker has it from its start).
        this.adopt(gained, !alone);
        if (!first) this.applying = this.applying.then(() => this.apply(before)).catch((error: Error) => this.log.error({ error: error.message }, 'could not change the partitions consumed'));
        first = false;
      }, this.log);
      this.assignment.start();
    } else {
      this.owned = new Set(Array.from({ length: this.options.partitions }, (_, p) => p));
    }
    // The first session must come up: a worker that cannot reach any node says so at start.
    let lastError: Error | null = null;
    for (let i = 0; i < this.options.urls.length; i++) {
      try {
        await this.open();
        return;
      } catch (error) {
        lastError = error as Error;
      }
    }
    throw new Error(`the ingest worker reached no RabbitMQ node (${this.options.urls.map(redact).join(', ')}): ${lastError?.message}; are rabbitmq.amqpUrls and the worker's account right?`);
  }

  /**
   * Whether this worker receives the device's data: it came through a partition this worker
   * consumes. The rules judge the silence of such devices only; the others they know from the
   * replay at start are judged by the workers they reach.
   */
  receives(deviceId: string): boolean {
    return this.partitionOf.has(deviceId);
  }

  /** Whether a publish can be confirmed now: a session with the cluster is open. */
  connected(): boolean {
    return this.session !== null && !this.session.closed;
  }

  /** Publishes on amq.topic (alerts, rejection reports) for MQTT subscribers; resolves once RabbitMQ confirms it. */
  publish(topic: string, payload: string | Buffer): Promise<void> {
    const session = this.session;
    if (!session || session.closed) return Promise.reject(new Error('the ingest worker has no RabbitMQ connection'));
    const content = typeof payload === 'string' ? Buffer.from(payload) : payload;
    return new Promise((resolve, reject) => {
      session.publisher.publish(this.options.exchange, bindingKey(topic), content, { persistent: true }, (error) => (error ? reject(error as Error) : resolve()));
    });
  }

  /**
   * Sends accepted weighing tickets to the partition of their truck, whose worker judges the
   * truck's fixes: a ticket arrives through its weighbridge's partition, and a trip's exit and
   * entry tickets come from two weighbridges. Resolves once RabbitMQ has them (the weighbridge's
   * message is acknowledged only then). A ticket naming no known truck goes to its weighbridge's
   * own partition, where it is counted as unregistered once.
   */
  forwardTickets(tickets: readonly TicketReading[]): Promise<void> {
    const session = this.session;
    if (!session || session.closed) return Promise.reject(new Error('the ingest worker has no RabbitMQ connection'));
    return Promise.all(tickets.map((ticket) => {
      const { kind: _kind, deviceId, ...input } = ticket;
      const from = topics.data('scales', deviceId);
      const terminal = this.options.ticketTruckTerminal(ticket);
      const to = terminal === null ? from : topics.data('trucks', terminal);
      return new Promise<void>((resolve, reject) => {
        session.publisher.publish(PARTITION_EXCHANGE, bindingKey(to), Buffer.from(JSON.stringify(input)), { persistent: true, headers: { [FORWARDED_TOPIC_HEADER]: from } }, (error) => {
          if (error) return reject(error as Error);
          this.stats.ticketsForwarded++;
          resolve();
        });
      });
    })).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.reconnect) clearTimeout(this.reconnect);
    this.reconnect = null;
    this.assignment?.stop();
    if (this.recording) clearTimeout(this.recording);
    this.recording = null;
    this.recordSightings();
    const session = this.session;
    if (!session) return;
    // No more deliveries; what is in the pipeline is made durable and acknowledged, for a while.
    await Promise.allSettled(Object.keys(this.consumers).map((tag) => session.channel.cancel(tag)));
    if (this.running.size > 0) await within(Promise.allSettled([...this.running]), STOP_GRACE_MS);
    this.acknowledge(session);
    session.closed = true;
    this.session = null;
    await session.connection.close().catch(() => undefined);
  }

  /** Connects to the next node, declares the topology and consumes every partition. */
  private async open(): Promise<void> {
    const url = this.options.urls[this.nextUrl++ % this.options.urls.length]!;
    const connection = await amqp.connect(url, { timeout: 10_000 });
    const session: Session = { connection, channel: await connection.createChannel(), publisher: await connection.createConfirmChannel(), deliveries: new AckLine<number>(), ackScheduled: false, closed: false };
    const lost = (why: string) => {
      if (session.closed) return;
      session.closed = true;
      if (this.session === session) this.session = null;
      if (this.stopping) return;
      this.log.warn({ node: redact(url), why }, 'lost the RabbitMQ connection; connecting to the next node (what was not acknowledged is delivered again)');
      this.scheduleReconnect();
    };
    connection.on('close', () => lost('closed'));
    connection.on('error', (error: Error) => lost(error.message));
    try {
      await this.declare(session.channel);
      await session.channel.prefetch(this.options.prefetch, false);
      this.consumers = {};
      for (const p of this.owned) await this.consume(session, p);
    } catch (error) {
      session.closed = true;
      await connection.close().catch(() => undefined);
      throw error;
    }
    this.session = session;
    this.stats.sessions++;
    this.log.info({ node: redact(url), partitions: this.options.partitions }, 'the ingest worker consumes the RabbitMQ partitions');
  }

  private async consume(session: Session, p: number): Promise<void> {
    const { consumerTag } = await session.channel.consume(partitionQueue(p), (message) => message && this.received(session, message), { noAck: false });
    this.consumers[consumerTag] = p;
  }

  /**
   * Consumes the partitions gained and cancels those lost since `before`. Deliveries of a lost
   * partition already in the pipeline are still acknowledged once durable; the queue's next
   * consumer (the worker that gained it) becomes its active one when this one is cancelled.
   */
  private async apply(before: Set<number>): Promise<void> {
    const session = this.session;
    const lost = [...before].filter((p) => !this.owned.has(p));
    for (const p of lost) {
      const devices = this.devicesOf.get(p);
      this.devicesOf.delete(p);
      this.takenFromOthers.delete(p);
      for (const id of devices ?? []) if (this.partitionOf.get(id) === p) this.partitionOf.delete(id);
      if (devices && devices.size > 0) this.intake?.release?.([...devices]);
    }
    if (!session || session.closed) return; // the next session consumes what is owned then
    for (const [tag, p] of Object.entries(this.consumers)) {
      if (this.owned.has(p)) continue;
      delete this.consumers[tag];
      await session.channel.cancel(tag);
    }
    const consumed = new Set(Object.values(this.consumers));
    for (const p of this.owned) if (!consumed.has(p)) await this.consume(session, p);
  }

  /**
   * The exchange, the partitions and their bindings; declaring what exists is a no-op, so every
   * worker declares all of it on every connection.
   */
  private async declare(channel: Channel): Promise<void> {
    await channel.assertExchange(PARTITION_EXCHANGE, 'x-consistent-hash', { durable: true });
    for (let p = 0; p < this.options.partitions; p++) {
      const queue = partitionQueue(p);
      await channel.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum', 'x-single-active-consumer': true } });
      await channel.bindQueue(queue, PARTITION_EXCHANGE, RING_POINTS_PER_PARTITION);
    }
    for (const filter of topics.ingestSubscriptions()) await channel.bindExchange(PARTITION_EXCHANGE, this.options.exchange, bindingKey(filter));
  }

  private received(session: Session, message: ConsumeMessage): void {
    this.stats.delivered++;
    const delivery = session.deliveries.add(message.fields.deliveryTag);
    const topic = message.fields.routingKey.replaceAll('.', '/');
    const intake = this.intake!;
    const forwardedFrom = message.fields.exchange === PARTITION_EXCHANGE ? message.properties.headers?.[FORWARDED_TOPIC_HEADER] : undefined;
    // Who judges a device follows its data channel: its status may hash to another partition, and
    // a weighbridge's tickets are judged with their trucks.
    const routed = parseDeviceTopic(topic);
    if (routed && routed.channel !== 'status' && routed.deviceClass !== 'scales') this.noteDevice(this.consumers[message.fields.consumerTag], routed.deviceId);
    if (forwardedFrom !== undefined) {
      // Stored by the worker that forwarded it: judged here, and done.
      this.stats.forwardedReceived++;
      intake.judge?.({ topic: String(forwardedFrom), payload: message.content, receivedAt: Date.now() });
      this.released(session, delivery);
      return;
    }
    const gone = () => this.stopping || session.closed;
    // Tried again on a failure (a disk error) while the channel lasts: left unacknowledged, it
    // would hold every acknowledgement after it on the channel.
    const handled = untilDurable(async () => {
      await roomInSpool(intake, gone, this.log);
      await intake.ingest({ topic, payload: message.content, receivedAt: Date.now() });
    }, gone, topic, this.log);
    this.running.add(handled);
    handled
      .then(
        () => this.released(session, delivery),
        // The channel went, or the worker stops: RabbitMQ delivers it again.
        () => undefined,
      )
      .finally(() => this.running.delete(handled));
  }

  /** A delivery done with: acknowledged with the run it ends, at the next turn of the event loop. */
  private released(session: Session, delivery: { done: boolean }): void {
    delivery.done = true;
    if (!session.ackScheduled) {
      session.ackScheduled = true;
      setImmediate(() => this.acknowledge(session));
    }
  }

  /**
   * Notes which partition a device came through; a device of a partition taken from another
   * worker is taken over at first sight. Where workers share the partitions, the first sight is
   * recorded (device_partitions), for the next worker to take the partition over.
   */
  private noteDevice(partition: number | undefined, deviceId: string | null): void {
    if (partition === undefined || deviceId === null) return;
    let devices = this.devicesOf.get(partition);
    if (!devices) this.devicesOf.set(partition, (devices = new Set()));
    if (devices.has(deviceId)) return;
    devices.add(deviceId);
    this.partitionOf.set(deviceId, partition);
    if (this.takenFromOthers.has(partition)) this.intake?.takeOver?.([deviceId]);
    if (this.options.assignment) this.sighted(deviceId, partition);
  }

  /** Records first sightings in the registry, a batch at most every second. */
  private sighted(deviceId: string, partition: number): void {
    this.unrecorded.set(deviceId, partition);
    this.scheduleRecording();
  }

  private scheduleRecording(): void {
    if (this.recording || this.unrecorded.size === 0) return;
    this.recording = setTimeout(() => {
      this.recording = null;
      this.recordSightings();
    }, SIGHTINGS_FLUSH_MS);
    this.recording.unref();
  }

  /** Writes the sightings not yet recorded; what the registry does not take is tried again a second later. */
  private recordSightings(): void {
    const db = this.options.assignment?.db;
    if (!db || this.unrecorded.size === 0) return;
    const rows = [...this.unrecorded];
    this.unrecorded.clear();
    const now = Date.now();
    try {
      for (let i = 0; i < rows.length; i += SIGHTINGS_PER_STATEMENT) {
        const chunk = rows.slice(i, i + SIGHTINGS_PER_STATEMENT);
        db.statement(`INSERT INTO device_partitions (device_id, partition, seen_at) VALUES ${chunk.map(() => '(?, ?, ?)').join(', ')} ON CONFLICT (device_id) DO UPDATE SET partition = excluded.partition, seen_at = excluded.seen_at`).run(...chunk.flatMap(([id, p]) => [id, p, now]));
      }
    } catch (error) {
      // Until recorded, a worker taking the partition over would not know these devices before they report.
      for (const [id, p] of rows) if (!this.unrecorded.has(id)) this.unrecorded.set(id, p);
      this.log.warn({ error: (error as Error).message, devices: rows.length }, 'could not record which partitions devices came through; trying again in a second');
      if (!this.stopping) this.scheduleRecording();
    }
  }

  /**
   * Takes as this worker's the devices known to have come through these partitions (taken over,
   * `rebuild`: their state is rebuilt from InfluxDB), so that one that has gone silent is still
   * judged here. Where the partitions are not shared there is no record, and nothing to do.
   */
  private adopt(partitions: readonly number[], rebuild: boolean): void {
    const db = this.options.assignment?.db;
    if (!db || partitions.length === 0) return;
    let rows: { device_id: string; partition: number }[];
    try {
      rows = db.statement(`SELECT device_id, partition FROM device_partitions WHERE partition IN (${partitions.map(() => '?').join(', ')})`).all(...partitions) as typeof rows;
    } catch (error) {
      this.log.warn({ error: (error as Error).message }, 'could not read which devices came through the partitions gained; each is judged here from its next message');
      return;
    }
    const adopted: string[] = [];
    for (const { device_id: id, partition } of rows) {
      let devices = this.devicesOf.get(partition);
      if (!devices) this.devicesOf.set(partition, (devices = new Set()));
      if (devices.has(id)) continue;
      devices.add(id);
      this.partitionOf.set(id, partition);
      adopted.push(id);
    }
    if (rebuild && adopted.length > 0) this.intake?.takeOver?.(adopted);
  }

  /** Acknowledges every delivery up to the last of the durable run at the head of the line, with one basic.ack. */
  private acknowledge(session: Session): void {
    session.ackScheduled = false;
    if (session.closed) return;
    const tags = session.deliveries.takeDone();
    if (tags.length === 0) return;
    session.channel.ack({ fields: { deliveryTag: tags.at(-1)! } } as ConsumeMessage, true);
    this.stats.acknowledged += tags.length;
    this.stats.acks++;
  }

  private scheduleReconnect(): void {
    if (this.stopping || this.reconnect) return;
    this.reconnect = setTimeout(() => {
      this.reconnect = null;
      this.open().catch((error: Error) => {
        this.log.warn({ error: error.message }, 'no RabbitMQ node took the ingest worker; trying the next in 1 s');
        this.scheduleReconnect();
      });
    }, RECONNECT_MS);
  }
}

/** A URL without its password, for logs. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'an invalid URL';
  }
}
