// Trends and rankings over the counted days (sorting-store.ts) and the bins' alerts:
//   - trends: a month's tonnage per category against the month before and the same month a year
//     before, and whether it shows 三增一减 (kitchen, recyclable and hazardous waste up, other down);
//   - rankings: districts or communities over a period by separation rate (highest first),
//     overflow-hours and missed collections (fewest first).
import type { RegistryDb } from '../registry/db.ts';
import { addDays } from '../contract/local-time.ts';
import { tonnageOf, type SortingStore } from './sorting-store.ts';
import { HOUSEHOLD, emptyTonnage, type HouseholdCategory, type Scope } from './tonnage.ts';

export interface MonthTonnage {
  month: string;
  days_counted: number;
  kg: Record<HouseholdCategory, number>;
}

export interface Trend {
  scope: Scope;
  scope_id: string;
  month: MonthTonnage;
  previous_month: MonthTonnage;
  previous_year: MonthTonnage;
  /** Relative change per category (0.05 = +5 %); null without tonnage to compare with. */
  month_over_month: Record<HouseholdCategory, number | null>;
  year_over_year: Record<HouseholdCategory, number | null>;
  /** 三增一减 against each comparison; null when a category cannot be compared. */
  three_up_one_down: { month_over_month: boolean | null; year_over_year: boolean | null };
}

export type RankBy = 'separation_rate' | 'overflow_hours' | 'missed_collections';

export interface RankRow {
  rank: number;
  scope: Exclude<Scope, 'city'>;
  scope_id: string;
  district_id: string | null;
  separation_rate: number | null;
  target: number;
  kitchen_kg: number;
  other_kg: number;
  overflow_hours: number;
  missed_collections: number;
}

/** The first and last day (YYYY-MM-DD) of a month YYYY-MM, and the month n months away. */
export function monthDays(month: string): [string, string] {
  return [`${month}-01`, addDays(`${shiftMonth(month, 1)}-01`, -1)];
}

export function shiftMonth(month: string, n: number): string {
  const [y, m] = month.split('-').map(Number) as [number, number];
  const index = y * 12 + (m - 1) + n;
  return `${Math.floor(index / 12)}-${String((index % 12) + 1).padStart(2, '0')}`;
}

const round = (x: number) => Math.round(x * 10) / 10;

export function trend(store: SortingStore, scope: Scope, scopeId: string, month: string): Trend {
  const tonnage = (m: string): MonthTonnage => {
    const [from, to] = monthDays(m);
    const row = store.sums(from, to, scope, scopeId)[0];
    const kg = row ? tonnageOf(row) : emptyTonnage();
    for (const c of HOUSEHOLD) kg[c] = round(kg[c]);
    return { month: m, days_counted: store.countedDays(from, to).length, kg };
  };
  const current = tonnage(month);
  const previousMonth = tonnage(shiftMonth(month, -1));
  const previousYear = tonnage(shiftMonth(month, -12));
  const change = (before: MonthTonnage) =>
    Object.fromEntries(HOUSEHOLD.map((c) => [c, before.kg[c] > 0 ? Math.round(((current.kg[c] - before.kg[c]) / before.kg[c]) * 10_000) / 10_000 : null])) as Record<HouseholdCategory, number | null>;
  const verdict = (delta: Record<HouseholdCategory, number | null>) =>
    HOUSEHOLD.some((c) => delta[c] === null) ? null : delta.kitchen! > 0 && delta.recyclable! > 0 && delta.hazardous! > 0 && delta.other! < 0;
  const mom = change(previousMonth);
  const yoy = change(previousYear);
  return {
    scope,
    scope_id: scopeId,
    month: current,
    previous_month: previousMonth,
    previous_year: previousYear,
    month_over_month: mom,
    year_over_year: yoy,
    three_up_one_down: { month_over_month: verdict(mom), year_over_year: verdict(yoy) },
  };
}

/** Overflow hours (clipped to [from, to)) and missed collections per community and district, from the bins' alerts. */
function binTotals(db: RegistryDb, from: number, to: number, now: number): Map<string, { overflowMs: number; missed: number }> {
  // A field of the alert's detail (JSON text): json_extract is SQLite's, ->> PostgreSQL's. The
  // clipping is written with CASE: two-argument MIN and MAX are SQLite's only (PostgreSQL has
  // LEAST and GREATEST, which SQLite has not).
  const field = (key: string) => (db.dialect === 'postgres' ? `(detail::jsonb ->> '${key}')` : `json_extract(detail, '$.${key}')`);
  const rows = db.statement(
      `SELECT ${field('community_id')} AS community, ${field('district_id')} AS district, type,
              SUM(CASE WHEN COALESCE(ended_at, @now) < @to THEN COALESCE(ended_at, @now) ELSE @to END - CASE WHEN started_at > @from THEN started_at ELSE @from END) AS ms,
              COUNT(*) AS n
       FROM alerts WHERE type IN ('overflow', 'missed_collection') AND started_at < @to AND COALESCE(ended_at, @now) >= @from
       GROUP BY community, district, type`,
    )
    .all({ from, to, now }) as { community: string | null; district: string | null; type: string; ms: number; n: number }[];
  const totals = new Map<string, { overflowMs: number; missed: number }>();
  const add = (key: string, type: string, ms: number, n: number) => {
    const t = totals.get(key) ?? { overflowMs: 0, missed: 0 };
    if (type === 'overflow') t.overflowMs += Math.max(0, ms);
    else t.missed += n;
    totals.set(key, t);
  };
  for (const r of rows) {
    if (r.community) add(`community:${r.community}`, r.type, r.ms, r.n);
    if (r.district) add(`district:${r.district}`, r.type, r.ms, r.n);
  }
  return totals;
}

export function ranking(
  store: SortingStore,
  db: RegistryDb,
  options: { scope: Exclude<Scope, 'city'>; from: string; to: string; by: RankBy; fromMs: number; toMs: number; now: number; scopeIds: string[] },
): RankRow[] {
  const sums = new Map(store.sums(options.from, options.to, options.scope).map((r) => [r.scope_id, r]));
  const totals = binTotals(db, options.fromMs, options.toMs, options.now);
  const ids = [...new Set([...options.scopeIds, ...sums.keys()])];
  const rows = ids.map((id): Omit<RankRow, 'rank'> => {
    const row = sums.get(id);
    const rate = row ? store.rate(row) : null;
    const bins = totals.get(`${options.scope}:${id}`);
    return {
      scope: options.scope,
      scope_id: id,
      district_id: row?.district_id ?? null,
      separation_rate: rate === null ? null : Math.round(rate * 10_000) / 10_000,
      target: store.targetFor({ scope: options.scope, scope_id: id, district_id: row?.district_id ?? null }),
      kitchen_kg: round(row?.kitchen_kg ?? 0),
      other_kg: round(row?.other_kg ?? 0),
      overflow_hours: round((bins?.overflowMs ?? 0) / 3_600_000),
      missed_collections: bins?.missed ?? 0,
    };
  });
  const value = (r: Omit<RankRow, 'rank'>) =>
    options.by === 'separation_rate' ? -(r.separation_rate ?? Number.NEGATIVE_INFINITY) : options.by === 'overflow_hours' ? r.overflow_hours : r.missed_collections;
  rows.sort((a, b) => value(a) - value(b) || a.scope_id.localeCompare(b.scope_id));
  // Equal values share a rank (1, 2, 2, 4).
  let rank = 0;
  return rows.map((r, i) => {
    if (i === 0 || value(rows[i - 1]!) !== value(r)) rank = i + 1;
    return { rank, ...r };
  });
}
