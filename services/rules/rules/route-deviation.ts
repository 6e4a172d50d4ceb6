// Route deviation (docs/architecture.md §4): outside the corridor of every permit in force for longer than the
// grace period or distance. Parked with the ignition off is not driving a route, and inside the
// permit's own construction or disposal site the truck is where it should be.
import { newStretchState, step, type StretchState } from '../stretch.ts';
import type { FixRule } from '../types.ts';

export const routeDeviation: FixRule<StretchState> = {
  type: 'route_deviation',
  fleets: ['muck'],
  initialState: newStretchState,
  onFix(ctx, state) {
    let outside = ctx.permits.length > 0 && ctx.fix.ignition !== false;
    let beyond = Infinity;
    let nearest = ctx.permits[0];
    for (const permit of outside ? ctx.permits : []) {
      const excess = permit.route.distanceTo(ctx.position) - permit.corridorM;
      const atEnd = () => ctx.registry.inSite(permit.siteId, ctx.position, 0) || ctx.registry.inSite(permit.disposalSiteId, ctx.position, 0);
      if (excess <= 0 || atEnd()) {
        outside = false;
        break;
      }
      if (excess < beyond) {
        beyond = excess;
        nearest = permit;
      }
    }
    const { routeGraceS, routeGraceM } = ctx.config;
    step(ctx, state, outside, { graceMs: routeGraceS * 1000, graceM: routeGraceM, severity: 'warning' }, outside && nearest ? { distanceM: beyond, permit: { id: nearest.id, number: nearest.number } } : {});
  },
};
