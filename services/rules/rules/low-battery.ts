// Low battery: below rules.lowBatteryV, until a reading of rules.batteryRecoveredV or more.
import { condition, newConditionState, type ConditionState } from '../condition.ts';
import type { BinRule } from '../types.ts';

export const lowBattery: BinRule<ConditionState> = {
  type: 'low_battery',
  initialState: newConditionState,
  onReading(ctx, state) {
    const { batteryV } = ctx.sample;
    if (batteryV === undefined) return;
    const low = batteryV < (state.start === null ? ctx.config.lowBatteryV : ctx.config.batteryRecoveredV);
    condition(ctx, state, low, 'info', { battery_v: batteryV });
  },
};
