// The alert lifecycle and deduplication: one alert per subject and type while a violation lasts,
// merging within the gap, a new case after an officer resolved one, transitions with who and when;
// on SQLite and on PostgreSQL, where several processes record findings into one database.
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { AlertStore } from '../../../services/alerts/alert-store.ts';
import type { Finding } from '../../../services/contract/findings.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { BACKENDS, registryLocations } from '../../helpers/registry-backends.ts';
import { NIGHT, worldRegistry } from '../../helpers/rules-world.ts';

let db: RegistryDb;
const others: RegistryDb[] = [];
afterEach(() => {
  db?.close();
  for (const other of others.splice(0)) other.close();
});

const subject = { kind: 'truck' as const, id: 'T1', plate: '苏E·00001', deviceId: 'GPS-1' };
const fix = (ts: number) => ({ kind: 'fix' as const, ts, device_id: 'GPS-1', lon: 120.58, lat: 31.3, speed_kmh: 36 });
function finding(startedAt: number, endedAt: number | null, lastFix: number, jurisdictions = ['WEST']): Finding {
  return { type: 'route_deviation', severity: 'warning', subject, startedAt, endedAt, location: [120.58, 31.3], jurisdictions, evidence: [fix(startedAt), fix(lastFix)], permit: { id: 'P1', number: 'PZ-2026-001' }, detail: {} };
}

const OPTIONS = { mergeGapMs: () => 300_000, evidenceMax: 40 };

describe.each(BACKENDS)('alert store on %s', (backend) => {
  const location = registryLocations(backend);

  async function store(): Promise<AlertStore> {
    ({ db } = await worldRegistry({}, await location()));
    return new AlertStore(db, OPTIONS);
  }

  it('keeps one alert while a violation lasts, updates it when it grows or ends, and ignores repeats', async () => {
    const alerts = await store();
    const raised = alerts.record(finding(NIGHT, null, NIGHT + 60_000), 1000);
    expect(raised?.change).toBe('raised');
    expect(alerts.record(finding(NIGHT, null, NIGHT + 60_000), 2000)).toBeNull();
    // More evidence only: stored, nobody told.
    expect(alerts.record(finding(NIGHT, null, NIGHT + 90_000), 3000)).toBeNull();
    const grown = alerts.record(finding(NIGHT, null, NIGHT + 120_000, ['EAST', 'WEST']), 4000);
    expect(grown?.change).toBe('updated');
    expect(grown?.alert.jurisdictions).toEqual(['EAST', 'WEST']);
    const ended = alerts.record(finding(NIGHT, NIGHT + 200_000, NIGHT + 200_000), 5000);
    expect(ended?.alert).toMatchObject({ id: raised!.alert.id, ended_at: new Date(NIGHT + 200_000).toISOString(), version: 3, raised_at: new Date(1000).toISOString() });
    // A replay of an older, shorter stretch does not move the end back.
    expect(alerts.record(finding(NIGHT, NIGHT + 100_000, NIGHT + 100_000), 6000)).toBeNull();
    expect(alerts.list({ limit: 10, offset: 0 }).total).toBe(1);
    expect(alerts.history(raised!.alert.id).map((h) => h.change)).toEqual(['raised', 'updated', 'ended']);
  });

  it('reopens an alert for a violation resuming within the merge gap, raises a new one after it', async () => {
    const alerts = await store();
    const first = alerts.record(finding(NIGHT, NIGHT + 100_000, NIGHT + 100_000), 1000)!.alert;
    const resumed = alerts.record(finding(NIGHT + 200_000, null, NIGHT + 260_000), 2000)!;
    expect(resumed.alert.id).toBe(first.id);
    expect(resumed.alert.ended_at).toBeNull();
    alerts.record(finding(NIGHT + 200_000, NIGHT + 300_000, NIGHT + 300_000), 3000);
    const later = alerts.record(finding(NIGHT + 3_600_000, null, NIGHT + 3_660_000), 4000)!;
    expect(later.change).toBe('raised');
    expect(later.alert.id).not.toBe(first.id);
  });

  it('moves open → acknowledged → resolved with who and when, and refuses other moves', async () => {
    const alerts = await store();
    const { id } = alerts.record(finding(NIGHT, null, NIGHT + 60_000), 1000)!.alert;
    expect(() => alerts.acknowledge('al_nope', 'officer', 2000)).toThrow(/no alert/);
    const acknowledged = alerts.acknowledge(id, 'officer-li', 2000);
    expect(acknowledged).toMatchObject({ status: 'acknowledged', acknowledged: { by: 'officer-li', at: new Date(2000).toISOString() } });
    expect(() => alerts.acknowledge(id, 'officer-li', 2500)).toThrow(/is acknowledged/);
    const resolved = alerts.resolve(id, 'officer-wang', 'fined 苏E·00001', 3000);
    expect(resolved).toMatchObject({ status: 'resolved', resolved: { by: 'officer-wang', note: 'fined 苏E·00001' } });
    expect(() => alerts.resolve(id, 'x', null, 4000)).toThrow(/is resolved/);
    expect(alerts.history(id).map((h) => [h.change, h.by])).toEqual([['raised', null], ['acknowledged', 'officer-li'], ['resolved', 'officer-wang']]);
  });

  it('opens a new case when a violation goes on after its alert was resolved', async () => {
    const alerts = await store();
    const first = alerts.record(finding(NIGHT, null, NIGHT + 60_000), 1000)!.alert;
    alerts.resolve(first.id, 'officer', null, 2000);
    expect(alerts.record(finding(NIGHT, null, NIGHT + 60_000), 3000)).toBeNull();
    const next = alerts.record(finding(NIGHT, null, NIGHT + 120_000), 4000)!;
    expect(next.change).toBe('raised');
    expect(alerts.list({ limit: 10, offset: 0, statuses: ['open'] }).items.map((a) => a.id)).toEqual([next.alert.id]);
  });

  it('gives the same violation the same id, and filters by jurisdiction, type, subject and time', async () => {
    const alerts = await store();
    const { id } = alerts.record(finding(NIGHT, NIGHT + 60_000, NIGHT + 60_000), 1000)!.alert;
    expect(id).toMatch(/^al_[0-9a-f]{24}$/);
    const base = { limit: 10, offset: 0 };
    expect(alerts.list({ ...base, jurisdictions: ['WEST'] }).total).toBe(1);
    expect(alerts.list({ ...base, jurisdictions: ['EAST'] }).total).toBe(0);
    expect(alerts.list({ ...base, jurisdictions: [] }).total).toBe(0);
    expect(alerts.list({ ...base, types: ['speeding'] }).total).toBe(0);
    expect(alerts.list({ ...base, subject: '苏E·00001' }).total).toBe(1);
    expect(alerts.list({ ...base, from: NIGHT + 120_000 }).total).toBe(0);
    expect(alerts.list({ ...base, to: NIGHT - 1 }).total).toBe(0);
  });

  it('raises one alert for a violation two processes record, the second merging into the first\'s', async () => {
    ({ db } = await worldRegistry({}, await location()));
    const other = new RegistryDb(db.location).open();
    others.push(other);
    const first = new AlertStore(db, OPTIONS);
    const second = new AlertStore(other, OPTIONS);
    const raised = first.record(finding(NIGHT, null, NIGHT + 60_000), 1000)!;
    expect(raised.change).toBe('raised');
    // The same finding from the other process: its alert exists already, and nothing is new.
    expect(second.record(finding(NIGHT, null, NIGHT + 60_000), 1500)).toBeNull();
    // The violation as the other process saw it, starting a little later and reaching further.
    const merged = second.record(finding(NIGHT + 30_000, null, NIGHT + 120_000, ['EAST', 'WEST']), 2000);
    expect(merged).toMatchObject({ change: 'updated', alert: { id: raised.alert.id, started_at: new Date(NIGHT).toISOString(), jurisdictions: ['EAST', 'WEST'], version: 2 } });
    for (const store of [first, second]) expect(store.list({ limit: 10, offset: 0 }).items.map((a) => a.id)).toEqual([raised.alert.id]);
    expect(first.history(raised.alert.id).map((h) => h.change)).toEqual(['raised', 'updated']);
  });
});

describe('alert store on PostgreSQL, shared by several processes', () => {
  const location = registryLocations('postgres');

  it('makes another process recording the same violation wait for the first to commit, then merge into its alert', async () => {
    ({ db } = await worldRegistry({}, await location()));
    // The other process gives up waiting after 0.5 s: both connections are driven from this one
    // thread, which cannot commit the first transaction while the second statement blocks it.
    const other = new RegistryDb(db.location, { statementTimeoutMs: 500 }).open();
    others.push(other);
    const first = new AlertStore(db, OPTIONS);
    const second = new AlertStore(other, OPTIONS);
    let raisedId = '';
    db.transaction(() => {
      raisedId = first.record(finding(NIGHT, null, NIGHT + 60_000), 1000)!.alert.id;
      // Without the lock the other process would not see this uncommitted alert (READ COMMITTED)
      // and would raise a second one, with an id of its own (it starts 30 s later).
      expect(() => second.record(finding(NIGHT + 30_000, null, NIGHT + 120_000), 2000)).toThrow(/statement timeout/);
    });
    expect(second.list({ limit: 10, offset: 0 }).items.map((a) => a.id)).toEqual([raisedId]);
    const merged = second.record(finding(NIGHT + 30_000, null, NIGHT + 120_000, ['EAST', 'WEST']), 3000);
    expect(merged).toMatchObject({ change: 'updated', alert: { id: raisedId, jurisdictions: ['EAST', 'WEST'] } });
    expect(first.list({ limit: 10, offset: 0 }).total).toBe(1);
  });

  it('makes an officer acknowledging an alert wait for another process merging a finding into it, and takes the next version after it', async () => {
    ({ db } = await worldRegistry({}, await location()));
    const alerts = new AlertStore(db, OPTIONS);
    const { id } = alerts.record(finding(NIGHT, null, NIGHT + 60_000), 1000)!.alert;
    // Another process merges a finding under the subject's lock (as record() does), and commits
    // half a second later; all of it runs on the server, so this thread may wait meanwhile.
    const merger = new pg.Client({ connectionString: db.location });
    await merger.connect();
    const quoted = pg.escapeLiteral(id);
    const merging = merger.query(
      `BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('alert:route_deviation:T1', 0));
       UPDATE alerts SET version = 2 WHERE id = ${quoted};
       INSERT INTO alert_history (alert_id, version, at, change, status, "by", note) VALUES (${quoted}, 2, 2000, 'updated', 'open', NULL, NULL);
       SELECT pg_sleep(0.5); COMMIT`,
    );
    try {
      while (!(db.statement("SELECT COUNT(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted").get() as { n: number }).n) await new Promise((r) => setTimeout(r, 10));
      // Without the lock it would read version 1 and write version 2 over the merge's history entry.
      expect(alerts.acknowledge(id, 'officer-li', 3000)).toMatchObject({ status: 'acknowledged', version: 3 });
      await merging;
    } finally {
      await merger.end();
    }
    expect(alerts.history(id).map((h) => [h.version, h.change, h.by])).toEqual([
      [1, 'raised', null],
      [2, 'updated', null],
      [3, 'acknowledged', 'officer-li'],
    ]);
  });
});
