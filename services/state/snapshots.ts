// The current state of the city, written to InfluxDB at intervals for the dashboards (InfluxQL
// cannot join telemetry with the registry or the alerts): trucks on the road with their company
// and where they are (truck_state), every bin with its fill level, overflow, forecast, battery and
// whether it is online (bin_state), and the open alerts counted per type and jurisdiction
// (open_alerts). docs/schema.md describes the measurements. The trucks and bins are the city
// index's (registry/city-index.ts, given at construction); what they last reported, the rules'.
import type { Logger } from 'pino';
import type { OpenCount } from '../alerts/alert-store.ts';
import type { SnapshotsConfig } from '../config/schema.ts';
import type { BinSample, Forecast, TruckFix } from '../contract/findings.ts';
import { HOUR } from '../contract/local-time.ts';
import { MEASUREMENTS, int, line, type FieldValue } from '../contract/timeseries.ts';
import type { CityIndex } from '../registry/city-index.ts';

/** What the rules and the alert store know now. */
export interface SnapshotSource {
  /** Each truck's latest fix (event order), by truck id. */
  latestFixes(): Iterable<[truckId: string, fix: TruckFix]>;
  latestBinSample(deviceId: string): BinSample | null;
  binForecast(deviceId: string): Forecast | null;
  openAlertCounts(): OpenCount[];
  /** Violations of these types still going on: subject id → type → started_at. */
  ongoing(types: readonly string[]): Map<string, Map<string, number>>;
}

export interface SnapshotOptions extends SnapshotsConfig {
  /**
   * What this process writes: the trucks and bins its rules know (the ingest role), the open-alert
   * counts read from the registry (the active scheduler), or both (one process).
   */
  parts: { devices: boolean; openAlerts: boolean };
  /**
   * Every registered bin, those no reading came for as not reported; false: only bins this
   * process has a reading of, when several ingest processes share the bins and each would
   * otherwise write the others' as not reported.
   */
  everyBin: boolean;
  /** A truck moves above this speed (rules.movingKmh). */
  movingKmh: number;
  /** A truck is loaded above this (rules.loadedKg). */
  loadedKg: number;
}

export interface SnapshotDeps {
  /** The registry in memory (trucks, bins, jurisdictions); started and stopped by whoever built it. */
  city: CityIndex;
  source: SnapshotSource;
  options: SnapshotOptions;
  writeLines: (lines: string) => Promise<void>;
  log: Logger;
  clock?: () => number;
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * Lines built between two turns of the event loop. 1,000 took 5–7 ms, and 18–19 ms for the first
 * slices of a snapshot, with the service taking 10,000 fixes/s (bench:rules): long enough to show in
 * the alerts' p99 whenever a minute began. 250 hold ingest and alerts up for 1–5 ms at a time.
 */
export const SLICE_LINES = 250;

export class StateSnapshots {
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  /** Groups of open_alerts written last time, so a group whose alerts all closed is written as 0. */
  private alertGroups = new Set<string>();
  private readonly city: CityIndex;
  private readonly source: SnapshotSource;
  private readonly options: SnapshotOptions;
  private readonly writeLines: (lines: string) => Promise<void>;
  private readonly log: Logger;
  private readonly clock: () => number;

  constructor(deps: SnapshotDeps) {
    this.city = deps.city;
    this.source = deps.source;
    this.options = deps.options;
    this.writeLines = deps.writeLines;
    this.log = deps.log;
    this.clock = deps.clock ?? Date.now;
  }

  start(): void {
    this.stopped = false;
    const { devices, openAlerts } = this.options.parts;
    if (devices || openAlerts) this.every(this.options.intervalS, (at) => this.roadLines(at));
    if (devices) this.every(this.options.binIntervalS, (at) => this.binLines(at));
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  /**
   * Writes at once, then at every multiple of the interval, timestamped with that multiple: a
   * dashboard grouping by the interval sees one snapshot per group, and a restart within an
   * interval overwrites that interval's snapshot instead of adding a second one.
   */
  private every(seconds: number, lines: (at: number) => Iterable<string>): void {
    const ms = seconds * 1000;
    const tick = (timer?: NodeJS.Timeout) => {
      if (timer) this.timers.delete(timer);
      const now = this.clock();
      void this.write(lines(now - (now % ms)));
      const next: NodeJS.Timeout = setTimeout(() => tick(next), ms - (this.clock() % ms));
      next.unref();
      this.timers.add(next);
    };
    tick();
  }

  /** Spools the lines SLICE_LINES at a time, letting the event loop turn in between. */
  private async write(lines: Iterable<string>): Promise<void> {
    const spool = (text: string) => {
      if (text) this.writeLines(text).catch((error: Error) => this.log.warn({ error: error.message }, 'could not spool a state snapshot'));
    };
    try {
      let text = '';
      let count = 0;
      for (const line of lines) {
        text += line;
        if (++count % SLICE_LINES > 0) continue;
        spool(text);
        text = '';
        await new Promise((resolve) => setImmediate(resolve));
        if (this.stopped) return;
      }
      spool(text);
    } catch (error) {
      this.log.error({ error: (error as Error).message }, 'state snapshot failed');
    }
  }

  /** What is written every intervalS: truck_state, then open_alerts. */
  private *roadLines(at: number): Generator<string> {
    if (this.options.parts.devices) yield* this.truckLines(at);
    if (this.options.parts.openAlerts) yield this.alertLines(at);
  }

  /** truck_state: one point per truck whose latest fix is recent, tagged with its company and jurisdiction. */
  *truckLines(at: number): Generator<string> {
    const now = this.clock();
    const registry = this.city.current;
    for (const [truckId, fix] of this.source.latestFixes()) {
      if (now - fix.ts > this.options.truckActiveS * 1000) continue;
      const truck = registry.truck(truckId);
      if (!truck) continue;
      const jurisdiction = registry.jurisdictionsAt([fix.lon, fix.lat])[0] ?? 'unassigned';
      const fields = {
        plate: truck.plate,
        lat: fix.lat,
        lon: fix.lon,
        speed_kmh: fix.speed_kmh,
        heading: fix.heading,
        moving: fix.speed_kmh > this.options.movingKmh,
        ignition: fix.ignition,
        cover_closed: fix.cover_closed,
        load_kg: fix.load_kg,
        loaded: fix.load_kg === undefined ? undefined : fix.load_kg > this.options.loadedKg,
        fix_at: int(fix.ts),
      };
      yield line(MEASUREMENTS.truckState, { company: truck.companyId, fleet: truck.fleet, jurisdiction, truck_id: truck.id }, fields, at);
    }
  }

  /** bin_state: one point per registered bin. */
  *binLines(at: number): Generator<string> {
    const now = this.clock();
    const ongoing = this.source.ongoing(['overflow', 'device_offline']);
    for (const bin of this.city.current.allBins()) {
      const sample = this.source.latestBinSample(bin.deviceId);
      if (!sample && !this.options.everyBin) continue;
      const violations = ongoing.get(bin.id);
      const overflowSince = violations?.get('overflow');
      const fields: Record<string, FieldValue | undefined> = { lat: bin.location[1], lon: bin.location[0], reported: sample !== null, overflowing: overflowSince !== undefined };
      if (overflowSince !== undefined) Object.assign(fields, { overflow_since: int(overflowSince), overflow_h: round((now - overflowSince) / HOUR, 2) });
      if (sample) {
        const fullAt = this.source.binForecast(bin.deviceId)?.full_at;
        Object.assign(fields, {
          fill_pct: round(sample.fillPct, 1),
          reading_at: int(sample.ts),
          online: !violations?.has('device_offline'),
          battery_v: sample.batteryV,
          battery_pct: sample.batteryPct,
          temp_c: sample.tempC,
          hours_to_full: fullAt ? round(Math.max(0, Date.parse(fullAt) - now) / HOUR, 2) : undefined,
        });
      }
      yield line(MEASUREMENTS.binState, { bin_id: bin.id, category: bin.category, community: bin.communityId, district: bin.districtId }, fields, at);
    }
  }

  /** open_alerts: alerts not yet resolved, per type, jurisdiction, severity and status; 0 once a group empties. */
  alertLines(at: number): string {
    const counts = new Map<string, number>();
    for (const c of this.source.openAlertCounts()) {
      counts.set(JSON.stringify([c.jurisdiction, c.severity, c.status, c.type]), c.count);
    }
    for (const group of this.alertGroups) if (!counts.has(group)) counts.set(group, 0);
    this.alertGroups = new Set([...counts].filter(([, n]) => n > 0).map(([group]) => group));
    let out = '';
    for (const [group, count] of counts) {
      const [jurisdiction, severity, status, type] = JSON.parse(group) as string[];
      out += line(MEASUREMENTS.openAlerts, { jurisdiction, severity, status, type }, { count: int(count) }, at);
    }
    return out;
  }
}
