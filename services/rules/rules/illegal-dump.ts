// Illegal dump: tipping (tipper raised, or the load dropping sharply while stopped) outside every
// approved disposal site, give or take the GPS error.
import { distanceM } from '../../geo.ts';
import { newStretchState, step, type StretchState } from '../stretch.ts';
import type { FixRule } from '../types.ts';

/** Two fixes of a standing truck lie this close, GPS error included. */
const STOPPED_WITHIN_M = 50;

export const illegalDump: FixRule<StretchState> = {
  type: 'illegal_dump',
  fleets: ['muck'],
  initialState: newStretchState,
  onFix(ctx, state) {
    const { fix, previous, config } = ctx;
    // Stopped: slow, and where it was at the previous fix (a GPS outlier is not a place to dump).
    const stopped = previous !== null && !ctx.moving && distanceM([previous.lon, previous.lat], ctx.position) <= STOPPED_WITHIN_M;
    const dropKg = stopped && previous.load_kg !== undefined && fix.load_kg !== undefined ? previous.load_kg - fix.load_kg : 0;
    const tipping = fix.tipper_up === true || dropKg >= config.dumpDropKg;
    const holds = tipping && ctx.registry.disposalSitesAt(ctx.position, config.siteToleranceM).length === 0;
    // A weighed drop is evidence enough on one fix; the tipper switch wants a second fix to agree.
    const dropped = dropKg >= config.dumpDropKg;
    step(ctx, state, holds, { graceMs: 0, minFixes: dropped ? 1 : 2, severity: 'critical' }, holds && dropped ? { detail: { load_drop_kg: dropKg } } : {});
  },
};
