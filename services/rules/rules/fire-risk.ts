// Fire risk: the bin's temperature above rules.fireC, or rising by rules.fireRiseC within
// rules.fireRiseWindowS (a smouldering fire is caught before it is hot).
import { condition, newConditionState, type ConditionState } from '../condition.ts';
import type { BinRule } from '../types.ts';

/**
 * The rise window is kept as this many slices, each with the coolest temperature read in it, so a
 * bin's state stays the same size however often it reports: one list entry per reading made a
 * sensor reporting twice a second cost 3,600 entries filtered on every reading and copied at every
 * checkpoint. The coolest is looked for over the slices the window touches, so the window reaches
 * back at most one slice (1/32 of it) further than fireRiseWindowS.
 */
const SLICES = 32;

interface Slice {
  start: number;
  coolest: number;
}

interface State {
  condition: ConditionState;
  /** The rise window's slices with readings, oldest first. */
  slices: Slice[];
}

export const fireRisk: BinRule<State> = {
  type: 'fire_risk',
  initialState: () => ({ condition: newConditionState(), slices: [] }),
  onReading(ctx, state) {
    const { tempC, ts } = ctx.sample;
    if (tempC === undefined) return;
    const windowMs = ctx.config.fireRiseWindowS * 1000;
    const sliceMs = windowMs / SLICES;
    const horizon = ts - windowMs;
    state.slices = state.slices.filter((s) => s.start + sliceMs > horizon);
    let coolest = tempC;
    for (const s of state.slices) coolest = Math.min(coolest, s.coolest);
    const start = Math.floor(ts / sliceMs) * sliceMs;
    const last = state.slices.at(-1);
    if (last?.start === start) last.coolest = Math.min(last.coolest, tempC);
    else state.slices.push({ start, coolest: tempC });
    const hot = tempC > ctx.config.fireC;
    const rising = tempC - coolest >= ctx.config.fireRiseC;
    condition(ctx, state.condition, hot || rising, 'critical', { temp_c: tempC, ...(rising ? { rise_c: Math.round((tempC - coolest) * 10) / 10 } : {}) });
  },
};
