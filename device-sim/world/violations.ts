// The violations the simulator can inject, what each is labelled as (the alert type a correct rule
// raises), and how often each happens. Rates are probabilities per opportunity:
//   per trip                 route_deviation, jurisdiction_crossing, illegal_dump, uncovered_transport,
//                            load_loss, speeding, overload
//   per truck and idle spell out_of_hours (a permitted truck hauls between its windows)
//   per truck and day        no_permit (a truck without a permit hauls)
//   per bin and day          bin_overflow, fire_risk, tilt, low_battery, device_silent,
//                            out_of_window_dropoff
import type { AlertType } from '../../services/contract/alerts.ts';

export const TRIP_VIOLATIONS = ['route_deviation', 'jurisdiction_crossing', 'illegal_dump', 'uncovered_transport', 'load_loss', 'speeding', 'overload'] as const;
export const BIN_VIOLATIONS = ['bin_overflow', 'fire_risk', 'tilt', 'low_battery', 'device_silent', 'out_of_window_dropoff'] as const;
export const VIOLATIONS = [...TRIP_VIOLATIONS, 'out_of_hours', 'no_permit', ...BIN_VIOLATIONS] as const;

export type TripViolation = (typeof TRIP_VIOLATIONS)[number];
export type BinViolation = (typeof BIN_VIOLATIONS)[number];
export type Violation = (typeof VIOLATIONS)[number];
export type ViolationRates = Record<Violation, number>;

/** The alert types a violation shows up as. An overflow left uncollected is also a missed collection. */
export const LABEL_TYPES: Record<Violation, AlertType[]> = {
  route_deviation: ['route_deviation'],
  jurisdiction_crossing: ['route_deviation'],
  illegal_dump: ['illegal_dump'],
  uncovered_transport: ['uncovered_transport'],
  load_loss: ['load_loss'],
  speeding: ['speeding'],
  overload: ['overload'],
  out_of_hours: ['out_of_hours'],
  no_permit: ['no_permit'],
  bin_overflow: ['overflow', 'missed_collection'],
  fire_risk: ['fire_risk'],
  tilt: ['tilt'],
  low_battery: ['low_battery'],
  device_silent: ['device_offline'],
  out_of_window_dropoff: ['out_of_window_dropoff'],
};

export const DEFAULT_VIOLATION_RATE = 0.02;

export function uniformRates(rate: number): ViolationRates {
  return Object.fromEntries(VIOLATIONS.map((v) => [v, rate])) as ViolationRates;
}

/**
 * Parses "name=rate,name=rate" (or "all=rate") over a base set of rates.
 * Throws with a message naming the bad part.
 */
export function parseRates(spec: string, base: ViolationRates): ViolationRates {
  const rates = { ...base };
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [name, value] = part.split('=') as [string, string | undefined];
    const rate = Number(value);
    if (value === undefined || !Number.isFinite(rate) || rate < 0 || rate > 1) throw new Error(`"${part}": a rate is name=number between 0 and 1`);
    if (name === 'all') for (const v of VIOLATIONS) rates[v] = rate;
    else if ((VIOLATIONS as readonly string[]).includes(name)) rates[name as Violation] = rate;
    else throw new Error(`"${name}" is not a violation; known: all, ${VIOLATIONS.join(', ')}`);
  }
  return rates;
}
