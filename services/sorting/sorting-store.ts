// Daily household tonnage per scope in the registry database (migration 3), the days owed a count,
// and the figures read from it: daily and rolling 7-day separation rates, month-over-month and
// year-over-year trends, and the rankings. Rates are worked out on read, so a change of formula or
// target applies to every past day at once.
import type { SortingConfig } from '../config/schema.ts';
import { addDays } from '../contract/local-time.ts';
import type { RegistryDb } from '../registry/db.ts';
import { HOUSEHOLD, emptyTonnage, separationRate, targetOf, type Scope, type ScopeTonnage, type Tonnage } from './tonnage.ts';

export type Window = 'day' | '7d';

export interface SeparationFigure extends TonnageRow {
  day: string;
  window: Window;
  rate: number | null;
  target: number;
  below_target: boolean | null;
  /** Days of the window whose tickets have been counted. */
  days_counted: number;
}

interface TonnageRow {
  scope: Scope;
  scope_id: string;
  district_id: string | null;
  kitchen_kg: number;
  recyclable_kg: number;
  hazardous_kg: number;
  other_kg: number;
}

/** Days from `from` to `to`, inclusive. */
export function daysBetween(from: string, to: string): string[] {
  const out: string[] = [];
  for (let d = from; d <= to; d = addDays(d, 1)) out.push(d);
  return out;
}

const round = (kg: number) => Math.round(kg * 10) / 10;

/** A past day owed a count: `marks` grows with each new ticket burst, so a count clears only the marks it saw. */
export interface OwedDay {
  day: string;
  marks: number;
  first_at: number;
}

export class SortingStore {
  private readonly target: ReturnType<typeof targetOf>;

  constructor(
    private readonly db: RegistryDb,
    private readonly config: SortingConfig,
  ) {
    this.target = targetOf(config);
  }

  /** Replaces a day's tonnage with a fresh count. */
  saveDay(day: string, tonnage: ScopeTonnage[], tickets: number, now: number): void {
    this.db.transaction(() => {
      this.db.statement('DELETE FROM sorting_tonnage WHERE day = ?').run(day);
      const insert = this.db.statement(
        'INSERT INTO sorting_tonnage (day, scope, scope_id, district_id, kitchen_kg, recyclable_kg, hazardous_kg, other_kg) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      );
      for (const t of tonnage) insert.run(day, t.scope, t.scopeId, t.districtId, t.kg.kitchen, t.kg.recyclable, t.kg.hazardous, t.kg.other);
      this.db.statement('INSERT INTO sorting_days (day, computed_at, tickets) VALUES (?, ?, ?) ON CONFLICT (day) DO UPDATE SET computed_at = excluded.computed_at, tickets = excluded.tickets').run(day, now, tickets);
    });
  }

  /** Notes that `day` is owed a count (again): a ticket for it arrived. */
  oweCount(day: string, now: number): void {
    // The stored row's marks named with the table: bare, PostgreSQL finds `marks` ambiguous (the
    // stored row's or the one proposed, excluded.marks).
    this.db.statement('INSERT INTO sorting_owed (day, marks, first_at) VALUES (?, 1, ?) ON CONFLICT (day) DO UPDATE SET marks = sorting_owed.marks + 1').run(day, now);
  }

  /** The marks of a day owed a count; null when it is not owed one. */
  owedMarks(day: string): number | null {
    const row = this.db.statement('SELECT marks FROM sorting_owed WHERE day = ?').get(day) as { marks: number } | undefined;
    return row?.marks ?? null;
  }

  /** Days owed a count, oldest first. */
  owedDays(): OwedDay[] {
    return this.db.statement('SELECT day, marks, first_at FROM sorting_owed ORDER BY day').all() as OwedDay[];
  }

  /** A count of `day` that began when it had `marks` succeeded: it is no longer owed, unless tickets came since. */
  settleOwed(day: string, marks: number): void {
    this.db.statement('DELETE FROM sorting_owed WHERE day = ? AND marks = ?').run(day, marks);
  }

  isCounted(day: string): boolean {
    return this.db.statement('SELECT 1 FROM sorting_days WHERE day = ?').get(day) !== undefined;
  }

  /** Counted days between from and to, inclusive. */
  countedDays(from: string, to: string): string[] {
    return (this.db.statement('SELECT day FROM sorting_days WHERE day BETWEEN ? AND ? ORDER BY day').all(from, to) as { day: string }[]).map((r) => r.day);
  }

  /** Figures of every scope (or one kind of scope) for a day, over the day or the 7 days ending with it. */
  figures(day: string, window: Window, scope?: Scope): SeparationFigure[] {
    const from = window === 'day' ? day : addDays(day, -6);
    const days = this.countedDays(from, day).length;
    return this.sums(from, day, scope).map((row) => this.figure(day, window, row, days));
  }

  /** Tonnage summed per scope over [from, to] (inclusive days). */
  sums(from: string, to: string, scope?: Scope, scopeId?: string): TonnageRow[] {
    const where = ['day BETWEEN @from AND @to', ...(scope ? ['scope = @scope'] : []), ...(scopeId ? ['scope_id = @scopeId'] : [])];
    return this.db.statement(
        `SELECT scope, scope_id, MAX(district_id) AS district_id, SUM(kitchen_kg) AS kitchen_kg, SUM(recyclable_kg) AS recyclable_kg, SUM(hazardous_kg) AS hazardous_kg, SUM(other_kg) AS other_kg
         FROM sorting_tonnage WHERE ${where.join(' AND ')} GROUP BY scope, scope_id ORDER BY scope, scope_id`,
      )
      .all({ from, to, scope, scopeId }) as TonnageRow[];
  }

  rate(row: TonnageRow): number | null {
    return separationRate(tonnageOf(row), this.config.denominator);
  }

  targetFor(row: Pick<TonnageRow, 'scope' | 'scope_id' | 'district_id'>): number {
    return this.target(row.scope, row.scope_id, row.district_id);
  }

  private figure(day: string, window: Window, row: TonnageRow, days: number): SeparationFigure {
    const rate = this.rate(row);
    const target = this.targetFor(row);
    return {
      day,
      window,
      scope: row.scope,
      scope_id: row.scope_id,
      district_id: row.district_id,
      kitchen_kg: round(row.kitchen_kg),
      recyclable_kg: round(row.recyclable_kg),
      hazardous_kg: round(row.hazardous_kg),
      other_kg: round(row.other_kg),
      rate: rate === null ? null : Math.round(rate * 10_000) / 10_000,
      target,
      below_target: rate === null ? null : rate < target,
      days_counted: days,
    };
  }
}

export function tonnageOf(row: Pick<TonnageRow, 'kitchen_kg' | 'recyclable_kg' | 'hazardous_kg' | 'other_kg'>): Tonnage {
  const kg = emptyTonnage();
  for (const c of HOUSEHOLD) kg[c] = row[`${c}_kg`] ?? 0;
  return kg;
}

