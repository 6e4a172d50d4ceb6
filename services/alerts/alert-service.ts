// Turns the rules' findings into alerts and tells everyone who should know: each alert change is
// stored (alert-store.ts) together with its webhook deliveries (webhooks.ts) in one transaction,
// then published on waste/alerts/{jurisdiction}/{type} (QoS 1), written to the `alert` measurement,
// and pushed to the API's event streams.
import { MEASUREMENTS, int, line } from '../contract/timeseries.ts';
import type { Logger } from 'pino';
import type { AlertsConfig } from '../config/schema.ts';
import type { Finding } from '../contract/findings.ts';
import { topics } from '../contract/topics.ts';
import type { RegistryDb } from '../registry/db.ts';
import { AlertStore, type AlertChange, type AlertView } from './alert-store.ts';
import { WebhookDeliverer, WebhookStore } from './webhooks.ts';

export interface AlertEvent {
  change: AlertChange;
  alert: AlertView;
}

export type AlertPublisher = (topic: string, payload: string) => Promise<void>;
/** Appends line protocol to the durable path into InfluxDB (the spool). */
export type LineWriter = (lines: string) => Promise<void>;

/** Violations judged over a whole trip, whose stops (loading, weighing) do not end the case. */
const TRIP_TYPES = new Set(['out_of_hours', 'no_permit']);

/** Topic segment for alerts outside every jurisdiction. */
export const UNASSIGNED = 'unassigned';

export class AlertService {
  readonly store: AlertStore;
  readonly webhooks: WebhookStore;
  readonly deliverer: WebhookDeliverer;
  /** Alerts raised since start, by type. */
  readonly raised = new Map<string, number>();
  private readonly listeners = new Set<(event: AlertEvent) => void>();
  private publisher: AlertPublisher = async () => {};
  private lastPointMs = 0;

  constructor(
    private readonly db: RegistryDb,
    config: AlertsConfig,
    private readonly writeLines: LineWriter,
    private readonly log: Logger,
    evidenceMax: number,
    private readonly clock: () => number = Date.now,
  ) {
    this.store = new AlertStore(db, { mergeGapMs: (type) => (TRIP_TYPES.has(type) ? config.tripMergeGapS : config.mergeGapS) * 1000, evidenceMax });
    this.webhooks = new WebhookStore(db, clock);
    this.deliverer = new WebhookDeliverer(db, config, log.child({ part: 'webhooks' }), clock);
  }

  /** Where MQTT alerts go (the embedded broker, or the worker's connection to an external one). */
  setPublisher(publisher: AlertPublisher): void {
    this.publisher = publisher;
  }

  start(): void {
    this.deliverer.start();
  }

  async stop(): Promise<void> {
    await this.deliverer.stop();
  }

  onFinding(finding: Finding): void {
    const result = this.db.transaction(() => {
      const recorded = this.store.record(finding, this.clock());
      if (recorded) this.webhooks.enqueue(recorded.alert, recorded.change);
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
      return updated;
    });
    this.announce({ alert, change });
    return alert;
  }

  private announce(event: AlertEvent): void {
    const { alert } = event;
    const payload = JSON.stringify(alert);
    for (const jurisdiction of alert.jurisdictions.length > 0 ? alert.jurisdictions : [UNASSIGNED]) {
      this.publisher(topics.alert(jurisdiction, alert.type), payload).catch((error: Error) => this.log.error({ alert: alert.id, error: error.message }, 'could not publish an alert on MQTT'));
    }
    this.writeLines(this.lines(event)).catch((error: Error) => this.log.error({ alert: alert.id, error: error.message }, 'could not record an alert change for InfluxDB'));
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
