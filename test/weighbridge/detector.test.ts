// Weighing detection on reading sequences: jitter, trucks rolling on and off, negative weights,
// the indicator's motion flag, stray readings, impossible readings, trucks nose to tail.
import { describe, expect, it } from 'vitest';
import { parseCommand, UsageError } from '../../weighbridge/cli/options.ts';
import { WeighingDetector, type DetectorEvent, type StabilityOptions } from '../../weighbridge/weighing/detector.ts';
import { truckPass } from './frames.ts';

const options: StabilityOptions = { count: 5, toleranceKg: 20, minKg: 500, emptyCount: 3, capacityKg: 100_000, newTruckKg: 2_000 };
const EMPTY = [0, 0, 0];

function run(weights: number[], motion: boolean[] = [], overrides: Partial<StabilityOptions> = {}): DetectorEvent[] {
  const detector = new WeighingDetector({ ...options, ...overrides });
  return weights.map((w, i) => detector.push(w, motion[i])).filter((e): e is DetectorEvent => e !== null);
}

describe('WeighingDetector', () => {
  it('weighs a truck once it holds steady within the tolerance, at the median', () => {
    expect(run([0, 3_000, 14_000, 18_400, 18_500, 18_520, 18_500, 18_510, 18_500, 18_500, 18_500, ...EMPTY])).toEqual([
      { type: 'arrived' },
      { type: 'weighed', kg: 18_500 },
      { type: 'left', weighed: true },
    ]);
  });

  it('weighs through jitter up to the tolerance, and not beyond it', () => {
    expect(run(truckPass(25_000, { jitterKg: 10 })).filter((e) => e.type === 'weighed')).toEqual([{ type: 'weighed', kg: 25_000 }]);
    expect(run(truckPass(25_000, { jitterKg: 40 })).filter((e) => e.type === 'weighed')).toEqual([]);
  });

  it('does not weigh a truck that drives off before it holds steady', () => {
    expect(run([0, 2_000, 9_000, 16_000, 16_300, 15_800, 16_400, 8_000, 300, 0, 0])).toEqual([
      { type: 'arrived' },
      { type: 'left', weighed: false },
    ]);
  });

  it('weighs a standing truck once: the weight must fall below the threshold before the next weighing', () => {
    const steady = Array.from({ length: 20 }, () => 12_000);
    const events = run([...steady, 12_500, ...steady, 200, 200, 200, ...steady]);
    expect(events.filter((e) => e.type === 'weighed')).toHaveLength(2);
  });

  it('does not split a weighing at one or two stray readings below the threshold', () => {
    const steady = Array.from({ length: 10 }, () => 30_000);
    expect(run([...steady, 0, ...steady, 120, 80, ...steady, ...EMPTY])).toEqual([{ type: 'arrived' }, { type: 'weighed', kg: 30_000 }, { type: 'left', weighed: true }]);
    // A stray reading breaks a run of steady readings still settling, as any reading out of it would.
    expect(run([30_000, 30_000, 30_000, 30_000, 0, 30_000, 30_000, 30_000, 30_000]).filter((e) => e.type === 'weighed')).toEqual([]);
    // emptyCount 1: one reading is enough, as before.
    expect(run([...steady, 0, ...steady], [], { emptyCount: 1 }).filter((e) => e.type === 'weighed')).toHaveLength(2);
  });

  it('weighs the next truck that drives on before the weight falls below the threshold', () => {
    const a = Array.from({ length: 8 }, () => 31_000);
    const b = Array.from({ length: 8 }, () => 12_600);
    expect(run([...a, 20_000, 15_000, ...b, ...EMPTY])).toEqual([
      { type: 'arrived' },
      { type: 'weighed', kg: 31_000 },
      { type: 'arrived', noseToTail: true },
      { type: 'weighed', kg: 12_600 },
      { type: 'left', weighed: true },
    ]);
    // A truck standing still, shifting by less than newTruckKg (or 10 × toleranceKg), stays one weighing.
    expect(run([...a, ...Array.from({ length: 8 }, () => 30_000), ...EMPTY]).filter((e) => e.type === 'weighed')).toHaveLength(1);
    expect(run([...a, ...Array.from({ length: 8 }, () => 28_000), ...EMPTY], [], { toleranceKg: 400 }).filter((e) => e.type === 'weighed')).toHaveLength(1);
  });

  it('refuses and counts readings above the capacity: no weighing, and they break a steady run', () => {
    const detector = new WeighingDetector(options);
    const events = [...Array.from({ length: 8 }, () => 999_999), 30_000, 30_000, 999_999, 30_000, 30_000, 30_000, Number.NaN, 30_000]
      .map((w) => detector.push(w))
      .filter((e) => e !== null);
    expect(events).toEqual([{ type: 'arrived' }]);
    expect(detector.overCapacity).toBe(10);
    expect(run(Array.from({ length: 8 }, () => 60_000), [], { capacityKg: 50_000 })).toEqual([]);
  });

  it('weighs at the mean of the two middle readings for an even count, and takes large counts', () => {
    expect(run([18_500, 18_510, 18_500, 18_510], [], { count: 4 }).filter((e) => e.type === 'weighed')).toEqual([{ type: 'weighed', kg: 18_505 }]);
    expect(run([18_500.1, 18_500.2, 18_500.1, 18_500.2], [], { count: 4 })).toContainEqual({ type: 'weighed', kg: 18_500.15 });
    const many = 200_000;
    expect(run(Array.from({ length: many }, () => 9_000), [], { count: many }).filter((e) => e.type === 'weighed')).toEqual([{ type: 'weighed', kg: 9_000 }]);
  });

  it('treats negative weights and weights under the threshold as an empty bridge', () => {
    expect(run([-40, -20, 0, -60, 480, 490, 480, 490, 480, 490])).toEqual([]);
    expect(run([-40, 700, 700, 700, 700, 700, -20, -20, -20])).toEqual([{ type: 'arrived' }, { type: 'weighed', kg: 700 }, { type: 'left', weighed: true }]);
  });

  it('lets the motion flag break a run of steady readings', () => {
    const weights = [9_000, 9_000, 9_000, 9_000, 9_000, 9_000, 9_000, 9_000, 9_000];
    const motion = [false, false, false, false, true, false, false, false, false];
    expect(run(weights, motion).filter((e) => e.type === 'weighed')).toEqual([]);
    expect(run([...weights, 9_000], [...motion, false]).filter((e) => e.type === 'weighed')).toHaveLength(1);
  });

  it('does not join readings across a lost line', () => {
    const detector = new WeighingDetector(options);
    for (const w of [9_000, 9_000, 9_000]) detector.push(w);
    detector.interrupt();
    expect(detector.push(9_000)).toBeNull();
    expect(detector.push(9_000)).toBeNull();
    expect(detector.push(9_000)).toBeNull();
    expect(detector.push(9_000)).toBeNull();
    expect(detector.push(9_000)).toEqual({ type: 'weighed', kg: 9_000 });
  });
});

describe('the stability and pairing options', () => {
  const BASE = ['--serial', '/dev/ttyUSB0', '--device-id', 'WB-SZ-01', '--direction', 'in', '--category', 'construction'];
  const ENV = { WEIGHBRIDGE_SECRET: 'from-the-environment' };

  it('have their defaults, and each its option', () => {
    expect(parseCommand(BASE, ENV)).toMatchObject({
      config: { stability: { count: 8, emptyCount: 3, capacityKg: 100_000, newTruckKg: 2_000 }, pairing: { minPairIntervalS: 120, minNetKg: 100 } },
    });
    const argv = [...BASE, '--empty-count', '5', '--capacity-kg', '60000', '--new-truck-kg', '3000', '--min-pair-interval-s', '300', '--min-net-kg', '200'];
    expect(parseCommand(argv, ENV)).toMatchObject({
      config: { stability: { emptyCount: 5, capacityKg: 60_000, newTruckKg: 3_000 }, pairing: { minPairIntervalS: 300, minNetKg: 200 } },
    });
  });

  it('are bounded: a huge --stable-count, a capacity over the contract\'s or under --min-kg are refused', () => {
    const refusal = (argv: string[]) => {
      try {
        parseCommand([...BASE, ...argv], ENV);
      } catch (error) {
        if (error instanceof UsageError) return error.message;
        throw error;
      }
      return 'accepted';
    };
    expect(refusal(['--stable-count', '1000'])).toBe('accepted');
    expect(refusal(['--stable-count', '200000'])).toMatch(/^stability\.count \(--stable-count\): /);
    expect(refusal(['--capacity-kg', '150000'])).toMatch(/^stability\.capacityKg \(--capacity-kg\): /);
    expect(refusal(['--capacity-kg', '400'])).toMatch(/^stability\.capacityKg \(--capacity-kg\): must be above stability\.minKg/);
    expect(refusal(['--empty-count', '0'])).toMatch(/^stability\.emptyCount \(--empty-count\): /);
    expect(refusal(['--min-net-kg=-1'])).toMatch(/^pairing\.minNetKg \(--min-net-kg\): /);
  });
});
