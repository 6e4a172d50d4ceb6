// A bin's fill level with hysteresis (docs/architecture.md §4): an overflow is raised after
// rules.overflowReadings readings at or above rules.overflowRaisePct since the bin was last at or
// below rules.overflowClearPct, and clears at or below that level or on an emptying, a fall of at
// least rules.emptyingDropPct points from one reading to the next (the bin was collected). The
// overflow and missed-collection rules each keep one.
import type { BinContext } from './types.ts';

export interface LevelState {
  /** Readings at or above the raise level since the bin was last clear. */
  high: number;
  /** The first of them. */
  firstHigh: number;
  /** Event time the overflow was raised (its second high reading), while it lasts. */
  raisedAt: number | null;
  /** The overflow's start (the first high reading) and its latest reading. */
  start: number;
  last: number;
}

export type LevelChange = 'raised' | 'overflowing' | 'cleared' | 'emptied' | null;

export function newLevelState(): LevelState {
  return { high: 0, firstHigh: 0, raisedAt: null, start: 0, last: 0 };
}

export function emptied(ctx: BinContext): boolean {
  return ctx.previous !== null && ctx.previous.fillPct - ctx.sample.fillPct >= ctx.config.emptyingDropPct;
}

export function stepLevel(ctx: BinContext, state: LevelState): LevelChange {
  const { sample, config } = ctx;
  const wasRaised = state.raisedAt !== null;
  const isEmptied = emptied(ctx);
  if (isEmptied || sample.fillPct <= config.overflowClearPct) {
    state.high = 0;
    state.raisedAt = null;
    if (!wasRaised) return null;
    return isEmptied ? 'emptied' : 'cleared';
  }
  if (wasRaised) {
    state.last = sample.ts;
    return 'overflowing';
  }
  if (sample.fillPct < config.overflowRaisePct) return null;
  if (state.high++ === 0) state.firstHigh = sample.ts;
  if (state.high < config.overflowReadings) return null;
  state.raisedAt = sample.ts;
  state.start = state.firstHigh;
  state.last = sample.ts;
  return 'raised';
}
