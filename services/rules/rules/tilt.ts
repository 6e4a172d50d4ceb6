// Tilt: the bin tilted more than rules.tiltDeg (knocked over).
import { condition, newConditionState, type ConditionState } from '../condition.ts';
import type { BinRule } from '../types.ts';

export const tilt: BinRule<ConditionState> = {
  type: 'tilt',
  initialState: newConditionState,
  onReading(ctx, state) {
    const { tiltDeg } = ctx.sample;
    condition(ctx, state, tiltDeg === undefined ? null : tiltDeg > ctx.config.tiltDeg, 'warning', { tilt_deg: tiltDeg });
  },
};
