// Predicted time to full: a least-squares line through a bin's latest readings since its last
// emptying (at most FORECAST_POINTS, within rules.forecastWindowH), extended to the overflow level
// and to 100 %. A bin that is not filling has no prediction.
import type { Forecast } from '../contract/findings.ts';
import { HOUR } from '../contract/local-time.ts';

export type { Forecast } from '../contract/findings.ts';

export const FORECAST_POINTS = 12;
/** Slower than this (% per hour) is not filling. */
const MIN_RATE_PCT_PER_H = 0.05;

export interface FillPoint {
  ts: number;
  fill: number;
}

export function forecast(points: readonly FillPoint[], overflowPct: number): Forecast | null {
  const last = points.at(-1);
  if (!last) return null;
  const out: Forecast = { fill_pct: Math.round(last.fill * 10) / 10, read_at: new Date(last.ts).toISOString(), rate_pct_per_h: null, overflow_at: null, full_at: null };
  if (points.length < 2) return out;
  const n = points.length;
  const meanT = points.reduce((s, p) => s + (p.ts - last.ts) / HOUR, 0) / n;
  const meanF = points.reduce((s, p) => s + p.fill, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    const t = (p.ts - last.ts) / HOUR - meanT;
    num += t * (p.fill - meanF);
    den += t * t;
  }
  const rate = den > 0 ? num / den : 0;
  out.rate_pct_per_h = Math.round(rate * 100) / 100;
  if (rate < MIN_RATE_PCT_PER_H) return out;
  const at = (level: number) => new Date(last.ts + Math.max(0, ((level - last.fill) / rate) * HOUR)).toISOString();
  out.overflow_at = at(overflowPct);
  out.full_at = at(100);
  return out;
}
