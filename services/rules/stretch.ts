// A stretch: consecutive fixes of one truck during which a rule's condition holds (outside the
// corridor, over the limit, cover open while loaded...). Most truck rules are a condition plus a
// grace period, so they share this bookkeeping:
//   - a stretch begins between the last fix without the condition and the first with it: halfway
//     (the best estimate between two reports), or where `heldShare` puts it when the fixes tell
//     more (judged again at the fix after the stretch); it needs `minFixes` fixes (two, unless
//     the rule's share makes one stray fix harmless), so one stray fix never raises anything;
//   - it is raised once it has lasted `graceMs` (or covered `graceM` metres);
//   - a raised stretch ends after `endAfterFixes` consecutive fixes without the condition, at its
//     last fix with it; a gap in the fixes longer than `maxGapS` ends it too;
//   - at the first fix without the condition, an unraised stretch is taken to have ended halfway
//     to it (or where `heldShare` says); it is raised (and ended) if that makes it long enough,
//     and dropped otherwise.
import { distanceM, type LonLat } from '../geo.ts';
import { EVIDENCE_HEAD, fixEvidence, type Evidence, type FixContext, type Finding, type TruckFix } from './types.ts';

export interface Stretch {
  start: number;
  last: number;
  metres: number;
  lastPosition: LonLat;
  fixes: number;
  clearFixes: number;
  raised: boolean;
  jurisdictions: string[];
  evidence: Evidence[];
  location: LonLat;
  permit: Finding['permit'];
  detail: Record<string, unknown>;
  /** The fixes either side of where it began, for rules with `heldShare`: judged again at its end. */
  began: { clear: TruckFix; first: TruckFix } | null;
}

export interface StretchState {
  stretch: Stretch | null;
  previousTs: number | null;
}

export interface StretchOptions {
  graceMs: number;
  graceM?: number;
  minFixes?: number;
  severity: Finding['severity'];
  /**
   * The share (0–1) of the time between a fix without the condition and the next or previous one
   * with it during which the condition held; one half when not given. `across` is the fix without
   * it on the stretch's other side, once known.
   */
  heldShare?: (ctx: FixContext, clear: TruckFix, holding: TruckFix, across: TruckFix | null) => number;
}

export interface StepResult {
  stretch: Stretch | null;
  /** The stretch was raised by this fix. */
  raised: boolean;
  /** Where the truck was at the stretch's previous fix (for the road driven). */
  from: LonLat | null;
}

export function newStretchState(): StretchState {
  return { stretch: null, previousTs: null };
}

export function step(
  ctx: FixContext,
  state: StretchState,
  holds: boolean,
  options: StretchOptions,
  extra: { distanceM?: number; permit?: Finding['permit']; detail?: Record<string, unknown> } = {},
): StepResult {
  const { fix, position, config } = ctx;
  const ts = fix.ts;
  const maxGapMs = config.maxGapS * 1000;
  const previousTs = state.previousTs;
  state.previousTs = ts;
  let s = state.stretch;
  if (s && ts - s.last > maxGapMs) {
    if (s.raised) finish(ctx, s, options);
    s = state.stretch = null;
  }
  if (!holds) {
    // The violation went on somewhere between its last fix and this one: route it there too.
    if (s && s.raised && s.clearFixes === 0 && addJurisdictions(ctx, s, position)) emit(ctx, s, options, null);
    if (s && !s.raised && s.began && options.heldShare) {
      // Where it began, judged again now that the fix after it is known too.
      const { clear, first } = s.began;
      s.start = Math.round(first.ts - (first.ts - clear.ts) * options.heldShare(ctx, clear, first, fix));
    }
    if (s && !s.raised && ts - s.last <= maxGapMs && long(s, options, s.last + (ts - s.last) * share(ctx, options, s.last, 'ending', s.began?.clear ?? null))) {
      s.raised = true;
      addJurisdictions(ctx, s, position);
      finish(ctx, s, options);
      state.stretch = null;
      return { stretch: s, raised: true, from: null };
    }
    if (s && s.raised && ++s.clearFixes >= config.endAfterFixes) finish(ctx, s, options);
    if (s && (!s.raised || s.clearFixes >= config.endAfterFixes)) state.stretch = null;
    return { stretch: state.stretch, raised: false, from: null };
  }
  let from: LonLat | null = null;
  if (!s) {
    const joined = previousTs !== null && previousTs < ts && ts - previousTs <= maxGapMs;
    const lead = joined ? (ts - previousTs) * share(ctx, options, previousTs, 'starting', null) : 0;
    s = state.stretch = {
      start: Math.round(ts - lead),
      last: ts,
      metres: 0,
      lastPosition: position,
      fixes: 1,
      clearFixes: 0,
      raised: false,
      jurisdictions: [],
      evidence: [],
      location: position,
      permit: extra.permit ?? null,
      detail: extra.detail ?? {},
      began: joined && options.heldShare && ctx.previous?.ts === previousTs ? { clear: ctx.previous, first: fix } : null,
    };
    // ... and between the fix before it and its first one.
    if (lead > 0 && ctx.previous) addJurisdictions(ctx, s, [ctx.previous.lon, ctx.previous.lat]);
  } else {
    from = s.lastPosition;
    s.metres += distanceM(s.lastPosition, position);
    s.lastPosition = position;
    s.last = ts;
    s.fixes++;
    s.clearFixes = 0;
    if (extra.permit) s.permit = extra.permit;
    if (extra.detail) s.detail = { ...s.detail, ...extra.detail };
  }
  if (s.evidence.length >= config.evidenceMax) s.evidence.splice(EVIDENCE_HEAD, 1);
  s.evidence.push(fixEvidence(fix, extra.distanceM === undefined ? {} : { distance_m: extra.distanceM }));
  const grew = addJurisdictions(ctx, s, position);
  if (!s.raised) {
    if (long(s, options, s.last)) {
      s.raised = true;
      emit(ctx, s, options, null);
      return { stretch: s, raised: true, from };
    }
  } else if (grew) {
    emit(ctx, s, options, null);
  }
  return { stretch: s, raised: false, from };
}

/** The share of the time since the fix at `previousTs` (the truck's previous fix) in the stretch. */
function share(ctx: FixContext, options: StretchOptions, previousTs: number, at: 'starting' | 'ending', across: TruckFix | null): number {
  const previous = ctx.previous;
  if (!options.heldShare || previous?.ts !== previousTs) return 0.5;
  return at === 'starting' ? options.heldShare(ctx, previous, ctx.fix, null) : options.heldShare(ctx, ctx.fix, previous, across);
}

/** Enough fixes, and lasting the grace period (up to `end`) or covering the grace distance. */
function long(s: Stretch, options: StretchOptions, end: number): boolean {
  if (s.fixes < (options.minFixes ?? 2)) return false;
  return end - s.start >= options.graceMs || (options.graceM !== undefined && s.metres >= options.graceM);
}

/** Adds the jurisdictions at p; true when there was a new one. */
function addJurisdictions(ctx: FixContext, s: Stretch, p: LonLat): boolean {
  let grew = false;
  for (const j of ctx.registry.jurisdictionsAt(p, ctx.config.boundaryToleranceM)) {
    if (!s.jurisdictions.includes(j)) {
      s.jurisdictions.push(j);
      grew = true;
    }
  }
  return grew;
}

function finish(ctx: FixContext, s: Stretch, options: StretchOptions): void {
  emit(ctx, s, options, s.last);
}

function emit(ctx: FixContext, s: Stretch, options: StretchOptions, endedAt: number | null): void {
  ctx.report({
    type: ctx.rule,
    severity: options.severity,
    startedAt: s.start,
    endedAt,
    location: s.location,
    jurisdictions: [...s.jurisdictions].sort(),
    evidence: s.evidence.slice(),
    permit: s.permit,
    detail: { ...s.detail, metres: Math.round(s.metres), fixes: s.fixes },
  });
}
