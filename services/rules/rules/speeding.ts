// Speeding: GPS speed over the limit of the zone the truck is in (or the general limit) for the
// configured time.
//
// Trucks report every 10–30 s, so a burst of speed long enough to count may hold one fix only.
// How long it lasted is read from the distance driven either side of that fix: between a fix at
// the normal speed and one over the limit, the average speed (distance over time) tells what share
// of the interval was driven at the higher speed. One stray speed reading is not corroborated by
// the distance (and a position jump is an outlier the engine drops), so one fix may be enough.
import { distanceM, type LonLat } from '../../geo.ts';
import { newStretchState, step, type StretchState } from '../stretch.ts';
import type { FixContext, FixRule, TruckFix } from '../types.ts';

/**
 * Metres driven between two fixes: along the permit's route when both lie in its corridor (a
 * straight line cuts the corners of a city route), else in a straight line. A route that passes
 * near itself could put the two fixes far apart along it, so the road distance is taken only when
 * the faster of the two speeds could have covered it.
 */
function drivenM(ctx: FixContext, a: TruckFix, b: TruckFix): number {
  const pa: LonLat = [a.lon, a.lat];
  const pb: LonLat = [b.lon, b.lat];
  const straight = distanceM(pa, pb);
  const reachable = (Math.max(a.speed_kmh, b.speed_kmh) / 3.6) * (Math.abs(b.ts - a.ts) / 1000);
  for (const { route, corridorM } of ctx.permits) {
    if (route.distanceTo(pa) > corridorM || route.distanceTo(pb) > corridorM) continue;
    const road = Math.abs(route.alongM(pb) - route.alongM(pa));
    if (road > straight && road <= reachable) return road;
  }
  return straight;
}

/**
 * Share of the time between the two fixes driven at the fast fix's speed, taking the rest to be
 * driven at the other fix's speed. A truck standing at the other fix drove off (or came to a stop)
 * at a speed no fix shows: the fix on the burst's far side tells it when it is moving; otherwise the
 * limit is taken, which credits the burst with only the time the distance proves (0 km/h would
 * credit it with the whole drive).
 */
function overLimitShare(ctx: FixContext, clear: TruckFix, fast: TruckFix, across: TruckFix | null): number {
  const moving = (f: TruckFix | null): f is TruckFix => f !== null && f.speed_kmh > ctx.config.movingKmh;
  const otherKmh = moving(clear) ? clear.speed_kmh : moving(across) ? across.speed_kmh : ctx.speedLimitAt([fast.lon, fast.lat]);
  const seconds = Math.abs(fast.ts - clear.ts) / 1000;
  const difference = fast.speed_kmh - otherKmh;
  if (seconds === 0 || difference <= 0) return 0.5;
  const averageKmh = (drivenM(ctx, clear, fast) / seconds) * 3.6;
  return Math.min(1, Math.max(0, (averageKmh - otherKmh) / difference));
}

export const speeding: FixRule<StretchState> = {
  type: 'speeding',
  fleets: ['muck'],
  initialState: newStretchState,
  onFix(ctx, state) {
    const limit = ctx.speedLimitAt(ctx.position);
    const holds = ctx.fix.speed_kmh > limit;
    const previousMax = (state.stretch?.detail.max_speed_kmh as number | undefined) ?? 0;
    step(
      ctx,
      state,
      holds,
      { graceMs: ctx.config.speedingMinS * 1000, minFixes: 1, heldShare: overLimitShare, severity: 'warning' },
      holds ? { detail: { limit_kmh: limit, max_speed_kmh: Math.max(previousMax, ctx.fix.speed_kmh) } } : {},
    );
  },
};
