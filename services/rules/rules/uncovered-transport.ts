// Uncovered transport (spillage risk): moving, loaded, with the cover open. The road driven that
// way once the violation is established is recorded as a spillage route.
import { newStretchState, step, type StretchState } from '../stretch.ts';
import type { FixRule } from '../types.ts';

export const uncoveredTransport: FixRule<StretchState> = {
  type: 'uncovered_transport',
  fleets: ['muck'],
  initialState: newStretchState,
  onFix(ctx, state) {
    const holds = ctx.moving && ctx.loaded && ctx.fix.cover_closed === false;
    const result = step(ctx, state, holds, { graceMs: ctx.config.uncoveredMinS * 1000, severity: 'warning' });
    const stretch = result.stretch;
    if (!stretch?.raised) return;
    if (result.raised) {
      // The road driven before the grace period ran out counts too.
      const fixes = stretch.evidence.filter((e) => e.kind === 'fix');
      for (let i = 1; i < fixes.length; i++) ctx.spill('uncovered', [fixes[i - 1]!.lon, fixes[i - 1]!.lat], [fixes[i]!.lon, fixes[i]!.lat], fixes[i]!.ts);
    } else if (holds && result.from) {
      ctx.spill('uncovered', result.from, ctx.position, ctx.fix.ts);
    }
  },
};
