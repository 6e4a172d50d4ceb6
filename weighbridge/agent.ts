// The weighbridge agent, wired in one place: the indicator's line → frame reader → weighing
// detector → plate desk and ledger (pairing, in the queue file) → forwarder (MQTT), with the
// local page beside them. The constructor does no I/O; start() locks and opens the queue file,
// connects and listens, stop() undoes it in reverse order.
//
// Nothing on the data path may stop the agent: a write to the queue file that fails (another
// program holding its lock, a full disk) keeps the weighing or plate in memory, in order, shows
// it on the page and in the log, and tries again (write(), flush()); status and log lines read
// what they can and say what they could not.
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type Database from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import { Backoff } from './backoff.ts';
import type { AgentConfig } from './config.ts';
import { FrameReader } from './formats/frame-reader.ts';
import { FORMATS } from './formats/index.ts';
import { Forwarder } from './forward/forwarder.ts';
import type { LineHandlers, LineInput } from './input/line.ts';
import { SerialInput } from './input/serial.ts';
import { TcpInput } from './input/tcp.ts';
import type { Logger } from './log.ts';
import { buildPageApp, pageExposureProblem, type PlateAnswer, type VoidAnswer } from './page/app.ts';
import type { AgentStatus, QueueView, WeighingView } from './page/status.ts';
import { explainStorageError, lockQueueFile, newestRecordAt, openDb, recordHolder, type QueueFileLock } from './store/db.ts';
import { TicketQueue, type QueuedTicket } from './store/queue.ts';
import { PlateDesk } from './weighing/desk.ts';
import { WeighingDetector, type DetectorEvent } from './weighing/detector.ts';
import { Ledger, type Outcome, type Weighing } from './weighing/ledger.ts';
import { localIso, type SiteOptions, type Ticket } from './weighing/ticket.ts';

export interface AgentEvents {
  reading: [kg: number];
  weighing: [outcome: Outcome];
  ticket: [ticket: Ticket];
  sent: [ticketId: string];
  expired: [weighing: Weighing];
  /** The indicator's line went up (problem null) or down (what is wrong). */
  line: [connected: boolean, problem: string | null];
}

/** Expired weighings kept for the page. */
const RECENT_EXPIRED = 20;
/** Tickets listed on the page and in the status. */
const LISTED_TICKETS = 50;
/**
 * A PC clock before this is wrong (reset by a flat CMOS battery, a PC that lost its date): this
 * agent did not exist then. A month before it was written, so that no right clock is doubted.
 */
const CLOCK_FLOOR_MS = Date.parse('2026-11-01T00:00:00Z');
/** The clock may be this far behind the newest record of the queue file before it is doubted. */
const CLOCK_BEHIND_SLACK_MS = 60_000;
/** The wall clock running ahead of the monotonic one by more than this between two checks is a jump. */
const CLOCK_JUMP_MS = 5 * 60_000;
/** Waits between attempts to write what the queue file refused. */
const RETRY = { minMs: 500, maxMs: 10_000 };

/** What comes from the environment rather than the config (main.ts). */
export interface AgentOptions {
  /** WEIGHBRIDGE_OPERATOR_TOKEN: the operator's page may be used from another machine with it. */
  operatorToken?: string | null;
  /** WEIGHBRIDGE_SEND_OLD_TICKETS=1: send tickets past the age the service accepts (forwarder.ts HOLD_OLDER_THAN_MS). */
  sendOldTickets?: boolean;
}

/** A write to the queue file that has not happened yet: tried in order, kept while it fails. */
interface PendingWrite {
  what: string;
  since: number;
  /** The write; returns what follows it (events, logs), run once it is done. `late`: it waited. */
  save(ledger: Ledger, late: boolean): () => void;
}

interface Running {
  lock: QueueFileLock;
  db: Database.Database;
  queue: TicketQueue;
  ledger: Ledger;
  forwarder: Forwarder;
  line: LineInput;
  page: FastifyInstance | null;
  timers: NodeJS.Timeout[];
}

export class WeighbridgeAgent extends EventEmitter<AgentEvents> {
  private readonly reader: FrameReader;
  private readonly detector: WeighingDetector;
  private readonly desk: PlateDesk;
  private readonly site: SiteOptions;
  private readonly unitFactor: number;
  private running: Running | null = null;
  private lastReading: { kg: number; motion: boolean | null; at: number } | null = null;
  private lastDataAt: number | null = null;
  private lineProblem: string | null = null;
  private readonly expired: Weighing[] = [];
  private readonly counts = { weighings: 0, unsteady_passes: 0, tickets: 0 };
  private readonly unsaved: PendingWrite[] = [];
  private storageProblem: string | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** A write's follow-up may write again: that one waits its turn in the same flush. */
  private flushing = false;
  private readonly retry = new Backoff(RETRY);
  private clockProblem: string | null = null;
  private clockMark = { wall: Date.now(), mono: performance.now() };
  private lastUnexpected: string | null = null;

  constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
    private readonly options: AgentOptions = {},
  ) {
    super();
    this.reader = new FrameReader(FORMATS[config.indicator.format]);
    this.detector = new WeighingDetector(config.stability);
    this.desk = new PlateDesk(config.pairing.plateWindowS * 1000, config.pairing.minPairIntervalS * 1000);
    this.unitFactor = config.indicator.unit === 't' ? 1000 : 1;
    const { direction, category, origin, ticketPrefix, utcOffsetMinutes } = config.site;
    this.site = { direction, category, origin, ticketPrefix: ticketPrefix ?? config.mqtt.deviceId, utcOffsetMinutes };
  }

  /** Opens the queue file, connects to the broker and the line, and serves the page; resolves with the page's port. */
  async start(): Promise<{ pagePort: number | null }> {
    if (this.running) throw new Error('already started');
    const { config, log } = this;
    const cameraToken = config.page.cameraToken ?? null;
    const operatorToken = this.options.operatorToken ?? null;
    const exposure = config.page.enabled ? pageExposureProblem(config.page.host, cameraToken, operatorToken) : null;
    if (exposure) throw new Error(exposure);
    const lock = lockQueueFile(config.queueFile);
    let db: Database.Database | null = null;
    let queue: TicketQueue;
    let ledger: Ledger;
    try {
      db = openDb(config.queueFile);
      recordHolder(db, process.pid, Date.now());
      queue = new TicketQueue(db);
      const { minPairIntervalS, minNetKg } = config.pairing;
      ledger = new Ledger(db, queue, this.site, { minPairIntervalS, minNetKg, capacityKg: config.stability.capacityKg });
    } catch (error) {
      db?.close();
      lock.release();
      throw new Error(`cannot open the queue file: ${explainStorageError(error, config.queueFile)}`);
    }
    const forwarder = new Forwarder(
      {
        url: config.mqtt.url,
        deviceId: config.mqtt.deviceId,
        secret: config.mqtt.secret,
        maxInFlight: config.mqtt.maxInFlight,
        keepaliveS: config.mqtt.keepaliveS,
        connectTimeoutMs: config.mqtt.connectTimeoutMs,
        reconnect: { minMs: config.mqtt.reconnectMinMs, maxMs: config.mqtt.reconnectMaxMs },
        sendOldTickets: this.options.sendOldTickets ?? false,
      },
      queue,
      log,
    );
    forwarder.on('sent', (id) => this.emit('sent', id));
    const line = this.makeLine();
    const running: Running = { lock, db, queue, ledger, forwarder, line, page: null, timers: [] };
    this.running = running;
    const s = this.status();
    log.info(
      { queue_file: config.queueFile, waiting: s.queue.waiting, open_weighings: s.open_weighings.length, line: line.description, format: config.indicator.format },
      'weighbridge agent starting',
    );
    this.clockMark = { wall: Date.now(), mono: performance.now() };
    this.checkClock();
    forwarder.start();
    line.start();
    if (config.page.enabled) {
      try {
        const page = await buildPageApp({
          status: () => this.status(),
          offerPlate: (p, source, id) => this.offerPlate(p, source, id),
          voidWeighing: (id) => this.voidWeighing(id),
          host: config.page.host,
          cameraToken,
          operatorToken,
          log,
        });
        running.page = page;
        await page.listen({ host: config.page.host, port: config.page.port });
      } catch (error) {
        await this.stop();
        throw new Error(`cannot serve the page on ${config.page.host}:${config.page.port}: ${(error as Error).message} (another program on that port? choose another --page-port)`);
      }
    }
    const expireEveryMs = Math.min(60_000, (config.pairing.expireAfterH * 3_600_000) / 4);
    running.timers.push(setInterval(() => this.expire(), expireEveryMs));
    running.timers.push(setInterval(() => this.logStatus(), config.log.statusIntervalS * 1000));
    const address = running.page?.server.address();
    return { pagePort: address && typeof address === 'object' ? address.port : null };
  }

  async stop(): Promise<void> {
    const running = this.running;
    if (!running) return;
    this.running = null;
    for (const timer of running.timers) clearInterval(timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    await running.page?.close();
    await running.line.stop();
    // A last try for what waits in memory; the retry timer is gone, so it is not scheduled again.
    this.flush(running);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    await running.forwarder.stop();
    for (const write of this.unsaved.splice(0)) {
      this.log.error({ since: this.iso(write.since) }, `not saved in the queue file, lost at this stop: ${write.what}; enter it again by hand`);
    }
    running.db.close();
    running.lock.release();
    this.log.info('weighbridge agent stopped');
  }

  /** A plate from the page, the terminal or a camera; `weighingId` null to let the desk place it. */
  offerPlate(plate: string, source: string, weighingId: number | null): PlateAnswer {
    const running = this.running;
    if (!running) return { ok: false, status: 409, message: '代理程序未运行 / the agent is not running' };
    const now = Date.now();
    if (weighingId === null) {
      const placement = this.desk.offer(plate, source, now);
      this.log.info({ plate, source, placed: placement.to }, 'plate received');
      if (placement.to === 'pass') return { ok: true, placed: 'pass' };
      if (placement.to === 'next') return { ok: true, placed: 'next', until: localIso(placement.until, this.site.utcOffsetMinutes) };
      // A repeat changes nothing and is no error (a camera answered with one pushes again); too
      // many plates waiting is refused, said to whoever gave it.
      if (placement.to === 'ignored') return { ok: true, placed: 'ignored', message: placement.reason };
      if (placement.to !== 'weighing') return { ok: false, status: 409, message: placement.reason };
      weighingId = placement.weighingId;
    }
    return this.plateWeighing(weighingId, plate, source, now);
  }

  /** Sets the plate of an open weighing in the queue file, now or once it can be written. */
  private plateWeighing(id: number, plate: string, source: string, now: number): PlateAnswer {
    const result: { answer?: PlateAnswer } = {};
    this.write({
      what: `plate ${plate} (${source}) for weighing ${id}`,
      since: now,
      save: (ledger, late) => {
        const outcome = ledger.setPlate(id, plate, source);
        return () => {
          if (!outcome) {
            if (late) this.log.warn({ weighing_id: id, plate }, `plate ${plate} given while the queue file was locked: no open weighing ${id} any more`);
            result.answer = { ok: false, status: 404, message: `没有待配对的称重 ${id} / no open weighing ${id}` };
            return;
          }
          this.desk.plated(id, plate, source, Date.now());
          this.settled(outcome);
          result.answer = { ok: true, placed: 'weighing', weighing_id: id, ...(outcome.kind === 'ticket' ? { ticket_id: outcome.ticket.ticket_id } : {}) };
        };
      },
    });
    // Not written yet: kept in memory and written once the queue file is free.
    return result.answer ?? { ok: true, placed: 'weighing', weighing_id: id, saved: false };
  }

  /** Takes an open weighing out, at the operator's word (a wrong weighing); false when there is no such open weighing. */
  voidWeighing(weighingId: number): VoidAnswer {
    if (!this.running) return { ok: false, status: 409, message: '代理程序未运行 / the agent is not running' };
    const result: { found?: boolean } = {};
    this.write({
      what: `void of weighing ${weighingId}`,
      since: Date.now(),
      save: (ledger) => {
        const weighing = ledger.voidWeighing(weighingId);
        return () => {
          result.found = weighing !== null;
          if (!weighing) return;
          this.desk.closed(weighing.id);
          this.log.warn({ weighing_id: weighing.id, kg: weighing.kg, plate: weighing.plate, at: this.iso(weighing.ts) }, 'weighing voided by the operator');
        };
      },
    });
    if (result.found === false) return { ok: false, status: 404, message: `没有待配对的称重 ${weighingId} / no open weighing ${weighingId}` };
    return result.found ? { ok: true, voided: weighingId } : { ok: true, voided: weighingId, saved: false };
  }

  /** Never throws: what cannot be read from the queue file is left out and said in `warnings`. */
  status(): AgentStatus {
    const running = this.running;
    const iso = (ms: number) => this.iso(ms);
    const ttl = this.config.pairing.expireAfterH * 3_600_000;
    const view = (w: Weighing): WeighingView => ({ id: w.id, ts: iso(w.ts), kg: w.kg, plate: w.plate, expires_at: iso(w.ts + ttl) });
    let readProblem: string | null = null;
    const read = <T>(reading: (r: Running) => T, fallback: T): T => {
      if (!running) return fallback;
      try {
        return reading(running);
      } catch (error) {
        readProblem = explainStorageError(error, this.config.queueFile);
        return fallback;
      }
    };
    const summary = read((r) => r.queue.summary(), { waiting: 0, oldestAt: null });
    const open = read((r) => r.ledger.open(), []);
    const listed = read((r) => r.queue.list(LISTED_TICKETS), []);
    const forwarder = running?.forwarder.status ?? { connected: false, problem: null, inFlight: 0, sent: 0, connectedSince: null, held: [], heldCount: 0, storageProblem: null };
    const { held, heldCount, storageProblem: forwarderProblem, ...broker } = forwarder;
    const waiting = this.desk.waiting(Date.now());
    const storageProblem = this.storageProblem ?? readProblem ?? forwarderProblem;
    const warnings = [
      ...(storageProblem ? [storageProblem] : []),
      ...(this.unsaved.length > 0 ? [`${this.unsaved.length} weighing(s) or plate(s) not yet saved in the queue file, kept in memory and tried again: ${this.unsaved.map((w) => w.what).join('; ')}`] : []),
      ...(this.clockProblem ? [this.clockProblem] : []),
      ...(heldCount > 0 ? [heldCount === 1 ? held[0]!.reason : `${heldCount} tickets held in the queue file, not sent; the first: ${held[0]!.reason}`] : []),
    ];
    return {
      device_id: this.config.mqtt.deviceId,
      warnings,
      format: this.config.indicator.format,
      input: {
        line: running?.line.description ?? '',
        connected: running?.line.connected ?? false,
        problem: this.lineProblem,
        last_data_at: this.lastDataAt === null ? null : iso(this.lastDataAt),
        frames: this.reader.stats,
      },
      weight: this.lastReading && { kg: this.lastReading.kg, motion: this.lastReading.motion, at: iso(this.lastReading.at) },
      bridge: this.detector.state,
      plate_on_bridge: this.desk.pass?.plate?.plate ?? null,
      plate_waiting: waiting && { plate: waiting.plate, until: iso(waiting.until) },
      open_weighings: open.map(view),
      expired: this.expired.map(view),
      queue: {
        waiting: summary.waiting,
        oldest_at: summary.oldestAt === null ? null : iso(summary.oldestAt),
        tickets: listed.map(ticketView),
        held,
        held_count: heldCount,
      },
      storage: { file: this.config.queueFile, problem: storageProblem, unsaved: this.unsaved.map((w) => ({ what: w.what, since: iso(w.since) })) },
      clock: { problem: this.clockProblem },
      broker: { ...broker, url: this.config.mqtt.url },
      counts: { ...this.counts, over_capacity: this.detector.overCapacity },
    };
  }

  private iso(ms: number): string {
    return localIso(ms, this.site.utcOffsetMinutes);
  }

  /** Writes to the queue file in the order things happened; what cannot be written now waits in memory. */
  private write(write: PendingWrite): void {
    this.unsaved.push(write);
    if (!this.flushing) this.flush();
  }

  private flush(running = this.running): void {
    if (!running) return;
    const late = this.storageProblem !== null;
    this.flushing = true;
    try {
      this.flushQueue(running, late);
    } finally {
      this.flushing = false;
    }
  }

  /** Writes what waits, in order, until one fails (then retried after a backoff). */
  private flushQueue(running: Running, late: boolean): void {
    while (this.unsaved.length > 0) {
      const write = this.unsaved[0]!;
      let then: () => void;
      try {
        then = write.save(running.ledger, late);
      } catch (error) {
        this.storageFailed(error, `saving ${write.what}`);
        this.retryTimer ??= setTimeout(() => {
          this.retryTimer = null;
          this.flush();
        }, this.retry.next());
        return;
      }
      this.unsaved.shift();
      then();
    }
    if (late) this.storageRecovered();
  }

  private storageRecovered(): void {
    if (this.storageProblem === null || this.unsaved.length > 0) return;
    this.log.info({ queue_file: this.config.queueFile }, 'the queue file can be written again: what was kept in memory is saved');
    this.storageProblem = null;
    this.retry.reset();
  }

  /** A read or write of the queue file failed: said once as an error, then at debug while it lasts. */
  private storageFailed(error: unknown, doing: string): void {
    const problem = explainStorageError(error, this.config.queueFile);
    const again = problem === this.storageProblem;
    this.storageProblem = problem;
    this.log[again ? 'debug' : 'error']({ doing, unsaved: this.unsaved.map((w) => w.what) }, `${problem}; kept in memory, tried again`);
  }

  /** Where a bug would have thrown out of an event handler: logged (once per message), never fatal. */
  private unexpected(error: unknown, doing: string): void {
    const message = `${doing}: ${(error as Error).message ?? String(error)}`;
    if (message === this.lastUnexpected) return void this.log.debug(message);
    this.lastUnexpected = message;
    this.log.error({ err: error }, message);
  }

  private makeLine(): LineInput {
    const handlers: LineHandlers = {
      data: (chunk) => this.onData(chunk),
      up: () => {
        this.lineProblem = null;
        this.log.info({ line: this.running?.line.description }, 'indicator line open');
        this.emit('line', true, null);
      },
      down: (message, retryInMs) => {
        // The same failure again on every retry is logged once as a warning, then at debug.
        if (message === this.lineProblem) this.log.debug({ retry_in_ms: retryInMs }, message);
        else this.log.warn({ retry_in_ms: retryInMs }, message);
        this.lineProblem = message;
        this.reader.reset();
        this.detector.interrupt();
        this.emit('line', false, message);
      },
    };
    const { serial, tcp, idleTimeoutS, reconnectMinMs, reconnectMaxMs } = this.config.input;
    const reconnect = { minMs: reconnectMinMs, maxMs: reconnectMaxMs };
    const idleTimeoutMs = idleTimeoutS * 1000;
    if (serial) return new SerialInput({ ...serial, idleTimeoutMs }, handlers, reconnect);
    return new TcpInput({ host: tcp!.host, port: tcp!.port, idleTimeoutMs }, handlers, reconnect);
  }

  private onData(chunk: Buffer): void {
    const now = Date.now();
    this.lastDataAt = now;
    try {
      for (const reading of this.reader.push(chunk)) {
        const kg = Math.round(reading.weight * this.unitFactor * 1000) / 1000;
        this.lastReading = { kg, motion: reading.motion ?? null, at: now };
        this.emit('reading', kg);
        const event = this.detector.push(kg, reading.motion);
        if (event) this.onBridge(event, now);
      }
    } catch (error) {
      this.unexpected(error, 'handling the indicator\'s data');
    }
  }

  private onBridge(event: DetectorEvent, now: number): void {
    const running = this.running;
    if (!running) return;
    if (event.type === 'arrived') {
      const pass = this.desk.arrived(now);
      if (event.noseToTail) this.log.warn({ plate: pass.plate?.plate ?? null }, 'a new steady weight without the bridge emptying: taken as the next truck nose to tail (or a truck that stopped with an axle off the bridge, weighed twice)');
      else this.log.debug({ plate: pass.plate?.plate ?? null }, 'truck on the bridge');
      return;
    }
    if (event.type === 'left') {
      if (!event.weighed) {
        this.counts.unsteady_passes++;
        this.log.info('truck left the bridge before its weight held steady: no weighing');
      }
      const dropped = this.desk.left(now);
      if (dropped) this.log.info({ plate: dropped.plate, source: dropped.source }, 'truck left unweighed: its plate is dropped, not given to the next truck');
      return;
    }
    this.counts.weighings++;
    const pass = this.desk.pass;
    const plate = pass?.plate ?? null;
    // The pass learns its weighing's id once the weighing is saved (at once, unless the queue file is locked).
    this.desk.weighed(null);
    const { kg } = event;
    this.write({
      what: `weighing of ${kg} kg at ${this.iso(now)}${plate ? `, plate ${plate.plate}` : ', no plate yet'}`,
      since: now,
      save: (ledger) => {
        const outcome = ledger.record(kg, now, plate && { plate: plate.plate, source: plate.source });
        return () => {
          this.settled(outcome);
          if (outcome.kind !== 'open' || this.desk.pass !== pass) return;
          this.desk.weighed(outcome.weighing.id);
          // A plate given to this truck while its weighing waited to be saved is the weighing's.
          const given = pass?.plate;
          if (given && !outcome.weighing.plate) this.plateWeighing(outcome.weighing.id, given.plate, given.source, Date.now());
        };
      },
    });
  }

  /** Logs what a weighing or a plate led to, and sends a new ticket on its way. */
  private settled(outcome: Outcome): void {
    this.emit('weighing', outcome);
    if (outcome.kind === 'open') {
      const { weighing, problem, replaced } = outcome;
      if (replaced) {
        this.desk.closed(replaced.id);
        this.log.warn({ weighing_id: weighing.id, kg: weighing.kg, plate: weighing.plate, replaced_id: replaced.id, replaced_kg: replaced.kg }, `weighing ${weighing.id} replaces weighing ${replaced.id} of the same plate: the same truck weighed again, not a ticket`);
      }
      if (problem) this.log.error({ weighing_id: weighing.id, plate: weighing.plate }, problem);
      else if (weighing.plate) this.log.info({ weighing_id: weighing.id, kg: weighing.kg, plate: weighing.plate }, 'first weighing recorded, waiting for the second');
      else this.log.info({ weighing_id: weighing.id, kg: weighing.kg }, 'weighing recorded, needs a plate (page or prompt)');
      return;
    }
    this.counts.tickets++;
    this.desk.closed(outcome.first.id);
    this.desk.closed(outcome.second.id);
    const { ticket_id, plate, gross_kg, tare_kg, net_kg } = outcome.ticket;
    this.log.info({ ticket_id, plate, gross_kg, tare_kg, net_kg }, 'ticket made and queued');
    this.emit('ticket', outcome.ticket);
    this.running?.forwarder.kick();
  }

  private expire(): void {
    const running = this.running;
    if (!running) return;
    const now = Date.now();
    const jumpMs = this.clockJump(now);
    const { expireAfterH } = this.config.pairing;
    let expired: Weighing[];
    try {
      expired = running.ledger.expire(now - expireAfterH * 3_600_000);
    } catch (error) {
      // Tried again at the next tick.
      this.storageFailed(error, 'expiring unpaired weighings');
      return;
    }
    this.storageRecovered();
    if (jumpMs > CLOCK_JUMP_MS) {
      this.log.warn(
        { jump_min: Math.round(jumpMs / 60_000), expired: expired.map((w) => w.id) },
        `the PC clock jumped forward by ${Math.round(jumpMs / 60_000)} min${expired.length > 0 ? `: ${expired.length} open weighing(s) expire at once because of it; if the clock was wrong, those trucks must be weighed again` : ''}; check the date and time (timedatectl)`,
      );
    }
    for (const weighing of expired) {
      this.desk.closed(weighing.id);
      this.expired.unshift(weighing);
      this.expired.length = Math.min(this.expired.length, RECENT_EXPIRED);
      const ageH = Math.round(((now - weighing.ts) / 3_600_000) * 10) / 10;
      this.log.warn(
        { weighing_id: weighing.id, kg: weighing.kg, plate: weighing.plate, at: this.iso(weighing.ts), age_h: ageH },
        `weighing expired without its pair: weighed ${ageH} h ago, longer than pairing.expireAfterH (${expireAfterH} h)${jumpMs > CLOCK_JUMP_MS ? ', after the PC clock jumped forward' : ''}`,
      );
      this.emit('expired', weighing);
    }
  }

  /** How far the wall clock ran ahead of the monotonic clock since the last call. */
  private clockJump(now: number): number {
    const mono = performance.now();
    const jump = now - this.clockMark.wall - (mono - this.clockMark.mono);
    this.clockMark = { wall: now, mono };
    return jump;
  }

  /** Doubts the PC clock when it is before this agent existed, or before what the queue file already holds. */
  private checkClock(): void {
    const now = Date.now();
    let problem: string | null = null;
    let newest: number | null = null;
    try {
      if (this.running) newest = newestRecordAt(this.running.db);
    } catch {
      // A locked or damaged queue file is said elsewhere; the clock is judged on the floor alone.
    }
    if (now < CLOCK_FLOOR_MS) {
      problem = `the PC clock says ${this.iso(now)}, before this agent was made: it has been reset (a flat CMOS battery?). Set the date and time (timedatectl); tickets made now carry a wrong time and the service refuses them`;
    } else if (newest !== null && now < newest - CLOCK_BEHIND_SLACK_MS) {
      problem = `the PC clock says ${this.iso(now)}, ${Math.round((newest - now) / 60_000)} min before the newest weighing or ticket in the queue file (${this.iso(newest)}): the clock went back. Check the date and time (timedatectl); tickets made now carry a wrong time`;
    }
    if (problem && problem !== this.clockProblem) this.log.warn({ now: this.iso(now), newest_record: newest === null ? null : this.iso(newest) }, problem);
    if (!problem && this.clockProblem) this.log.info('the PC clock is no longer before the queue file\'s records');
    this.clockProblem = problem;
  }

  private logStatus(): void {
    try {
      this.checkClock();
      this.logStatusLine();
    } catch (error) {
      this.unexpected(error, 'logging the status');
    }
  }

  private logStatusLine(): void {
    const s = this.status();
    this.log[s.warnings.length > 0 ? 'warn' : 'info'](
      {
        warnings: s.warnings.length > 0 ? s.warnings : undefined,
        held: s.queue.held_count || undefined,
        unsaved: s.storage.unsaved.length || undefined,
        waiting: s.queue.waiting,
        oldest_at: s.queue.oldest_at,
        broker_connected: s.broker.connected,
        broker_problem: s.broker.problem,
        line_connected: s.input.connected,
        line_problem: s.input.problem,
        open_weighings: s.open_weighings.length,
        frames: s.input.frames.frames,
        rejected: s.input.frames.rejected,
      },
      (s.queue.waiting > 0 ? `status: ${s.queue.waiting} ticket(s) waiting, oldest ${s.queue.oldest_at}` : 'status: no ticket waiting') + (s.warnings.length > 0 ? `; ${s.warnings[0]}` : ''),
    );
  }
}

/** A queued ticket as listed; a payload that is not a ticket is shown as it is stored. */
function ticketView(t: QueuedTicket): QueueView['tickets'][number] {
  try {
    const parsed = JSON.parse(t.payload) as Partial<Ticket> | null;
    if (parsed && typeof parsed === 'object' && typeof parsed.ts === 'string') {
      const { ts, plate, gross_kg, tare_kg, net_kg } = parsed as Ticket;
      return { ticket_id: t.ticketId, ts, plate, gross_kg, tare_kg, net_kg };
    }
  } catch {
    // Shown below.
  }
  return { ticket_id: t.ticketId, problem: `the stored payload is not a ticket: ${t.payload.slice(0, 120)}` };
}
