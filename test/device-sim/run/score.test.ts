// Scoring alerts against labels, on hand-built cases with known answers.
import { describe, expect, it } from 'vitest';
import { score, scoreTable, simTimeAt } from '../../../device-sim/run/score.ts';
import type { LabelRecord } from '../../../device-sim/world/labels.ts';
import type { Alert } from '../../../services/contract/alerts.ts';

const T = (minute: number) => new Date(Date.parse('2026-11-20T14:00:00Z') + minute * 60_000).toISOString();
const label = (id: string, subject: string, start: number, end: number | null, jurisdictions = ['jurisdiction-west']): LabelRecord => ({
  id,
  type: 'route_deviation',
  cause: 'route_deviation',
  subject: { kind: 'truck', id: subject, device_id: `GPS-${subject}`, plate: `苏E·${subject}` },
  jurisdictions,
  start: T(start),
  end: end === null ? null : T(end),
  detectable_at: T(start + 1),
  location: null,
});
const alert = (id: string, subject: Partial<Alert['subject']>, start: number, end: number | null, raised: number, jurisdictions = ['jurisdiction-west']): Alert => ({
  id,
  type: 'route_deviation',
  severity: 'warning',
  status: 'open',
  subject: { kind: 'truck', id: 'x', ...subject },
  jurisdictions,
  location: null,
  started_at: T(start),
  ended_at: end === null ? null : T(end),
  raised_at: T(raised),
});

describe('score', () => {
  const labels = [label('a', 't1', 0, 5), label('b', 't2', 10, 20, ['jurisdiction-west', 'jurisdiction-east']), label('c', 't3', 30, null)];
  const alerts = [
    alert('1', { id: 't1' }, 1, 6, 1.5), // matches a by id, 30 s after detectable
    alert('2', { device_id: 'GPS-t2' }, 12, null, 12, ['jurisdiction-west']), // matches b by device, routed west only
    alert('3', { plate: '苏E·t1' }, 60, 61, 60), // t1 again, an hour later: false
    alert('4', { id: 't9' }, 30, 31, 31), // nobody's: false
  ];

  it('counts detections, false alerts, recall, precision, delay and routing per type', () => {
    const [deviation] = score(labels, alerts, null).types.filter((t) => t.type === 'route_deviation');
    expect(deviation).toMatchObject({ labels: 3, alerts: 4, detected: 2, falseAlerts: 2, precision: 0.5, recall: 2 / 3, routed: 1 });
    // Delays 30 s (a) and 60 s (b): the median is the higher of two, by the nearest-rank rule.
    expect(deviation!.delayP50S).toBe(60);
    expect(scoreTable(score(labels, alerts, null))).toMatch(/route_deviation\s+3\s+4\s+2\s+2\s+0\.500\s+0\.667\s+60\s+60\s+1\/2/);
  });

  it('lets a tolerance decide how far apart an alert and its label may be', () => {
    const late = [alert('5', { id: 't1' }, 7, 8, 7)];
    expect(score([labels[0]!], late, null, 60).types.find((t) => t.type === 'route_deviation')!.detected).toBe(0);
    expect(score([labels[0]!], late, null, 180).types.find((t) => t.type === 'route_deviation')!.detected).toBe(1);
  });

  it('maps wall-clock alert times to simulated time for accelerated runs', () => {
    const run = { start: '2026-11-20T00:00:00.000Z', speed: '×60', wall_start: '2026-11-20T12:00:00.000Z' };
    // One wall minute in, sixty simulated minutes have passed.
    expect(simTimeAt(run, Date.parse('2026-11-20T12:01:00Z'))).toBe(Date.parse('2026-11-20T01:00:00Z'));
    // The simulated clock never passes the real one.
    expect(simTimeAt(run, Date.parse('2026-11-20T12:30:00Z'))).toBe(Date.parse('2026-11-20T12:30:00Z'));
    expect(simTimeAt({ ...run, speed: 'max' }, Date.now())).toBeNull();
  });
});
