// Fire risk: the bin's temperature above rules.fireC, or rising by rules.fireRiseC within
// rules.fireRiseWindowS (a smouldering fire is caught before it is hot).
import { condition, newConditionState, type ConditionState } from '../condition.ts';
import type { BinRule } from '../types.ts';

interface State {
  condition: ConditionState;
  /** Recent temperatures within the rise window, oldest first. */
  recent: { ts: number; c: number }[];
}

export const fireRisk: BinRule<State> = {
  type: 'fire_risk',
  initialState: () => ({ condition: newConditionState(), recent: [] }),
  onReading(ctx, state) {
    const { tempC, ts } = ctx.sample;
    if (tempC === undefined) return;
    const horizon = ts - ctx.config.fireRiseWindowS * 1000;
    state.recent = state.recent.filter((r) => r.ts >= horizon);
    const coolest = Math.min(tempC, ...state.recent.map((r) => r.c));
    state.recent.push({ ts, c: tempC });
    const hot = tempC > ctx.config.fireC;
    const rising = tempC - coolest >= ctx.config.fireRiseC;
    condition(ctx, state.condition, hot || rising, 'critical', { temp_c: tempC, ...(rising ? { rise_c: Math.round((tempC - coolest) * 10) / 10 } : {}) });
  },
};
