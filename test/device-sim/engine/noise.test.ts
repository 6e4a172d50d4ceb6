// The noise settings do what they claim, measured on the messages they produce.
import CheapRuler from 'cheap-ruler';
import { describe, expect, it } from 'vitest';
import type { TrueMessage } from '../../../device-sim/engine/actor.ts';
import { NO_NOISE, Noise, type NoiseOptions, type Outgoing } from '../../../device-sim/engine/noise.ts';

const ruler = new CheapRuler(31.3, 'meters');
const HERE: [number, number] = [120.6, 31.3];
const START = Date.parse('2026-11-20T22:00:00+08:00');

/** A truck fix every 10 s for `hours`, from `devices` devices, through the noise. */
function through(options: Partial<NoiseOptions>, hours: number, devices = 1): Outgoing[] {
  const noise = new Noise({ ...NO_NOISE, ...options }, 'seed', ruler);
  const out: Outgoing[] = [];
  for (let d = 0; d < devices; d++) {
    for (let t = START; t < START + hours * 3_600_000; t += 10_000) {
      const message: TrueMessage = { at: t, deviceId: `GPS-${d}`, deviceClass: 'trucks', moving: true, payload: { lat: HERE[1], lon: HERE[0], speed_kmh: 30, heading: 90 } };
      noise.apply(message, (o) => out.push(o));
    }
  }
  return out;
}

type Published = Extract<Outgoing, { kind: 'publish' }>;
const published = (out: Outgoing[]) => out.filter((o): o is Published => o.kind === 'publish');
const fixes = (out: Outgoing[]) => out.flatMap((o) => (o.kind === 'publish' ? (Array.isArray(o.payload) ? o.payload : [o.payload]) : []));
const errorM = (p: Record<string, unknown>) => ruler.distance(HERE, [p.lon as number, p.lat as number]);

describe('Noise', () => {
  it('jitters fixes by the mean error asked for, with outliers hundreds of metres off', () => {
    for (const jitterM of [5, 15]) {
      const errors = fixes(through({ jitterM }, 10)).map(errorM);
      const mean = errors.reduce((a, b) => a + b, 0) / errors.length;
      expect(mean).toBeGreaterThan(jitterM * 0.93);
      expect(mean).toBeLessThan(jitterM * 1.07);
      expect(Math.max(...errors)).toBeLessThan(jitterM * 5);
    }
    const withOutliers = fixes(through({ jitterM: 10, outlierRate: 0.01 }, 20)).map(errorM);
    const share = withOutliers.filter((e) => e > 250).length / withOutliers.length;
    expect(share).toBeGreaterThan(0.007);
    expect(share).toBeLessThan(0.013);
  });

  it('holds fixes in dead zones and delivers them later as one back-filled batch, none lost', () => {
    const out = through({ deadZonesPerHour: 2 }, 20);
    const batches = published(out).filter((o) => Array.isArray(o.payload));
    expect(batches.length).toBeGreaterThan(20);
    for (const b of batches) {
      const items = b.payload as Record<string, unknown>[];
      expect(items.length).toBeGreaterThanOrEqual(6);
      // Delivered when the zone ends: at the time of its last fix, after the first one was taken.
      expect(b.at).toBe(items.at(-1)!.ts);
      expect(b.at - (items[0]!.ts as number)).toBeGreaterThanOrEqual(50_000);
    }
    expect(fixes(out).length).toBe(20 * 360);
  });

  it('duplicates and delays the share of messages asked for, so some arrive out of order', () => {
    const out = through({ duplicateRate: 0.02, outOfOrderRate: 0.03 }, 20);
    const sent = 20 * 360;
    expect(out.length / sent - 1).toBeGreaterThan(0.015);
    expect(out.length / sent - 1).toBeLessThan(0.025);
    const delivered = published(out)
      .sort((a, b) => a.at - b.at)
      .map((o) => (o.payload as { ts: number }).ts);
    const overtaken = delivered.filter((ts, i) => i > 0 && ts < delivered[i - 1]!).length;
    expect(overtaken / sent).toBeGreaterThan(0.02);
    expect(overtaken / sent).toBeLessThan(0.04);
  });

  it('gives each device a clock off by the spread asked for, and drops connections now and then', () => {
    const out = through({ clockSkewS: 2, reconnectsPerHour: 0.5 }, 10, 200);
    const skews = new Map<string, Set<number>>();
    for (const o of out) if (o.kind === 'publish') skews.set(o.deviceId, (skews.get(o.deviceId) ?? new Set()).add((o.payload as { ts: number }).ts - o.at));
    // One constant offset per device...
    expect([...skews.values()].every((s) => s.size === 1)).toBe(true);
    const offsets = [...skews.values()].map((s) => [...s][0]! / 1000);
    const sd = Math.sqrt(offsets.reduce((a, b) => a + b * b, 0) / offsets.length);
    // ...spread with the standard deviation asked for.
    expect(sd).toBeGreaterThan(1.6);
    expect(sd).toBeLessThan(2.4);
    const drops = out.filter((o) => o.kind === 'reconnect').length;
    expect(drops).toBeGreaterThan(200 * 10 * 0.5 * 0.7);
    expect(drops).toBeLessThan(200 * 10 * 0.5 * 1.3);
  });
});
