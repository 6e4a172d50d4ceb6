// The ground truth of a truck trip: its planned phases sampled every second and checked against
// the rule catalogue's definitions (thresholds.ts). Independent of how a violation was injected,
// so a label says what happened, not what was meant to happen.
import type { AlertType } from '../../services/contract/alerts.ts';
import { insideWindows } from '../../services/contract/local-time.ts';
import type { LonLat } from '../engine/path.ts';
import { makeLabel, type Label, type LabelSubject } from './labels.ts';
import { TRUTH } from './thresholds.ts';
import { stateIn, type Phase, type VehicleState } from './timeline.ts';
import type { Violation } from './violations.ts';
import type { SimPermit, World } from './world.ts';

const STEP_MS = 1000;

interface Check {
  type: AlertType;
  holds: (s: VehicleState, t: number) => boolean;
  /** Gaps up to this long join two stretches into one violation. */
  joinGapMs: number;
  /** Evidence needed before a rule may raise it: time, or distance driven in the stretch. */
  graceMs: number;
  graceM?: number;
}

interface Stretch {
  start: number;
  last: number;
  detectableAt: number | null;
  metres: number;
  lastPosition: LonLat;
  jurisdictions: Set<string>;
  location: LonLat;
}

export function tripLabels(world: World, phases: Phase[], permit: SimPermit | null, subject: LabelSubject, cause: Violation | 'natural'): Label[] {
  if (phases.length === 0) return [];
  const from = phases[0]!.start;
  const to = phases.at(-1)!.end;
  const moving = (s: VehicleState) => s.speedKmh > TRUTH.movingKmh;
  const permitted = (t: number) => permit !== null && t >= permit.validFrom && t < permit.validTo;
  const checks: Check[] = [
    { type: 'no_permit', holds: (s, t) => moving(s) && !permitted(t), joinGapMs: 30 * 60_000, graceMs: 0 },
    { type: 'out_of_hours', holds: (s, t) => moving(s) && permitted(t) && !insideWindows(permit!.windows, t), joinGapMs: 30 * 60_000, graceMs: 0 },
    {
      type: 'route_deviation',
      holds: (s, t) => permitted(t) && permit!.route.distanceTo(s.position) > permit!.corridorM,
      joinGapMs: 30_000,
      graceMs: TRUTH.routeGraceS * 1000,
      graceM: TRUTH.routeGraceM,
    },
    { type: 'speeding', holds: (s) => s.speedKmh > TRUTH.speedLimitKmh, joinGapMs: 30_000, graceMs: TRUTH.speedingMinS * 1000 },
    { type: 'uncovered_transport', holds: (s) => moving(s) && s.loadKg > 0 && !s.coverClosed, joinGapMs: 120_000, graceMs: TRUTH.uncoveredMinS * 1000 },
    { type: 'illegal_dump', holds: (s) => s.tipperUp && !world.insideSite(s.position, 'disposal'), joinGapMs: 60_000, graceMs: 0 },
  ];
  const open = new Map<AlertType, Stretch>();
  const labels: Label[] = [];
  const close = (check: Check, stretch: Stretch) => {
    open.delete(check.type);
    if (stretch.detectableAt === null) return;
    labels.push(
      makeLabel({
        type: check.type,
        cause,
        subject,
        jurisdictions: [...stretch.jurisdictions].sort(),
        start: stretch.start,
        end: stretch.last,
        detectableAt: stretch.detectableAt,
        location: stretch.location,
      }),
    );
  };
  let phaseIndex = 0;
  for (let t = from; t < to; t += STEP_MS) {
    while (phases[phaseIndex]!.end <= t && phaseIndex < phases.length - 1) phaseIndex++;
    const state = stateIn(phases[phaseIndex]!, t);
    for (const check of checks) {
      let stretch = open.get(check.type);
      if (stretch && t - stretch.last > check.joinGapMs) {
        close(check, stretch);
        stretch = undefined;
      }
      if (!check.holds(state, t)) continue;
      if (!stretch) {
        stretch = { start: t, last: t, detectableAt: null, metres: 0, lastPosition: state.position, jurisdictions: new Set(), location: state.position };
        open.set(check.type, stretch);
      }
      stretch.metres += world.ruler.distance(stretch.lastPosition, state.position);
      stretch.lastPosition = state.position;
      stretch.last = t;
      for (const j of world.jurisdictionsAt(state.position)) stretch.jurisdictions.add(j);
      const enough = t - stretch.start >= check.graceMs || (check.graceM !== undefined && stretch.metres >= check.graceM);
      if (stretch.detectableAt === null && enough) stretch.detectableAt = t;
    }
  }
  for (const check of checks) {
    const stretch = open.get(check.type);
    if (stretch) close(check, stretch);
  }
  return labels;
}
