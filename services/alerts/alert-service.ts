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
import { AlertStore, type AlertChange, type AlertView } from './alert-store.ts';
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
}

/** Violations judged over a whole trip, whose stops (loading, weighing) do not end the case. */
const TRIP_TYPES = new Set(['out_of_hours', 'no_permit']);

/**
 * Findings held in memory while the registry database does not answer (PostgreSQL restarting, the
 * network to it cut), recorded in their order once it does; past this many, later ones are
 * dropped and counted (a violation still going on is found again by its next fix, and the rules
 * replay their history at the next start).
 */
const HELD_FINDINGS_MAX = 10_000;
const HELD_RETRY_MS = 1000;

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
  private readonly held: Finding[] = [];
  private heldDropped = 0;
  private heldTimer: NodeJS.Timeout | null = null;
  /** This process, in the notices it sends, so that it does not tell its listeners twice. */
  private readonly origin = randomUUID();
  private unfollow: (() => void) | null = null;

  constructor({ db, config, evidenceMax, outputs, writeLines, log, clock = Date.now }: AlertServiceDeps) {
    this.db = db;
    this.outputs = [...outputs];
    this.writeLines = writeLines;
    this.log = log;
    this.clock = clock;
    this.store = new AlertStore(db, { mergeGapMs: (type) => (TRIP_TYPES.has(type) ? config.tripMergeGapS : config.mergeGapS) * 1000, evidenceMax });
    this.webhooks = new WebhookStore(db, clock);
    this.deliverer = new WebhookDeliverer(db, config, log.child({ part: 'webhooks' }), clock);
  }

  start(): void {
    this.deliverer.start();
  }

  async stop(): Promise<void> {
    await this.deliverer.stop();
  }

  /** Stops retrying held findings (the process is stopping); says how many are lost with it. */
  stopHolding(): void {
    if (this.heldTimer) clearInterval(this.heldTimer);
    this.heldTimer = null;
    if (this.held.length > 0) this.log.warn({ held: this.held.length }, 'stopping with findings the registry database never took; the rules find them again from history at the next start');
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

  /** Findings waiting for the registry database to answer. */
  get heldFindings(): number {
    return this.held.length;
  }

  onFinding(finding: Finding): void {
    // Behind findings already held, so that each subject's are recorded in the order found.
    if (this.held.length > 0) return this.hold(finding);
    try {
      this.record(finding);
    } catch (error) {
      if (!(error instanceof DatabaseUnreachableError)) throw error;
      this.log.error({ error: error.message }, `the registry database does not answer: findings are held in memory (up to ${HELD_FINDINGS_MAX}) and recorded once it does`);
      this.hold(finding);
    }
  }

  private hold(finding: Finding): void {
    if (this.held.length >= HELD_FINDINGS_MAX) {
      if (this.heldDropped++ === 0) this.log.error({ held: this.held.length }, 'too many findings held while the registry database does not answer; later ones are dropped until it does');
      return;
    }
    this.held.push(finding);
    if (this.heldTimer) return;
    this.heldTimer = setInterval(() => this.recordHeld(), HELD_RETRY_MS);
    this.heldTimer.unref();
  }

  private recordHeld(): void {
    const count = this.held.length;
    while (this.held.length > 0) {
      try {
        this.record(this.held[0]!);
      } catch (error) {
        if (error instanceof DatabaseUnreachableError) return;
        this.log.error({ error: (error as Error).message, type: this.held[0]!.type, subject: this.held[0]!.subject.id }, 'a held finding could not be recorded; it is dropped');
      }
      this.held.shift();
    }
    clearInterval(this.heldTimer!);
    this.heldTimer = null;
    this.log.info({ recorded: count, dropped: this.heldDropped }, 'the registry database answers again: held findings recorded');
    this.heldDropped = 0;
  }

  private record(finding: Finding): void {
    const result = this.db.transaction(() => {
      const recorded = this.store.record(finding, this.clock());
      if (recorded) {
        this.webhooks.enqueue(recorded.alert, recorded.change);
        this.noticeOf(recorded.alert, recorded.change);
      }
      return recorded;
    });
    if (!result) return;
    if (result.change === 'raised') this.raised.set(result.alert.type, (this.raised.get(result.alert.type) ?? 0) + 1);
    this.announce(result);
  }

  acknowledge(id: string, by: string): AlertView {
    return this.change(() => this.store.acknowledge(id, by, this.clock()), 'acknowledged');
  }

  resolve(id: string, by: string, note: string | null): AlertView {
    return this.change(() => this.store.resolve(id, by, note, this.clock()), 'resolved');
  }

  /** Listens to every alert change; returns the function that stops listening. */
  subscribe(listener: (event: AlertEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private change(apply: () => AlertView, change: AlertChange): AlertView {
    const alert = this.db.transaction(() => {
      const updated = apply();
      this.webhooks.enqueue(updated, change);
      this.noticeOf(updated, change);
      return updated;
    });
    this.announce({ alert, change });
    return alert;
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

  /** Inside the transaction of the change: told to the other processes when it commits. */
  private noticeOf(alert: AlertView, change: AlertChange): void {
    this.db.notify(ALERTS_CHANNEL, JSON.stringify({ origin: this.origin, id: alert.id, change }));
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
