// When a weighing happens: the weight holds steady — `count` readings in a row within
// `toleranceKg` of each other — above `minKg`. A truck standing on the bridge is weighed once: the
// next weighing needs the truck to leave (`emptyCount` readings in a row below `minKg`, so that one
// stray reading does not split a weighing in two), or the weight to settle clearly elsewhere (more
// than `newTruckKg`, or 10 × `toleranceKg` if more, from the weighed value: the next truck drove on
// nose to tail with the last, and the weight never fell). A truck that rolls on and off without
// ever holding still is not weighed. The indicator's motion flag, where its format has one, breaks
// a run of steady readings too. Readings above `capacityKg` (a corrupt frame, a wrong --unit) are
// refused: counted, never part of a weighing. Pure: no clock, no I/O.

export interface StabilityOptions {
  /** Readings in a row that must agree. */
  count: number;
  /** Largest spread (max − min) among them, kg. */
  toleranceKg: number;
  /** Below this the bridge counts as empty, kg. */
  minKg: number;
  /** Readings in a row below `minKg` before the truck counts as gone. */
  emptyCount: number;
  /** Above this a reading is impossible, kg. */
  capacityKg: number;
  /** A new steady weight this far from the weighed one is another truck, kg. */
  newTruckKg: number;
}

export type DetectorEvent =
  /**
   * A truck is on the bridge: the weight rose above the threshold, or (`noseToTail`) settled far
   * from the last weighing without falling below it: the truck weighed has left.
   */
  | { type: 'arrived'; noseToTail?: true }
  /** It held steady: one weighing, at the median of the steady readings. */
  | { type: 'weighed'; kg: number }
  /** The weight fell below the threshold again; `weighed` false when the truck left before holding still. */
  | { type: 'left'; weighed: boolean };

export type DetectorState = 'empty' | 'settling' | 'weighed';

/** Rounds away the binary noise of averaging (t × 1000 readings have three decimals). */
const grams = (kg: number) => Math.round(kg * 1000) / 1000;

export class WeighingDetector {
  private current: DetectorState = 'empty';
  private window: number[] = [];
  private below = 0;
  private weighedKg = 0;
  private refused = 0;

  constructor(private readonly options: StabilityOptions) {}

  get state(): DetectorState {
    return this.current;
  }

  /** Readings refused as above capacity, since the start. */
  get overCapacity(): number {
    return this.refused;
  }

  push(kg: number, motion = false): DetectorEvent | null {
    const { minKg, emptyCount, capacityKg } = this.options;
    // Written so that NaN is refused too.
    if (!(kg <= capacityKg)) {
      this.refused++;
      this.window = [];
      return null;
    }
    if (kg < minKg) {
      // Negative weights (zero drift, a truck's wheel off the edge) count as empty too.
      this.window = [];
      if (this.current === 'empty' || ++this.below < emptyCount) return null;
      const was = this.current;
      this.current = 'empty';
      this.below = 0;
      return { type: 'left', weighed: was === 'weighed' };
    }
    this.below = 0;
    const arrived = this.current === 'empty';
    if (arrived) this.current = 'settling';
    if (motion) {
      this.window = [];
      return arrived ? { type: 'arrived' } : null;
    }
    this.window.push(kg);
    if (this.window.length > this.options.count) this.window.shift();
    const steady = this.steadyKg();
    if (steady === null) return arrived ? { type: 'arrived' } : null;
    if (this.current === 'settling') {
      this.current = 'weighed';
      this.weighedKg = steady;
      this.window = [];
      return { type: 'weighed', kg: steady };
    }
    // Weighed already: the same truck still standing, unless the weight settled far from its weighing.
    if (Math.abs(steady - this.weighedKg) <= Math.max(this.options.newTruckKg, 10 * this.options.toleranceKg)) return null;
    // The window stays: the next steady reading weighs the new truck, once the desk knows it arrived.
    this.current = 'settling';
    return { type: 'arrived', noseToTail: true };
  }

  /** The line was lost: the readings before and after the gap are not consecutive. */
  interrupt(): void {
    this.window = [];
    this.below = 0;
  }

  /** The median of a full window within the tolerance (of the two middle readings for an even count), else null. */
  private steadyKg(): number | null {
    const window = this.window;
    if (window.length < this.options.count) return null;
    // A loop, not Math.max(...window): spreading a large array overflows the call stack.
    let min = Infinity;
    let max = -Infinity;
    for (const kg of window) {
      if (kg < min) min = kg;
      if (kg > max) max = kg;
    }
    if (max - min > this.options.toleranceKg) return null;
    const sorted = [...window].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 === 1 ? sorted[mid]! : grams((sorted[mid - 1]! + sorted[mid]!) / 2);
  }
}
