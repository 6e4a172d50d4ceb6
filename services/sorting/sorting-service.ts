// The separation-rate job (docs/architecture.md §4): on a node-cron schedule (and on demand through the API)
// it counts a day's household-waste tickets from InfluxDB per community, district and city, keeps
// the tonnage (sorting-store.ts), writes the day's and the rolling 7-day figures to the
// `separation_rate` measurement, and raises separation_below_target for each community and
// district below its target on a complete day. A ticket arriving for a past day gets that day
// counted (again, or for the first time: a backlog sent to a service started later), with the
// 7-day figures it is part of; the days owed a count are kept in the registry database until
// their count succeeds, so a restart in between does not drop them.
import { MEASUREMENTS, int, line, type FieldValue } from '../contract/timeseries.ts';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { SortingConfig } from '../config/schema.ts';
import { CST_OFFSET_MS, DAY, addDays, localDate, localDayStart } from '../contract/local-time.ts';
import type { Finding, LonLat } from '../contract/findings.ts';
import type { Reading } from '../contract/payloads.ts';
import type { TelemetryReader } from '../influx/reader.ts';
import { centreOf, type Area, type CityIndex } from '../registry/city-index.ts';
import { ENTITIES } from '../registry/entities.ts';
import type { EntityStore } from '../registry/entity-store.ts';
import { SortingStore, type SeparationFigure } from './sorting-store.ts';
import { trend, type Trend } from './reports.ts';
import { HOUSEHOLD, isHousehold, tonnageByScope } from './tonnage.ts';

export interface SortingDeps {
  config: SortingConfig;
  store: SortingStore;
  entities: EntityStore;
  /** Where the tickets are read from; null while InfluxDB is not configured. */
  reader: TelemetryReader | null;
  /**
   * Resolves true once everything the service has accepted so far is in InfluxDB (the spool
   * delivered), false when the time is up. Tickets still in the spool would be left out of a count.
   */
  delivered?: (timeoutMs: number) => Promise<boolean>;
  /** The registry in memory (the jurisdictions of a community); started and stopped by whoever built it. */
  city: CityIndex;
  writeLines: (lines: string) => Promise<void>;
  onFinding: (finding: Finding) => void;
  log: Logger;
  clock?: () => number;
  /**
   * Claims the scheduled run for `slot` (the local hour it is made in); false when another
   * process made it already (scheduler/job-runs.ts). Absent: every run is made.
   */
  claimRun?: (slot: string) => boolean;
}

/** How often days with late tickets are looked at. */
const LATE_CHECK_MS = 5000;
/**
 * A day whose tickets keep coming (a backlog trickling in) is counted at the latest this many
 * settle periods after its first ticket, rather than waiting for a quiet that may never come.
 */
const LATE_MAX_SETTLES = 10;
/** How long a count waits for the tickets accepted before it to reach InfluxDB. */
const DELIVERY_WAIT_MS = 30_000;
const DELIVERY_STEP_MS = 1000;
/** Most days one recomputation request may cover. */
export const MAX_RECOMPUTE_DAYS = 400;

interface Place {
  districtId: string;
  centre: LonLat;
}

export class SortingService {
  private task: ScheduledTask | null = null;
  private stopping = false;
  private timer: NodeJS.Timeout | null = null;
  /**
   * Past days owed a count and not yet taken by one: when their first and latest ticket arrived
   * (server time). Each is also in the store's owed days, which outlive a restart.
   */
  private readonly late = new Map<string, { first: number; last: number }>();
  private running: Promise<unknown> = Promise.resolve();
  private readonly clock: () => number;

  constructor(private readonly deps: SortingDeps) {
    this.clock = deps.clock ?? Date.now;
  }

  get store(): SortingStore {
    return this.deps.store;
  }

  get denominator(): SortingConfig['denominator'] {
    return this.deps.config.denominator;
  }

  start(): void {
    const { config, log } = this.deps;
    this.stopping = false;
    this.task = cron.schedule(config.schedule, () => this.runScheduled(), { timezone: 'Asia/Shanghai', name: 'separation-rate', noOverlap: true });
    this.timer = setInterval(() => this.recountLateDays(), LATE_CHECK_MS);
    this.timer.unref();
    // Days owed a count before a restart: counted once the settle time has gone by, as if their
    // tickets had just come (more of the backlog may be on its way).
    const owed = this.deps.store.owedDays();
    const now = this.clock();
    for (const { day } of owed) if (!this.late.has(day)) this.late.set(day, { first: now, last: now });
    if (owed.length > 0) log.info({ days: owed.map((d) => d.day) }, `tickets arrived for these past days before the restart; counting them in ${config.lateTicketSettleS} s`);
    // A service that was down at the scheduled time catches up now.
    this.runScheduled();
    log.info({ schedule: config.schedule, denominator: config.denominator, targetRate: config.targetRate }, 'separation-rate job scheduled');
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.task?.destroy();
    this.task = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running.catch(() => {});
  }

  /**
   * Notes tickets for past days, counted before or not, to count those days. Called before the
   * spool's append, so the day is owed in the registry database before the device is acknowledged.
   * Only the first ticket of a day since its last count writes there; the ingest's age window
   * (ingest.maxAgeMs) bounds how many days can be owed.
   */
  consume(readings: readonly Reading[]): void {
    let today: string | null = null;
    for (const r of readings) {
      if (r.kind !== 'ticket' || !isHousehold(r)) continue;
      const now = this.clock();
      today ??= localDate(now);
      const day = localDate(r.ts);
      if (day >= today) continue; // today is counted by the job
      // A process that does not run the job (the ingest role apart from the scheduler) cannot
      // tell when the day was counted: it marks every such ticket, and the scheduler counts.
      if (!this.task) {
        this.deps.store.oweCount(day, now);
        continue;
      }
      const owed = this.late.get(day);
      if (owed) {
        owed.last = now;
        continue;
      }
      this.late.set(day, { first: now, last: now });
      this.deps.store.oweCount(day, now);
    }
  }

  /** Counts the days (oldest first), one after the other; returns the tickets counted per day. */
  computeDays(days: string[]): Promise<{ day: string; tickets: number }[]> {
    // Days owed a count are taken now: a ticket arriving from here on owes its day another count,
    // since this one may read InfluxDB before that ticket is there.
    const taken = new Map<string, number>();
    for (const day of days) {
      this.late.delete(day);
      const marks = this.deps.store.owedMarks(day);
      if (marks !== null) taken.set(day, marks);
    }
    const run = this.running.then(async () => {
      await this.waitForDelivery();
      const places = this.places();
      const out = [];
      for (const day of [...days].sort()) {
        out.push({ day, tickets: await this.computeDay(day, places) });
        const marks = taken.get(day);
        if (marks !== undefined) this.deps.store.settleOwed(day, marks);
        taken.delete(day);
      }
      await this.writeTrends(new Set(days.map((day) => day.slice(0, 7))), places);
      return out;
    });
    this.running = run.catch(() => {
      // Days whose count did not happen are still owed one: tried again after the settle time.
      const now = this.clock();
      for (const day of taken.keys()) if (!this.late.has(day)) this.late.set(day, { first: now, last: now });
    });
    return run;
  }

  /** Until the tickets accepted so far are in InfluxDB: a count made earlier would leave them out. */
  private async waitForDelivery(): Promise<void> {
    const { delivered } = this.deps;
    if (!delivered) return;
    // In steps, so that stop() need not wait out a spool that cannot deliver.
    for (let waited = 0; waited < DELIVERY_WAIT_MS && !this.stopping; waited += DELIVERY_STEP_MS) {
      if (await delivered(DELIVERY_STEP_MS)) return;
    }
    if (this.stopping) throw new Error('the service is stopping before the tickets it accepted reached InfluxDB; counting now would leave them out');
    throw new Error(`tickets the service accepted are not all in InfluxDB after ${DELIVERY_WAIT_MS / 1000} s (the spool is still delivering); counting now would leave them out`);
  }

  private runScheduled(): void {
    const now = this.clock();
    const slot = `${localDate(now)}T${String(new Date(now + CST_OFFSET_MS).getUTCHours()).padStart(2, '0')}`;
    if (this.deps.claimRun && !this.deps.claimRun(slot)) {
      this.deps.log.info({ slot }, 'separation-rate run of this hour made already (by this or another process); skipped');
      return;
    }
    const today = localDate(now);
    this.computeDays([addDays(today, -1), today]).catch((error: Error) => this.deps.log.error({ error: error.message }, 'separation-rate job failed; it runs again at the next scheduled time'));
  }

  /** Counts the past days whose tickets have settled, all in one run (computeDays takes them from `late`). */
  private recountLateDays(): void {
    const settle = this.deps.config.lateTicketSettleS * 1000;
    const now = this.clock();
    // Days owed by tickets another process took (the ingest role apart from the scheduler).
    for (const { day } of this.deps.store.owedDays()) if (!this.late.has(day)) this.late.set(day, { first: now, last: now });
    const due = [...this.late].filter(([, at]) => now - at.last >= settle || now - at.first >= settle * LATE_MAX_SETTLES).map(([day]) => day);
    if (due.length === 0) return;
    this.deps.log.info({ days: due }, 'tickets arrived for past days; counting those days');
    this.computeDays(due).catch((error: Error) => {
      this.deps.log.error({ days: due, error: error.message }, `could not count past days that tickets arrived for; trying again in ${this.deps.config.lateTicketSettleS} s`);
    });
  }

  private async computeDay(day: string, places: Map<string, Place>): Promise<number> {
    const { reader, store, log } = this.deps;
    if (!reader) throw new Error('InfluxDB is not configured: the separation rate is counted from the tickets stored there');
    const started = performance.now();
    const from = localDayStart(day);
    const tickets = await reader.ticketsBetween(from, from + DAY);
    store.saveDay(day, tonnageByScope(tickets, (id) => places.get(id)?.districtId), tickets.length, this.clock());
    const today = localDate(this.clock());
    const figures = store.figures(day, 'day');
    // The 7-day figures this day is part of, up to today.
    for (let n = 0; n < 7; n++) {
      const end = addDays(day, n);
      if (end > today) break;
      if (n === 0 || store.isCounted(end)) figures.push(...store.figures(end, '7d'));
    }
    await this.deps.writeLines(figures.map(figureLine).join(''));
    if (day < today) this.raiseBelowTarget(day, figures.filter((f) => f.window === 'day'), places);
    log.info({ day, tickets: tickets.length, ms: Math.round(performance.now() - started) }, 'separation rate counted');
    return tickets.length;
  }

  /** The 三增一减 trend of each month given, for the city and every district (`sorting_trend`). */
  private async writeTrends(months: Set<string>, places: Map<string, Place>): Promise<void> {
    const districts = [...new Set([...places.values()].map((p) => p.districtId))];
    let lines = '';
    for (const month of months) {
      lines += trendLine(trend(this.deps.store, 'city', 'city', month));
      for (const district of districts) lines += trendLine(trend(this.deps.store, 'district', district, month));
    }
    await this.deps.writeLines(lines);
  }

  private raiseBelowTarget(day: string, figures: SeparationFigure[], places: Map<string, Place>): void {
    const registry = this.deps.city.current;
    const start = localDayStart(day);
    for (const f of figures) {
      if (f.scope === 'city' || !f.below_target) continue;
      const centres = f.scope === 'community' ? [places.get(f.scope_id)?.centre] : [...places.values()].filter((p) => p.districtId === f.scope_id).map((p) => p.centre);
      const located = centres.filter((c): c is LonLat => c !== undefined);
      this.deps.onFinding({
        type: 'separation_below_target',
        severity: 'warning',
        subject: { kind: f.scope, id: f.scope_id },
        startedAt: start,
        endedAt: start + DAY,
        location: f.scope === 'community' ? (located[0] ?? null) : null,
        jurisdictions: [...new Set(located.flatMap((c) => registry.jurisdictionsAt(c)))].sort(),
        evidence: [],
        permit: null,
        detail: { day, rate: f.rate, target: f.target, denominator: this.deps.config.denominator, district_id: f.district_id, kitchen_kg: f.kitchen_kg, recyclable_kg: f.recyclable_kg, hazardous_kg: f.hazardous_kg, other_kg: f.other_kg },
      });
    }
  }

  /** Communities: their district and centre. */
  private places(): Map<string, Place> {
    return new Map(this.deps.entities.all(ENTITIES.communities).map((c) => [c.id, { districtId: c.district_id as string, centre: centreOf(c.geometry as Area) }]));
  }
}

/** One `sorting_trend` point (docs/schema.md), at the local midnight starting the month. */
function trendLine(t: Trend): string {
  const fields: Record<string, FieldValue | null> = { days_counted: int(t.month.days_counted) };
  for (const c of HOUSEHOLD) {
    fields[`${c}_kg`] = t.month.kg[c];
    fields[`${c}_mom`] = t.month_over_month[c];
    fields[`${c}_yoy`] = t.year_over_year[c];
  }
  fields.three_up_one_down_mom = t.three_up_one_down.month_over_month;
  fields.three_up_one_down_yoy = t.three_up_one_down.year_over_year;
  return line(MEASUREMENTS.sortingTrend, { scope: t.scope, scope_id: t.scope_id }, fields, localDayStart(`${t.month.month}-01`));
}

/** One `separation_rate` point (docs/schema.md), at the local midnight starting the day, so a recount overwrites it. */
function figureLine(f: SeparationFigure): string {
  return line(
    MEASUREMENTS.separationRate,
    { scope: f.scope, scope_id: f.scope_id, district_id: f.district_id, window: f.window },
    {
      kitchen_kg: f.kitchen_kg,
      recyclable_kg: f.recyclable_kg,
      hazardous_kg: f.hazardous_kg,
      other_kg: f.other_kg,
      rate: f.rate,
      below_target: f.rate === null ? null : f.below_target,
      target: f.target,
      days_counted: int(f.days_counted),
    },
    localDayStart(f.day),
  );
}
