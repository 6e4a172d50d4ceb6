// How the alert service records findings (alerts/alert-service.ts) on a real PostgreSQL: one after
// the other in the order found, told to the outputs once stored; while the server is down they
// wait in memory, up to a bound past which they are dropped and counted, and are recorded in
// their order once it is back.
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
  it('records findings in the order found and tells the outputs once each is stored', async () => {
    const { db } = await worldRegistry({}, await cluster.createDatabase());
    const { alerts, told } = service(db);
    alerts.onFinding(finding('T1', NIGHT, null));
    alerts.onFinding(finding('T2', NIGHT, null));
    alerts.onFinding(finding('T1', NIGHT, NIGHT + 5 * MINUTE));
    // Not yet: each is its own transaction on the alerts' connection, the thread goes on meanwhile.
    expect(told).toEqual([]);
    expect(alerts.waitingFindings).toBe(3);
    await alerts.recorded();
    expect(told).toEqual(['T1 raised v1', 'T2 raised v1', 'T1 updated v2']);
    expect(alerts.waitingFindings).toBe(0);
    expect(new Map(alerts.store.list({ limit: 10, offset: 0 }).items.map((a) => [a.subject.id, a.ended_at]))).toEqual(
      new Map([
        ['T1', new Date(NIGHT + 5 * MINUTE).toISOString()],
        ['T2', null],
      ]),
    );
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
    expect(told).toEqual(['T1 raised v1', 'T2 raised v1', 'T1 updated v2', 'T3 raised v1', 'T2 updated v2']);
    expect(new Set(alerts.store.list({ limit: 10, offset: 0 }).items.map((a) => a.subject.id))).toEqual(new Set(['T1', 'T2', 'T3']));
    db.close();
  });
});
