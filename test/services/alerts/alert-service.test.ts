// How the alert service records findings (alerts/alert-service.ts) on a real PostgreSQL: one after
// the other in the order found, told to the outputs once stored; while the server is down they
// wait in memory, up to a bound past which they are dropped and counted, and are recorded in
// their order once it is back.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertService, type AlertEvent } from '../../../services/alerts/alert-service.ts';
import { alertsSchema } from '../../../services/config/schema.ts';
import type { Finding } from '../../../services/contract/findings.ts';
import { createLogger } from '../../../services/log.ts';
import type { RegistryDb } from '../../../services/registry/db.ts';
import { startTestPostgres, type TestPostgres } from '../../helpers/postgres.ts';
import { NIGHT, worldRegistry } from '../../helpers/rules-world.ts';

let cluster: TestPostgres;
beforeAll(async () => {
  cluster = await startTestPostgres();
});
afterAll(async () => {
  await cluster?.cleanup();
});

const MINUTE = 60_000;
function finding(truck: string, startedAt: number, endedAt: number | null): Finding {
  return {
    type: 'route_deviation',
    severity: 'warning',
    subject: { kind: 'truck', id: truck, plate: `苏E·${truck}`, deviceId: `GPS-${truck}` },
    startedAt,
    endedAt,
    location: [120.58, 31.3],
    jurisdictions: ['WEST'],
    evidence: [{ kind: 'fix', ts: endedAt ?? startedAt + MINUTE, device_id: `GPS-${truck}`, lon: 120.58, lat: 31.3, speed_kmh: 36 }],
    permit: null,
    detail: {},
  };
}

function service(db: RegistryDb, waitingMax?: number): { alerts: AlertService; told: string[] } {
  const told: string[] = [];
  const output = { deliver: ({ alert, change }: AlertEvent) => told.push(`${alert.subject.id} ${change} v${alert.version}`) };
  const alerts = new AlertService({ db, config: alertsSchema.parse({}), evidenceMax: 40, outputs: [output], writeLines: async () => {}, log: createLogger('silent'), waitingMax });
  return { alerts, told };
}

describe('AlertService on PostgreSQL', () => {
  it('records each subject\'s findings in the order found, and another subject\'s meanwhile, telling the outputs once each is stored', async () => {
    const { db } = await worldRegistry({}, await cluster.createDatabase());
    const { alerts, told } = service(db);
    // Another process is recording a finding about T1 (it holds T1's lock).
    const other = new pg.Client({ connectionString: db.location });
    await other.connect();
    await other.query('BEGIN');
    await other.query("SELECT pg_advisory_xact_lock(hashtextextended('alert:route_deviation:T1', 0))");
    try {
      alerts.onFinding(finding('T1', NIGHT, null));
      alerts.onFinding(finding('T2', NIGHT, null));
      alerts.onFinding(finding('T1', NIGHT, NIGHT + 5 * MINUTE));
      // Not yet: each is a transaction on the alerts' connections, the thread goes on meanwhile.
      expect(told).toEqual([]);
      expect(alerts.waitingFindings).toBe(3);
      // T2's goes by while T1's wait for the lock.
      for (let i = 0; i < 200 && told.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(told).toEqual(['T2 raised v1']);
      expect(alerts.waitingFindings).toBe(2);
    } finally {
      await other.query('COMMIT');
      await other.end();
    }
    await alerts.recorded();
    expect(told).toEqual(['T2 raised v1', 'T1 raised v1', 'T1 updated v2']);
    expect(new Map(alerts.store.list({ limit: 10, offset: 0 }).items.map((a) => [a.subject.id, a.ended_at]))).toEqual(
      new Map([
        ['T1', new Date(NIGHT + 5 * MINUTE).toISOString()],
        ['T2', null],
      ]),
    );
    db.close();
  });

  it('makes an officer\'s acknowledgement wait behind the findings of its subject under way, and tells the changes in their order', async () => {
    const { db } = await worldRegistry({}, await cluster.createDatabase());
    const { alerts, told } = service(db);
    alerts.onFinding(finding('T1', NIGHT, null));
    await alerts.recorded();
    const { id } = alerts.store.list({ limit: 1, offset: 0 }).items[0]!;
    for (let round = 1; round <= 20; round++) {
      // A finding in flight when the officer acknowledges: the acknowledgement comes after it.
      alerts.onFinding(finding('T1', NIGHT, NIGHT + round * MINUTE));
      if (round === 10) expect(await alerts.acknowledge(id, 'officer-li')).toMatchObject({ status: 'acknowledged', version: 12 });
    }
    await alerts.recorded();
    expect(told).toEqual(['T1 raised v1', ...Array.from({ length: 10 }, (_, k) => `T1 updated v${k + 2}`), 'T1 acknowledged v12', ...Array.from({ length: 10 }, (_, k) => `T1 updated v${k + 13}`)]);
    expect(alerts.store.history(id).map((h) => h.version)).toEqual(Array.from({ length: 22 }, (_, k) => k + 1));
    await expect(alerts.acknowledge(id, 'officer-li')).rejects.toThrow(/is acknowledged/);
    await expect(alerts.acknowledge('al_none', 'officer-li')).rejects.toThrow(/no alert/);
    db.close();
  });

  it('says when it has room again for a caller that can wait (the rules replaying history at start)', async () => {
    const { db } = await worldRegistry({}, await cluster.createDatabase());
    const { alerts, told } = service(db, 4);
    const other = new pg.Client({ connectionString: db.location });
    await other.connect();
    await other.query('BEGIN');
    await other.query("SELECT pg_advisory_xact_lock(hashtextextended('alert:route_deviation:T1', 0))");
    for (let minute = 1; minute <= 3; minute++) alerts.onFinding(finding('T1', NIGHT, NIGHT + minute * MINUTE));
    let roomy = false;
    const room = alerts.room().then(() => (roomy = true));
    try {
      // Three of at most four wait behind the lock: more than half.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(roomy).toBe(false);
      expect(alerts.waitingFindings).toBe(3);
    } finally {
      await other.query('COMMIT');
      await other.end();
    }
    await room;
    expect(alerts.waitingFindings).toBeLessThanOrEqual(2);
    await alerts.recorded();
    expect(told).toHaveLength(3);
    db.close();
  });

  it('keeps findings in memory while the server is down, up to its bound, and records them in order when it is back', async () => {
    const { db } = await worldRegistry({}, await cluster.createDatabase());
    const { alerts, told } = service(db, 4);
    alerts.onFinding(finding('T1', NIGHT, null));
    await alerts.recorded();
    await cluster.kill();
    try {
      alerts.onFinding(finding('T2', NIGHT, null));
      alerts.onFinding(finding('T1', NIGHT, NIGHT + 5 * MINUTE));
      alerts.onFinding(finding('T3', NIGHT, null));
      alerts.onFinding(finding('T2', NIGHT, NIGHT + 9 * MINUTE));
      // Past the bound: dropped, and counted.
      alerts.onFinding(finding('T4', NIGHT, null));
      alerts.onFinding(finding('T5', NIGHT, null));
      expect(alerts.waitingFindings).toBe(4);
      expect(alerts.droppedFindings).toBe(2);
      // Tried and refused while the server is down: still waiting, none lost, none told.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(alerts.waitingFindings).toBe(4);
      expect(told).toEqual(['T1 raised v1']);
    } finally {
      await cluster.restart();
    }
    await alerts.recorded();
    // Each subject's in the order found (different subjects' side by side, in any order).
    const bySubject = (lines: string[]) => {
      const out: Record<string, string[]> = {};
      for (const line of lines) (out[line.split(' ')[0]!] ??= []).push(line);
      return out;
    };
    expect(told).toHaveLength(5);
    expect(bySubject(told)).toEqual({ T1: ['T1 raised v1', 'T1 updated v2'], T2: ['T2 raised v1', 'T2 updated v2'], T3: ['T3 raised v1'] });
    expect(new Set(alerts.store.list({ limit: 10, offset: 0 }).items.map((a) => a.subject.id))).toEqual(new Set(['T1', 'T2', 'T3']));
    db.close();
  });
});
