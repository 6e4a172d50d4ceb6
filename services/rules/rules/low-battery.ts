// Low battery: below rules.lowBatteryV (or rules.lowBatteryPct for sensors that report percent),
// until a reading of rules.batteryRecoveredV (batteryRecoveredPct) or more. A sensor sending both
// is judged by its voltage, the finer of the two.
import { condition, newConditionState, type ConditionState } from '../condition.ts';
import type { BinRule } from '../types.ts';

export const lowBattery: BinRule<ConditionState> = {
  type: 'low_battery',
  initialState: newConditionState,
  onReading(ctx, state) {
    const { batteryV, batteryPct } = ctx.sample;
    const raising = state.start === null;
    if (batteryV !== undefined) {
      condition(ctx, state, batteryV < (raising ? ctx.config.lowBatteryV : ctx.config.batteryRecoveredV), 'info', { battery_v: batteryV });
    } else if (batteryPct !== undefined) {
      condition(ctx, state, batteryPct < (raising ? ctx.config.lowBatteryPct : ctx.config.batteryRecoveredPct), 'info', { battery_pct: batteryPct });
    }
  },
};
