// The current state of the city, written to InfluxDB at intervals for the dashboards (InfluxQL
// cannot join telemetry with the registry or the alerts): trucks on the road with their company
// and where they are (truck_state), every bin with its fill level, overflow, forecast, battery and
// whether it is online (bin_state), and the open alerts counted per type and jurisdiction
// (open_alerts). docs/schema.md describes the measurements.
import { escape } from '../contract/line-protocol.ts';
import type { Logger } from 'pino';
import type { OpenCount } from '../alerts/alert-store.ts';
import type { SnapshotsConfig } from '../config/schema.ts';
import { HOUR } from '../contract/local-time.ts';
import type { Forecast } from '../rules/forecast.ts';
import type { RulesRegistry } from '../rules/registry-index.ts';
import type { BinSample, TruckFix } from '../rules/types.ts';

export interface SnapshotSource {
  registry(): RulesRegistry;
  /** Each truck's latest fix (event order), by truck id. */
  latestFixes(): Iterable<[truckId: string, fix: TruckFix]>;
  latestBinSample(deviceId: string): BinSample | null;
  binForecast(deviceId: string): Forecast | null;
  openAlertCounts(): OpenCount[];
  /** Violations of these types still going on: subject id → type → started_at. */
  ongoing(types: readonly string[]): Map<string, Map<string, number>>;
}

export interface SnapshotOptions extends SnapshotsConfig {
  /** A truck moves above this speed (rules.movingKmh). */
  movingKmh: number;
  /** A truck is loaded above this (rules.loadedKg). */
  loadedKg: number;
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

  constructor(
    private readonly source: SnapshotSource,
    private readonly options: SnapshotOptions,
    private readonly writeLines: (lines: string) => Promise<void>,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

  start(): void {
    this.stopped = false;
    this.every(this.options.intervalS, (at) => this.roadLines(at));
    this.every(this.options.binIntervalS, (at) => this.binLines(at));
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
    yield* this.truckLines(at);
    yield this.alertLines(at);
  }

  /** truck_state: one point per truck whose latest fix is recent, tagged with its company and jurisdiction. */
  *truckLines(at: number): Generator<string> {
    const now = this.clock();
    const registry = this.source.registry();
    for (const [truckId, fix] of this.source.latestFixes()) {
      if (now - fix.ts > this.options.truckActiveS * 1000) continue;
      const truck = registry.truck(truckId);
      if (!truck) continue;
      const jurisdiction = registry.jurisdictionsAt([fix.lon, fix.lat])[0] ?? 'unassigned';
      const fields = [
        `plate=${escape.quoted(truck.plate)}`,
        `lat=${fix.lat}`,
        `lon=${fix.lon}`,
        `speed_kmh=${fix.speed_kmh}`,
        `heading=${fix.heading}`,
        `moving=${fix.speed_kmh > this.options.movingKmh}`,
        ...(fix.ignition === undefined ? [] : [`ignition=${fix.ignition}`]),
        ...(fix.cover_closed === undefined ? [] : [`cover_closed=${fix.cover_closed}`]),
        ...(fix.load_kg === undefined ? [] : [`load_kg=${fix.load_kg}`, `loaded=${fix.load_kg > this.options.loadedKg}`]),
        `fix_at=${fix.ts}i`,
      ];
      yield `truck_state,company=${escape.tag(truck.companyId)},fleet=${truck.fleet},jurisdiction=${escape.tag(jurisdiction)},truck_id=${escape.tag(truck.id)} ${fields.join(',')} ${at}\n`;
    }
  }

  /** bin_state: one point per registered bin. */
  *binLines(at: number): Generator<string> {
    const now = this.clock();
    const ongoing = this.source.ongoing(['overflow', 'device_offline']);
    for (const bin of this.source.registry().allBins()) {
      const sample = this.source.latestBinSample(bin.deviceId);
      const violations = ongoing.get(bin.id);
      const overflowSince = violations?.get('overflow');
      const fields = [`lat=${bin.location[1]}`, `lon=${bin.location[0]}`, `reported=${sample !== null}`, `overflowing=${overflowSince !== undefined}`];
      if (overflowSince !== undefined) fields.push(`overflow_since=${overflowSince}i`, `overflow_h=${round((now - overflowSince) / HOUR, 2)}`);
      if (sample) {
        fields.push(`fill_pct=${round(sample.fillPct, 1)}`, `reading_at=${sample.ts}i`, `online=${!violations?.has('device_offline')}`);
        if (sample.batteryV !== undefined) fields.push(`battery_v=${sample.batteryV}`);
        if (sample.tempC !== undefined) fields.push(`temp_c=${sample.tempC}`);
        const fullAt = this.source.binForecast(bin.deviceId)?.full_at;
        if (fullAt) fields.push(`hours_to_full=${round(Math.max(0, Date.parse(fullAt) - now) / HOUR, 2)}`);
      }
      const tags = `bin_id=${escape.tag(bin.id)},category=${bin.category}${bin.communityId ? `,community=${escape.tag(bin.communityId)}` : ''}${bin.districtId ? `,district=${escape.tag(bin.districtId)}` : ''}`;
      yield `bin_state,${tags} ${fields.join(',')} ${at}\n`;
    }
  }

  /** open_alerts: alerts not yet resolved, per type, jurisdiction, severity and status; 0 once a group empties. */
  alertLines(at: number): string {
    const counts = new Map<string, number>();
    for (const c of this.source.openAlertCounts()) {
      counts.set(`jurisdiction=${escape.tag(c.jurisdiction)},severity=${escape.tag(c.severity)},status=${escape.tag(c.status)},type=${escape.tag(c.type)}`, c.count);
    }
    for (const group of this.alertGroups) if (!counts.has(group)) counts.set(group, 0);
    this.alertGroups = new Set([...counts].filter(([, n]) => n > 0).map(([group]) => group));
    let out = '';
    for (const [group, count] of counts) out += `open_alerts,${group} count=${count}i ${at}\n`;
    return out;
  }
}
