// The weighbridge agent, wired in one place: the indicator's line → frame reader → weighing
// detector → plate desk and ledger (pairing, in the queue file) → forwarder (MQTT), with the
// local page beside them. The constructor does no I/O; start() opens the queue file, connects
// and listens, stop() undoes it in reverse order.
import { EventEmitter } from 'node:events';
import type Database from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import type { AgentConfig } from './config.ts';
import { FrameReader } from './formats/frame-reader.ts';
import { FORMATS } from './formats/index.ts';
import { Forwarder } from './forward/forwarder.ts';
import type { LineHandlers, LineInput } from './input/line.ts';
import { SerialInput } from './input/serial.ts';
import { TcpInput } from './input/tcp.ts';
import type { Logger } from './log.ts';
import { buildPageApp, type PlateAnswer } from './page/app.ts';
import type { AgentStatus, WeighingView } from './page/status.ts';
import { openDb } from './store/db.ts';
import { TicketQueue } from './store/queue.ts';
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

interface Running {
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

  constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
  ) {
    super();
    this.reader = new FrameReader(FORMATS[config.indicator.format]);
    this.detector = new WeighingDetector(config.stability);
    this.desk = new PlateDesk(config.pairing.plateWindowS * 1000);
    this.unitFactor = config.indicator.unit === 't' ? 1000 : 1;
    const { direction, category, origin, ticketPrefix, utcOffsetMinutes } = config.site;
    this.site = { direction, category, origin, ticketPrefix: ticketPrefix ?? config.mqtt.deviceId, utcOffsetMinutes };
  }

  /** Opens the queue file, connects to the broker and the line, and serves the page; resolves with the page's port. */
  async start(): Promise<{ pagePort: number | null }> {
    if (this.running) throw new Error('already started');
    const { config, log } = this;
    const db = openDb(config.queueFile);
    const queue = new TicketQueue(db);
    const ledger = new Ledger(db, queue, this.site);
    const forwarder = new Forwarder(
      {
        url: config.mqtt.url,
        deviceId: config.mqtt.deviceId,
        secret: config.mqtt.secret,
        maxInFlight: config.mqtt.maxInFlight,
        keepaliveS: config.mqtt.keepaliveS,
        connectTimeoutMs: config.mqtt.connectTimeoutMs,
        reconnect: { minMs: config.mqtt.reconnectMinMs, maxMs: config.mqtt.reconnectMaxMs },
      },
      queue,
      log,
    );
    forwarder.on('sent', (id) => this.emit('sent', id));
    const line = this.makeLine();
    const running: Running = { db, queue, ledger, forwarder, line, page: null, timers: [] };
    this.running = running;
    const open = ledger.open();
    log.info(
      { queue_file: config.queueFile, waiting: queue.summary().waiting, open_weighings: open.length, line: line.description, format: config.indicator.format },
      'weighbridge agent starting',
    );
    forwarder.start();
    line.start();
    if (config.page.enabled) {
      const page = buildPageApp({ status: () => this.status(), offerPlate: (p, s, id) => this.offerPlate(p, s, id), cameraToken: config.page.cameraToken ?? null });
      running.page = page;
      try {
        await page.listen({ host: config.page.host, port: config.page.port });
      } catch (error) {
        await this.stop();
        throw new Error(`cannot serve the page on ${config.page.host}:${config.page.port}: ${(error as Error).message} (another agent running? choose another --page-port)`);
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
    await running.page?.close();
    await running.line.stop();
    await running.forwarder.stop();
    running.db.close();
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
      weighingId = placement.weighingId;
    }
    const outcome = running.ledger.setPlate(weighingId, plate, source);
    if (!outcome) return { ok: false, status: 404, message: `没有待配对的称重 ${weighingId} / no open weighing ${weighingId}` };
    this.desk.plated(weighingId, plate, source, now);
    this.settled(outcome);
    return { ok: true, placed: 'weighing', weighing_id: weighingId, ...(outcome.kind === 'ticket' ? { ticket_id: outcome.ticket.ticket_id } : {}) };
  }

  status(): AgentStatus {
    const running = this.running;
    const offset = this.site.utcOffsetMinutes;
    const iso = (ms: number) => localIso(ms, offset);
    const ttl = this.config.pairing.expireAfterH * 3_600_000;
    const view = (w: Weighing): WeighingView => ({ id: w.id, ts: iso(w.ts), kg: w.kg, plate: w.plate, expires_at: iso(w.ts + ttl) });
    const summary = running?.queue.summary() ?? { waiting: 0, oldestAt: null };
    const waiting = this.desk.waiting(Date.now());
    return {
      device_id: this.config.mqtt.deviceId,
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
      open_weighings: running?.ledger.open().map(view) ?? [],
      expired: this.expired.map(view),
      queue: {
        waiting: summary.waiting,
        oldest_at: summary.oldestAt === null ? null : iso(summary.oldestAt),
        tickets: (running?.queue.list(LISTED_TICKETS) ?? []).map((t) => {
          const { ticket_id, ts, plate, gross_kg, tare_kg, net_kg } = JSON.parse(t.payload) as Ticket;
          return { ticket_id, ts, plate, gross_kg, tare_kg, net_kg };
        }),
      },
      broker: { ...(running?.forwarder.status ?? { connected: false, problem: null, inFlight: 0, sent: 0, connectedSince: null }), url: this.config.mqtt.url },
      counts: { ...this.counts },
    };
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
    for (const reading of this.reader.push(chunk)) {
      const kg = Math.round(reading.weight * this.unitFactor * 1000) / 1000;
      this.lastReading = { kg, motion: reading.motion ?? null, at: now };
      this.emit('reading', kg);
      const event = this.detector.push(kg, reading.motion);
      if (event) this.onBridge(event, now);
    }
  }

  private onBridge(event: DetectorEvent, now: number): void {
    const running = this.running;
    if (!running) return;
    if (event.type === 'arrived') {
      const pass = this.desk.arrived(now);
      this.log.debug({ plate: pass.plate?.plate ?? null }, 'truck on the bridge');
      return;
    }
    if (event.type === 'left') {
      if (!event.weighed) {
        this.counts.unsteady_passes++;
        this.log.info('truck left the bridge before its weight held steady: no weighing');
      }
      this.desk.left(now);
      return;
    }
    this.counts.weighings++;
    const plate = this.desk.pass?.plate ?? null;
    const outcome = running.ledger.record(event.kg, now, plate && { plate: plate.plate, source: plate.source });
    this.desk.weighed(outcome.kind === 'open' ? outcome.weighing.id : null);
    this.settled(outcome);
  }

  /** Logs what a weighing or a plate led to, and sends a new ticket on its way. */
  private settled(outcome: Outcome): void {
    this.emit('weighing', outcome);
    if (outcome.kind === 'open') {
      const { weighing, problem } = outcome;
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
    const before = Date.now() - this.config.pairing.expireAfterH * 3_600_000;
    for (const weighing of running.ledger.expire(before)) {
      this.desk.closed(weighing.id);
      this.expired.unshift(weighing);
      this.expired.length = Math.min(this.expired.length, RECENT_EXPIRED);
      this.log.warn({ weighing_id: weighing.id, kg: weighing.kg, plate: weighing.plate, at: localIso(weighing.ts, this.site.utcOffsetMinutes) }, 'weighing expired without its pair');
      this.emit('expired', weighing);
    }
  }

  private logStatus(): void {
    const s = this.status();
    this.log.info(
      {
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
      s.queue.waiting > 0 ? `status: ${s.queue.waiting} ticket(s) waiting, oldest ${s.queue.oldest_at}` : 'status: no ticket waiting',
    );
  }
}
