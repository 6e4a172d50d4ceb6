// Turns findings (the rules', the sorting job's) into alerts and tells everyone who should know:
// each alert change is stored (alert-store.ts) together with its webhook deliveries (webhooks.ts)
// in one transaction, then handed to the outputs given at construction (MQTT on
// waste/alerts/{jurisdiction}/{type}: mqtt-output.ts), written to the `alert` measurement, and
// pushed to the API's event streams.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AlertsConfig } from '../config/schema.ts';
import type { Finding } from '../contract/findings.ts';
import { MEASUREMENTS, int, line } from '../contract/timeseries.ts';
import { DatabaseUnreachableError, type RegistryDb } from '../registry/db.ts';
import { notice, type Steps } from '../registry/steps.ts';
import { AlertStore, lockKey, type AlertChange, type AlertView } from './alert-store.ts';
import { RegistryError } from '../registry/devices.ts';
import { within } from '../within.ts';
import { WebhookDeliverer, WebhookStore } from './webhooks.ts';

/** One change of one alert, once it is stored. */
export interface AlertEvent {
  change: AlertChange;
  alert: AlertView;
}

/**
 * Somewhere alert changes go besides the `alert` measurement, the webhooks and the API's event
 * streams: subscribers on the broker (MqttAlertOutput), or a message to a truck's driver. Told of
 * every change in the order they happen; it must not hold the alert service up (it starts its
 * sending and returns), and it logs its own failures.
 */
export interface AlertOutput {
  deliver(event: AlertEvent): void;
}

/** Appends line protocol to the durable path into InfluxDB (the spool). */
export type LineWriter = (lines: string) => Promise<void>;

export interface AlertServiceDeps {
  db: RegistryDb;
  config: AlertsConfig;
  /** Most evidence items kept per alert (rules.evidenceMax). */
  evidenceMax: number;
  /** Where each alert change goes, in this order; empty: nowhere but the measurement, webhooks and event streams. */
  outputs: readonly AlertOutput[];
  /** Where the `alert` measurement is written. */
  writeLines: LineWriter;
  log: Logger;
  clock?: () => number;
  /** Most findings waiting to be recorded (WAITING_FINDINGS_MAX). */
  waitingMax?: number;
  /**
   * Who judged, recorded as `by` in the history of the alert changes findings make: "rules on"
   * this process (the ingest worker's id), so that it can be seen which process judged a device.
   */
  judge?: string;
}

/** Violations judged over a whole trip, whose stops (loading, weighing) do not end the case. */
const TRIP_TYPES = new Set(['out_of_hours', 'no_permit']);

/**
 * Findings waiting to be recorded, in memory: on PostgreSQL every finding for the moment its
 * transaction takes, and on either backend those found while the registry database does not
 * answer (PostgreSQL restarting, the network to it cut), recorded in their order once it does.
 * Past this many, later ones are dropped and counted (a violation still going on is found again
 * by its next fix, and the rules replay their history at the next start).
 */
const WAITING_FINDINGS_MAX = 10_000;
const UNREACHABLE_RETRY_MS = 1000;
/**
 * Transactions written at the same time on PostgreSQL, each on a connection of its own
 * (RegistryDb.runAsync): those of one subject one after the other, others side by side, so that a
 * finding waits for the round trips of its own subject's only.
 */
const LANES = 4;
/** How far into the waiting work a free connection looks for a subject with nothing under way. */
const LOOKAHEAD = 256;

/** A finding to record, or an officer's change, on PostgreSQL. */
interface Work {
  /** The lock of its subject and type (alert-store.ts): work of one subject is done in the order given. */
  key: string;
  steps: () => Steps<AlertEvent | null>;
  /** A finding waits while the database does not answer; an officer's change is refused at once. */
  finding: Finding | null;
  settle: (result: AlertEvent | null, error?: Error) => void;
  running: boolean;
}

/**
 * Every alert change is told on this channel (PostgreSQL's NOTIFY, at the commit that stored it),
 * so that the API's event streams of every process show the changes any process made.
 */
export const ALERTS_CHANNEL = 'waste_alerts';

/** Topic segment for alerts outside every jurisdiction. */
export const UNASSIGNED = 'unassigned';

export class AlertService {
  readonly store: AlertStore;
  readonly webhooks: WebhookStore;
  readonly deliverer: WebhookDeliverer;
  /** Alerts raised since start, by type. */
  readonly raised = new Map<string, number>();
  private readonly listeners = new Set<(event: AlertEvent) => void>();
  private readonly db: RegistryDb;
  private readonly outputs: readonly AlertOutput[];
  private readonly writeLines: LineWriter;
  private readonly log: Logger;
  private readonly clock: () => number;
  private lastPointMs = 0;
  /** Findings and officers' changes to be written, in the order given (see pump()). */
  private readonly waiting: Work[] = [];
  /** Which of the LANES connections has a transaction under way. */
  private readonly lanesBusy: boolean[] = Array<boolean>(LANES).fill(false);
  private waitingDropped = 0;
  private droppedTotal = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private unreachable = false;
  private stopped = false;
  private readonly idle: (() => void)[] = [];
  private readonly roomWaiters: (() => void)[] = [];
  private readonly waitingMax: number;
  /** This process, in the notices it sends, so that it does not tell its listeners twice. */
  private readonly origin = randomUUID();
  private unfollow: (() => void) | null = null;

  constructor({ db, config, evidenceMax, outputs, writeLines, log, clock = Date.now, waitingMax = WAITING_FINDINGS_MAX, judge }: AlertServiceDeps) {
    this.waitingMax = waitingMax;
    this.db = db;
    this.outputs = [...outputs];
    this.writeLines = writeLines;
    this.log = log;
    this.clock = clock;
    this.store = new AlertStore(db, { mergeGapMs: (type) => (TRIP_TYPES.has(type) ? config.tripMergeGapS : config.mergeGapS) * 1000, evidenceMax, judge: judge ?? null });
    this.webhooks = new WebhookStore(db, clock);
    this.deliverer = new WebhookDeliverer(db, config, log.child({ part: 'webhooks' }), clock);
  }

  start(): void {
    this.deliverer.start();
  }

  async stop(): Promise<void> {
    await this.deliverer.stop();
  }

  /**
   * Waits up to `timeoutMs` for the findings given so far to be recorded, then stops recording
   * (the process is stopping), saying how many are lost with it.
   */
  async stopRecording(timeoutMs: number): Promise<void> {
    await within(this.recorded(), timeoutMs);
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const left = this.waiting.filter((work) => !work.running);
    this.waiting.splice(0, this.waiting.length, ...this.waiting.filter((work) => work.running));
    for (const work of left) if (!work.finding) work.settle(null, new DatabaseUnreachableError('the service is stopping; the change was not made'));
    for (const resolve of [...this.idle.splice(0), ...this.roomWaiters.splice(0)]) resolve();
    if (left.length > 0) this.log.warn({ waiting: left.length }, 'stopping with findings the registry database never took; the rules find them again from history at the next start');
  }

  /**
   * Resolves once at most half the findings that may wait do (at once on SQLite, and while the
   * database does not answer, when waiting would hold up the caller for as long).
   */
  room(): Promise<void> {
    if (this.hasRoom()) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  private hasRoom(): boolean {
    return this.waiting.length <= this.waitingMax / 2 || this.unreachable || this.stopped;
  }

  /** Resolves once no finding waits to be recorded (each given so far is recorded, or dropped). */
  recorded(): Promise<void> {
    if (this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /**
   * Tells this process's listeners (the API's event streams) of the alert changes other
   * processes make, too; the outputs, webhooks and points are the other process's to send.
   */
  followOtherProcesses(): void {
    this.unfollow ??= this.db.listen(ALERTS_CHANNEL, (payload) => {
      if (payload === null) return;
      try {
        const notice = JSON.parse(payload) as { origin: string; id: string; change: AlertChange };
        if (notice.origin === this.origin) return;
        const alert = this.store.get(notice.id);
        if (alert) this.tell({ alert, change: notice.change });
      } catch (error) {
        this.log.warn({ error: (error as Error).message }, 'could not read an alert change of another process');
      }
    });
  }

  stopFollowing(): void {
    this.unfollow?.();
    this.unfollow = null;
  }

  /** Findings (and officers' changes) waiting to be written. */
  get waitingFindings(): number {
    return this.waiting.length;
  }

  /** Findings dropped since start: too many waited, or the process was stopping. */
  get droppedFindings(): number {
    return this.droppedTotal;
  }

  /**
   * Records the finding: on SQLite here and now; on PostgreSQL without holding the thread for the
   * round trips (an alert change is two), each subject's findings one after the other in the order found.
   */
  onFinding(finding: Finding): void {
    const steps = () => this.recording(finding);
    // Behind findings waiting already, so that each subject's are recorded in the order found.
    if (this.db.dialect === 'postgres' || this.waiting.length > 0) return this.wait(finding, steps);
    try {
      this.announced(this.db.run(steps()));
    } catch (error) {
      if (!(error instanceof DatabaseUnreachableError)) throw error;
      this.wentUnreachable(error);
      this.wait(finding, steps);
    }
  }

  private wait(finding: Finding, steps: () => Steps<AlertEvent | null>): void {
    if (this.stopped || this.waiting.length >= this.waitingMax) {
      this.droppedTotal++;
      if (this.waitingDropped++ === 0) {
        if (this.stopped) this.log.warn('a finding came after recording stopped (the process is stopping); the rules find it again from history at the next start');
        else this.log.error({ waiting: this.waiting.length }, 'too many findings wait for the registry database; later ones are dropped until it takes them');
      }
      return;
    }
    const settle = (result: AlertEvent | null, error?: Error) => {
      if (error) this.log.error({ error: error.message, type: finding.type, subject: finding.subject.id }, 'a finding could not be recorded; it is dropped');
      else this.announced(result);
    };
    this.waiting.push({ key: lockKey(finding.type, finding.subject.id), steps, finding, settle, running: false });
    this.pump();
  }

  /**
   * Starts waiting work on each free connection: the first of each subject with nothing under
   * way, so that a subject's work is done in the order given and the others' goes on meanwhile.
   */
  private pump(): void {
    if (this.stopped || this.retryTimer) return;
    const seen = new Set<string>();
    for (let i = 0; i < this.waiting.length && i < LOOKAHEAD && this.lanesBusy.includes(false); i++) {
      const work = this.waiting[i]!;
      if (seen.has(work.key)) continue;
      seen.add(work.key);
      if (!work.running) this.begin(work);
    }
  }

  private begin(work: Work): void {
    const lane = this.lanesBusy.indexOf(false);
    this.lanesBusy[lane] = true;
    work.running = true;
    const finished = (result: AlertEvent | null, error?: Error) => {
      this.lanesBusy[lane] = false;
      work.running = false;
      if (error instanceof DatabaseUnreachableError && work.finding && !this.stopped) {
        // Kept where it is, and tried again with everything after it.
        this.wentUnreachable(error);
        this.retryLater();
      } else {
        this.waiting.splice(this.waiting.indexOf(work), 1);
        work.settle(result, error);
      }
      if (this.waiting.length === 0) this.emptied();
      if (this.hasRoom()) for (const resolve of this.roomWaiters.splice(0)) resolve();
      this.pump();
    };
    this.db.runAsync(work.steps, lane).then(
      (result) => finished(result),
      (error: Error) => finished(null, error),
    );
  }

  private retryLater(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.pump();
    }, UNREACHABLE_RETRY_MS);
    this.retryTimer.unref();
  }

  private emptied(): void {
    if (this.unreachable) this.log.info({ dropped: this.waitingDropped }, 'the registry database answers again: the findings that waited are recorded');
    else if (this.waitingDropped > 0) this.log.warn({ dropped: this.waitingDropped }, 'the findings that waited are recorded; some were dropped while too many waited');
    this.unreachable = false;
    this.waitingDropped = 0;
    for (const resolve of this.idle.splice(0)) resolve();
  }

  private wentUnreachable(error: DatabaseUnreachableError): void {
    if (this.unreachable) return;
    this.unreachable = true;
    for (const resolve of this.roomWaiters.splice(0)) resolve();
    this.log.error({ error: error.message }, `the registry database does not answer: findings wait in memory (up to ${this.waitingMax}) and are recorded once it does`);
  }

  /** The transaction of one finding: the alert change, its webhook deliveries, the notice to the other processes. */
  private *recording(finding: Finding): Steps<AlertEvent | null> {
    const recorded = yield* this.store.recording(finding, this.clock());
    if (recorded) {
      yield* this.webhooks.enqueuing(recorded.alert, recorded.change);
      yield notice(ALERTS_CHANNEL, this.noticeOf(recorded.alert, recorded.change));
    }
    return recorded;
  }

  private announced(event: AlertEvent | null): void {
    if (!event) return;
    if (event.change === 'raised') this.raised.set(event.alert.type, (this.raised.get(event.alert.type) ?? 0) + 1);
    this.announce(event);
  }

  /** An officer acknowledges an alert (open → acknowledged). */
  acknowledge(id: string, by: string): Promise<AlertView> {
    return this.change(id, (now) => this.store.transition(id, 'acknowledged', by, null, now));
  }

  /** An officer resolves an alert (open or acknowledged → resolved), with an optional note. */
  resolve(id: string, by: string, note: string | null): Promise<AlertView> {
    return this.change(id, (now) => this.store.transition(id, 'resolved', by, note, now));
  }

  /**
   * An officer's change, with its webhook deliveries and notice. On PostgreSQL it goes behind the
   * work of the alert's subject waiting already (so changes are told in the order they are made),
   * on the alerts' connections: made here, waiting for the subject's lock, it could wait for a
   * transaction under way there that only this thread can finish.
   */
  private change(id: string, transition: (now: number) => Steps<AlertView>): Promise<AlertView> {
    const steps = () => this.changing(transition);
    if (this.db.dialect !== 'postgres') {
      try {
        const event = this.db.run(steps())!;
        this.announce(event);
        return Promise.resolve(event.alert);
      } catch (error) {
        return Promise.reject(error as Error);
      }
    }
    if (this.unreachable || this.stopped) return Promise.reject(new DatabaseUnreachableError('the registry database does not answer; try again shortly'));
    let key: string | null;
    try {
      key = this.store.lockKeyOf(id);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    if (key === null) return Promise.reject(new RegistryError('not_found', `no alert ${id}`));
    return new Promise((resolve, reject) => {
      const settle = (event: AlertEvent | null, error?: Error) => {
        if (error || !event) return reject(error ?? new Error('the change was not made'));
        this.announce(event);
        resolve(event.alert);
      };
      this.waiting.push({ key, steps, finding: null, settle, running: false });
      this.pump();
    });
  }

  /** The transaction of an officer's change: the change, its webhook deliveries, the notice to the other processes. */
  private *changing(transition: (now: number) => Steps<AlertView>): Steps<AlertEvent | null> {
    const alert = yield* transition(this.clock());
    const change = alert.status as 'acknowledged' | 'resolved';
    yield* this.webhooks.enqueuing(alert, change);
    yield notice(ALERTS_CHANNEL, this.noticeOf(alert, change));
    return { alert, change };
  }

  /** Listens to every alert change; returns the function that stops listening. */
  subscribe(listener: (event: AlertEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private announce(event: AlertEvent): void {
    const { alert } = event;
    for (const output of this.outputs) {
      try {
        output.deliver(event);
      } catch (error) {
        this.log.error({ alert: alert.id, error: (error as Error).message }, 'an alert output failed');
      }
    }
    this.writeLines(this.lines(event)).catch((error: Error) => this.log.error({ alert: alert.id, error: error.message }, 'could not record an alert change for InfluxDB'));
    this.tell(event);
  }

  /** Sent in the transaction of the change: told to the other processes when it commits. */
  private noticeOf(alert: AlertView, change: AlertChange): string {
    return JSON.stringify({ origin: this.origin, id: alert.id, change });
  }

  private tell(event: AlertEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.log.error({ error: (error as Error).message }, 'an alert listener failed');
      }
    }
  }

  /** One `alert` point per jurisdiction (docs/schema.md); timestamps kept distinct so no change overwrites another. */
  private lines({ alert, change }: AlertEvent): string {
    const ts = (this.lastPointMs = Math.max(this.clock(), this.lastPointMs + 1));
    const fields = {
      alert_id: alert.id,
      change,
      subject_id: alert.subject.id,
      plate: alert.subject.plate || undefined,
      lon: alert.location?.coordinates[0],
      lat: alert.location?.coordinates[1],
      started_at: int(Date.parse(alert.started_at)),
      ended_at: alert.ended_at ? int(Date.parse(alert.ended_at)) : undefined,
      version: int(alert.version),
    };
    // The truck's company and the bin's (or community's) district, for dashboards to filter by.
    const text = (value: unknown) => (typeof value === 'string' ? value : undefined);
    const tags = {
      company: text(alert.detail.company_id),
      district: alert.subject.kind === 'district' ? alert.subject.id : text(alert.detail.district_id),
      severity: alert.severity,
      status: alert.status,
      type: alert.type,
    };
    return (alert.jurisdictions.length > 0 ? alert.jurisdictions : [UNASSIGNED]).map((jurisdiction) => line(MEASUREMENTS.alert, { ...tags, jurisdiction }, fields, ts)).join('');
  }
}
