// Haulage without a valid permit: a muck truck moving with no permit in force (none, expired,
// not yet valid, suspended or revoked).
import { newStretchState, step, type StretchState } from '../stretch.ts';
import type { FixRule } from '../types.ts';

export const noPermit: FixRule<StretchState> = {
  type: 'no_permit',
  fleets: ['muck'],
  initialState: newStretchState,
  onFix(ctx, state) {
    const holds = ctx.moving && ctx.permits.length === 0;
    step(ctx, state, holds, { graceMs: 0, severity: 'critical' }, holds ? { detail: { permits_on_record: ctx.truck.permits.map((p) => p.number) } } : {});
  },
};
