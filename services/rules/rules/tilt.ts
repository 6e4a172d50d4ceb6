// Tilt: the bin tilted more than rules.tiltDeg (knocked over), or, from a sensor that reports only a
// position flag (the Milesight EM310-UDL's "position"), tilted.
import { condition, newConditionState, type ConditionState } from '../condition.ts';
import type { BinRule } from '../types.ts';

export const tilt: BinRule<ConditionState> = {
  type: 'tilt',
  initialState: newConditionState,
  onReading(ctx, state) {
    const { tiltDeg, tilted } = ctx.sample;
    if (tiltDeg !== undefined) condition(ctx, state, tiltDeg > ctx.config.tiltDeg, 'warning', { tilt_deg: tiltDeg });
    else condition(ctx, state, tilted ?? null, 'warning', { tilted });
  },
};
