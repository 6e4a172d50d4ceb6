// Scoring: the alerts a service raised against the simulator's ground-truth labels, per alert type.
// An alert matches a label of the same type when they name the same subject (registry id, device
// or plate) and their times overlap, give or take a tolerance for clocks and report intervals.
import { BIN_ALERT_TYPES, TRUCK_ALERT_TYPES, type Alert } from '../../services/contract/alerts.ts';
import type { LabelRecord } from '../world/labels.ts';

export const SCORED_TYPES = [...TRUCK_ALERT_TYPES, ...BIN_ALERT_TYPES] as const;

export interface RunInfo {
  start: string;
  speed: string;
  wall_start: string;
}

export interface TypeScore {
  type: string;
  labels: number;
  alerts: number;
  /** Labels with at least one matching alert. */
  detected: number;
  /** Alerts that match no label. */
  falseAlerts: number;
  precision: number | null;
  recall: number | null;
  /** Simulated seconds from a label's detectable_at to its first alert being raised. */
  delayP50S: number | null;
  delayP95S: number | null;
  /** Detected labels whose alert was routed to every jurisdiction the label touched. */
  routed: number;
}

export interface Score {
  toleranceS: number;
  types: TypeScore[];
  /** Alerts of types the simulator does not label. */
  unscored: Record<string, number>;
}

/** Simulated time at a wall-clock time, for runs at a fixed speed (null when run as fast as possible). */
export function simTimeAt(run: RunInfo | null, wallMs: number): number | null {
  if (!run) return wallMs;
  if (run.speed === 'max') return null;
  const speed = Number(run.speed.replace('×', ''));
  const start = Date.parse(run.start);
  const wallStart = Date.parse(run.wall_start);
  // The simulated clock never ran ahead of the real one.
  return Math.min(start + (wallMs - wallStart) * speed, wallMs);
}

export function score(labels: LabelRecord[], alerts: Alert[], run: RunInfo | null, toleranceS = 120): Score {
  const tolerance = toleranceS * 1000;
  const sameSubject = (l: LabelRecord, a: Alert) =>
    a.subject.id === l.subject.id || (a.subject.device_id !== undefined && a.subject.device_id === l.subject.device_id) || (a.subject.plate !== undefined && a.subject.plate === l.subject.plate);
  const overlaps = (l: LabelRecord, a: Alert) => {
    const aStart = Date.parse(a.started_at);
    const aEnd = a.ended_at ? Date.parse(a.ended_at) : Infinity;
    const lStart = Date.parse(l.start) - tolerance;
    const lEnd = l.end ? Date.parse(l.end) + tolerance : Infinity;
    return aStart <= lEnd && lStart <= aEnd;
  };
  const unscored: Record<string, number> = {};
  for (const a of alerts) if (!(SCORED_TYPES as readonly string[]).includes(a.type)) unscored[a.type] = (unscored[a.type] ?? 0) + 1;

  const types = SCORED_TYPES.map((type): TypeScore => {
    const ls = labels.filter((l) => l.type === type);
    const as = alerts.filter((a) => a.type === type);
    const matchedAlerts = new Set<Alert>();
    const delays: number[] = [];
    let detected = 0;
    let routed = 0;
    for (const l of ls) {
      const matches = as.filter((a) => sameSubject(l, a) && overlaps(l, a));
      if (matches.length === 0) continue;
      detected++;
      matches.forEach((a) => matchedAlerts.add(a));
      const first = matches.reduce((x, y) => (Date.parse(y.raised_at) < Date.parse(x.raised_at) ? y : x));
      if (l.jurisdictions.every((j) => first.jurisdictions.includes(j))) routed++;
      const raised = simTimeAt(run, Date.parse(first.raised_at));
      if (raised !== null) delays.push((raised - Date.parse(l.detectable_at)) / 1000);
    }
    delays.sort((a, b) => a - b);
    const quantile = (q: number) => (delays.length === 0 ? null : Math.round(delays[Math.min(delays.length - 1, Math.floor(q * delays.length))]! * 10) / 10);
    return {
      type,
      labels: ls.length,
      alerts: as.length,
      detected,
      falseAlerts: as.length - matchedAlerts.size,
      precision: as.length === 0 ? null : matchedAlerts.size / as.length,
      recall: ls.length === 0 ? null : detected / ls.length,
      delayP50S: quantile(0.5),
      delayP95S: quantile(0.95),
      routed,
    };
  });
  return { toleranceS, types, unscored };
}

export function scoreTable(result: Score): string {
  const f = (x: number | null) => (x === null ? '-' : x.toFixed(3));
  const s = (x: number | null) => (x === null ? '-' : String(x));
  const header = ['type', 'labels', 'alerts', 'detected', 'false', 'precision', 'recall', 'delay p50 s', 'delay p95 s', 'routed'];
  const rows = result.types
    .filter((t) => t.labels > 0 || t.alerts > 0)
    .map((t) => [t.type, String(t.labels), String(t.alerts), String(t.detected), String(t.falseAlerts), f(t.precision), f(t.recall), s(t.delayP50S), s(t.delayP95S), `${t.detected === 0 ? '-' : `${t.routed}/${t.detected}`}`]);
  if (rows.length === 0) return 'no labels and no alerts to score\n';
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const unscored = Object.entries(result.unscored).map(([k, v]) => `${k} ${v}`);
  return [
    line(header),
    ...rows.map(line),
    '',
    `A label counts as detected when an alert of its type names the same subject within ${result.toleranceS} s of it; delay runs from the`,
    'moment the label became detectable to the alert being raised, in simulated seconds. routed: alerts sent to every jurisdiction touched.',
    ...(unscored.length > 0 ? [`Alerts of types the simulator does not label: ${unscored.join(', ')}`] : []),
    '',
  ].join('\n');
}
