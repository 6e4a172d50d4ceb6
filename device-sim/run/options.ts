// Parsing helpers shared by the simulator's commands: durations, times, rates and noise settings.
import { DEFAULT_NOISE, NO_NOISE, type NoiseOptions } from '../engine/noise.ts';

export class UsageError extends Error {}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "15m", "6h", "2d" in ms. */
export function parseDuration(value: string, name: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value.trim());
  if (!match) throw new UsageError(`--${name} must be a duration such as 90s, 15m, 6h or 2d`);
  return Number(match[1]) * UNITS[match[2]!]!;
}

/** "now", "-6h" (before now) or an ISO-8601 time with its offset. */
export function parseTime(value: string, name: string, now: number): number {
  if (value === 'now') return now;
  if (value.startsWith('-')) return now - parseDuration(value.slice(1), name);
  const ms = /(Z|[+-]\d{2}:?\d{2})$/i.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(ms)) throw new UsageError(`--${name} must be now, -DURATION (e.g. --start=-6h) or ISO-8601 with an offset (e.g. 2026-11-21T21:00:00+08:00)`);
  return ms;
}

const NOISE_KEYS: Record<string, keyof NoiseOptions> = {
  jitter: 'jitterM',
  outliers: 'outlierRate',
  'dead-zones': 'deadZonesPerHour',
  duplicates: 'duplicateRate',
  'out-of-order': 'outOfOrderRate',
  'clock-skew': 'clockSkewS',
  reconnects: 'reconnectsPerHour',
};

/** "off", or "name=value,..." over the defaults (names as in --help). */
export function parseNoise(spec: string | undefined): NoiseOptions {
  if (spec === undefined) return { ...DEFAULT_NOISE };
  if (spec === 'off') return { ...NO_NOISE };
  const noise = { ...DEFAULT_NOISE };
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [name, value] = part.split('=') as [string, string | undefined];
    const key = NOISE_KEYS[name];
    const n = Number(value);
    if (!key) throw new UsageError(`--noise: "${name}" is not a noise setting; known: off, ${Object.keys(NOISE_KEYS).join(', ')}`);
    if (value === undefined || !Number.isFinite(n) || n < 0) throw new UsageError(`--noise: "${part}" needs a number of at least 0`);
    noise[key] = n;
  }
  return noise;
}

export function noiseSummary(noise: NoiseOptions): string {
  return Object.entries(NOISE_KEYS)
    .map(([name, key]) => `${name}=${noise[key]}`)
    .join(',');
}

export function wholeNumber(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a whole number`);
  return n;
}
