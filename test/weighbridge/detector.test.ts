// Weighing detection on reading sequences: jitter, trucks rolling on and off, negative weights,
// the indicator's motion flag.
import { describe, expect, it } from 'vitest';
import { WeighingDetector, type DetectorEvent } from '../../weighbridge/weighing/detector.ts';
import { truckPass } from './frames.ts';

const options = { count: 5, toleranceKg: 20, minKg: 500 };

function run(weights: number[], motion: boolean[] = []): DetectorEvent[] {
  const detector = new WeighingDetector(options);
  return weights.map((w, i) => detector.push(w, motion[i])).filter((e): e is DetectorEvent => e !== null);
}

describe('WeighingDetector', () => {
  it('weighs a truck once it holds steady within the tolerance, at the median', () => {
    expect(run([0, 3_000, 14_000, 18_400, 18_500, 18_520, 18_500, 18_510, 18_500, 18_500, 18_500, 0])).toEqual([
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
    expect(run([0, 2_000, 9_000, 16_000, 16_300, 15_800, 16_400, 8_000, 300, 0])).toEqual([
      { type: 'arrived' },
      { type: 'left', weighed: false },
    ]);
  });

  it('weighs a standing truck once: the weight must fall below the threshold before the next weighing', () => {
    const steady = Array.from({ length: 20 }, () => 12_000);
    const events = run([...steady, 12_500, ...steady, 200, ...steady]);
    expect(events.filter((e) => e.type === 'weighed')).toHaveLength(2);
  });

  it('treats negative weights and weights under the threshold as an empty bridge', () => {
    expect(run([-40, -20, 0, -60, 480, 490, 480, 490, 480, 490])).toEqual([]);
    expect(run([-40, 700, 700, 700, 700, 700, -20])).toEqual([{ type: 'arrived' }, { type: 'weighed', kg: 700 }, { type: 'left', weighed: true }]);
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
