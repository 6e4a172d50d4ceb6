// Out-of-hours haulage: moving while a permit is in force but outside all of its daily windows
// (windows may run over midnight; local time, China Standard Time).
import { insideWindows } from '../../contract/local-time.ts';
import { newStretchState, step, type StretchState } from '../stretch.ts';
import type { FixRule } from '../types.ts';

export const outOfHours: FixRule<StretchState> = {
  type: 'out_of_hours',
  fleets: ['muck'],
  initialState: newStretchState,
  onFix(ctx, state) {
    const { permits, fix } = ctx;
    const outside = ctx.moving && permits.length > 0 && !permits.some((p) => p.windows.length === 0 || insideWindows(p.windows, fix.ts));
    const permit = permits[0];
    step(ctx, state, outside, { graceMs: 0, severity: 'warning' }, outside && permit ? { permit: { id: permit.id, number: permit.number }, detail: { windows: permit.windows } } : {});
  },
};
