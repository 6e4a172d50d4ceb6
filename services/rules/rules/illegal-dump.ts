// Illegal dump: tipping (tipper raised, or the load dropping sharply while stopped) outside every
// approved disposal site, give or take the GPS error.
import { newStretchState, step, type StretchState } from '../stretch.ts';
import type { FixRule } from '../types.ts';

export const illegalDump: FixRule<StretchState> = {
  type: 'illegal_dump',
  fleets: ['muck'],
  initialState: newStretchState,
  onFix(ctx, state) {
    const { fix, previous, config } = ctx;
    const dropKg = previous?.load_kg !== undefined && fix.load_kg !== undefined && !ctx.moving ? previous.load_kg - fix.load_kg : 0;
    const tipping = fix.tipper_up === true || dropKg >= config.dumpDropKg;
    const holds = tipping && ctx.registry.disposalSitesAt(ctx.position, config.siteToleranceM).length === 0;
    // A weighed drop is evidence enough on one fix; the tipper switch wants a second fix to agree.
    const dropped = dropKg >= config.dumpDropKg;
    step(ctx, state, holds, { graceMs: 0, minFixes: dropped ? 1 : 2, severity: 'critical' }, holds && dropped ? { detail: { load_drop_kg: dropKg } } : {});
  },
};
