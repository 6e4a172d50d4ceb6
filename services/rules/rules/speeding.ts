// Speeding: GPS speed over the limit of the zone the truck is in (or the general limit) for the
// configured time.
import { newStretchState, step, type StretchState } from '../stretch.ts';
import type { FixRule } from '../types.ts';

export const speeding: FixRule<StretchState> = {
  type: 'speeding',
  fleets: ['muck'],
  initialState: newStretchState,
  onFix(ctx, state) {
    const limit = ctx.speedLimitAt(ctx.position);
    const holds = ctx.fix.speed_kmh > limit;
    const previousMax = (state.stretch?.detail.max_speed_kmh as number | undefined) ?? 0;
    step(ctx, state, holds, { graceMs: ctx.config.speedingMinS * 1000, severity: 'warning' }, holds ? { detail: { limit_kmh: limit, max_speed_kmh: Math.max(previousMax, ctx.fix.speed_kmh) } } : {});
  },
};
