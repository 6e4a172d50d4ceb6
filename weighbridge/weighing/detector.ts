// When a weighing happens: the weight holds steady — `count` readings in a row within
// `toleranceKg` of each other — above `minKg`. The truck must then leave (the weight falls below
// `minKg`) before the next weighing can start, so a truck standing on the bridge is weighed once.
// A truck that rolls on and off without ever holding still is not weighed. The indicator's motion
// flag, where its format has one, breaks a run of steady readings too. Pure: no clock, no I/O.

export interface StabilityOptions {
  /** Readings in a row that must agree. */
  count: number;
  /** Largest spread (max − min) among them, kg. */
  toleranceKg: number;
  /** Below this the bridge counts as empty, kg. */
  minKg: number;
}

export type DetectorEvent =
  /** The weight rose above the threshold: a truck is on the bridge. */
  | { type: 'arrived' }
  /** It held steady: one weighing, at the median of the steady readings. */
  | { type: 'weighed'; kg: number }
  /** The weight fell below the threshold again; `weighed` false when the truck left before holding still. */
  | { type: 'left'; weighed: boolean };

export type DetectorState = 'empty' | 'settling' | 'weighed';

export class WeighingDetector {
  private current: DetectorState = 'empty';
  private window: number[] = [];

  constructor(private readonly options: StabilityOptions) {}

  get state(): DetectorState {
    return this.current;
  }

  push(kg: number, motion = false): DetectorEvent | null {
    if (kg < this.options.minKg) {
      // Negative weights (zero drift, a truck's wheel off the edge) count as empty too.
      const was = this.current;
      this.current = 'empty';
      this.window = [];
      return was === 'empty' ? null : { type: 'left', weighed: was === 'weighed' };
    }
    if (this.current === 'weighed') return null;
    const arrived = this.current === 'empty';
    this.current = 'settling';
    if (motion) {
      this.window = [];
    } else {
      this.window.push(kg);
      if (this.window.length > this.options.count) this.window.shift();
      if (this.window.length === this.options.count && Math.max(...this.window) - Math.min(...this.window) <= this.options.toleranceKg) {
        const sorted = [...this.window].sort((a, b) => a - b);
        this.current = 'weighed';
        this.window = [];
        return { type: 'weighed', kg: sorted[Math.floor(sorted.length / 2)]! };
      }
    }
    return arrived ? { type: 'arrived' } : null;
  }

  /** The line was lost: the readings before and after the gap are not consecutive. */
  interrupt(): void {
    this.window = [];
  }
}
