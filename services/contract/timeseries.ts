// The time-series schema (docs/schema.md): every measurement's name, and the one builder of
// InfluxDB line protocol that the alerts, the state snapshots, spillage and sorting write with
// (the ingest's per-reading lines are built in ingest/points.ts, on the same escaping, for speed).
// Tags are identities, sorted by key; fields are typed once and for all: a field keeps its type for
// ever in InfluxDB, so an integer is marked as one and a float never is.
import { escape } from './line-protocol.ts';

export const MEASUREMENTS = {
  bin: 'bin_level',
  truck: 'truck_position',
  ticket: 'weigh_ticket',
  status: 'device_status',
  ingestStats: 'ingest_stats',
  alert: 'alert',
  truckState: 'truck_state',
  binState: 'bin_state',
  openAlerts: 'open_alerts',
  spillage: 'spillage',
  separationRate: 'separation_rate',
  sortingTrend: 'sorting_trend',
} as const;

export type Measurement = (typeof MEASUREMENTS)[keyof typeof MEASUREMENTS];

/** An integer field (`1i`); a plain number is a float field. */
export interface Int {
  int: number;
}

export const int = (value: number): Int => ({ int: value });

export type FieldValue = number | Int | boolean | string;

function fieldText(value: FieldValue): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'string') return escape.quoted(value);
  return `${Math.trunc(value.int)}i`;
}

/**
 * One point as a line (newline-terminated). Tags and fields that are undefined (or an empty tag)
 * are left out; numbers that are not finite too, since line protocol has no NaN or Infinity.
 */
export function line(measurement: Measurement, tags: Record<string, string | null | undefined>, fields: Record<string, FieldValue | null | undefined>, ts: number): string {
  let text = measurement;
  for (const key of Object.keys(tags).sort()) {
    const value = tags[key];
    if (value !== undefined && value !== null && value !== '') text += `,${key}=${escape.tag(value)}`;
  }
  let separator = ' ';
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined || value === null) continue;
    if (typeof value === 'number' && !Number.isFinite(value)) continue;
    text += `${separator}${key}=${fieldText(value)}`;
    separator = ',';
  }
  if (separator === ' ') throw new Error(`a ${measurement} point needs at least one field`);
  return `${text} ${Math.trunc(ts)}\n`;
}
