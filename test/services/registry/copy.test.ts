// Moving a registry between backends (registry/copy.ts): a SQLite registry with realistic content,
// made through the stores, copied into a fresh PostgreSQL database, compared table by table, and
// read back through the stores on both sides; refusals, --force, the outbox's sequence, a failed
// copy leaving nothing behind, and the way back to SQLite.
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AlertStore } from '../../../services/alerts/alert-store.ts';
import { WebhookStore, WebhookTargets } from '../../../services/alerts/webhooks.ts';
import { sortingSchema } from '../../../services/config/schema.ts';
import type { Finding } from '../../../services/contract/findings.ts';
import { CopyRefused, REGISTRY_TABLES, compareRegistries, copyRegistry, tableCounts } from '../../../services/registry/copy.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { ENTITIES } from '../../../services/registry/entities.ts';
import { EntityStore } from '../../../services/registry/entity-store.ts';
import { MIGRATIONS } from '../../../services/registry/migrations.ts';
import { TokenStore } from '../../../services/registry/tokens.ts';
import { SortingStore } from '../../../services/sorting/sorting-store.ts';
import { startTestPostgres, type TestPostgres } from '../../helpers/postgres.ts';
import { NIGHT, writeWorld } from '../../helpers/rules-world.ts';
import { tempDir } from '../../helpers/service.ts';

let cluster: TestPostgres;
beforeAll(async () => {
  cluster = await startTestPostgres();
}, 60_000);
afterAll(async () => {
  await cluster?.cleanup();
});

const opened: RegistryDb[] = [];
afterEach(() => {
  for (const db of opened.splice(0)) db.close();
});
const open = (location: string, options: ConstructorParameters<typeof RegistryDb>[1] = {}): RegistryDb => {
  const db = new RegistryDb(location, options).open();
  opened.push(db);
  return db;
};
const sqliteFile = async () => path.join(await tempDir('waste-copy-'), 'registry.db');
const postgres = async () => open(await cluster.createDatabase());

const alertOptions = { mergeGapMs: () => 300_000, evidenceMax: 40 };
const subject = { kind: 'truck' as const, id: 'T9', plate: '苏E12345', deviceId: 'GPS-808' };
const fix = (ts: number, lon = 120.58) => ({ kind: 'fix' as const, ts, device_id: 'GPS-808', lon, lat: 31.3, speed_kmh: 36.5 });
const finding = (startedAt: number, endedAt: number | null, lastFix: number, jurisdictions = ['WEST']): Finding => ({
  type: 'route_deviation',
  severity: 'warning',
  subject,
  startedAt,
  endedAt,
  location: [120.58, 31.3],
  jurisdictions,
  evidence: [fix(startedAt), fix(lastFix, 120.612345678)],
  permit: { id: 'P1', number: 'PZ-2026-001' },
  detail: { deviation_m: 412.5, note: '偏离路线' },
});

interface Built {
  db: RegistryDb;
  alertId: string;
  tokens: { admin: string; enforcement: string; revoked: string };
}

/** A registry as a running installation has it: world, devices of every kind, tokens, an alert with its case history, a webhook with its outbox, tonnage. */
async function buildRegistry(location: string): Promise<Built> {
  const db = open(location);
  const entities = new EntityStore(db);
  writeWorld(entities);
  entities.update(ENTITIES.jurisdictions, 'WEST', { neighbour_ids: ['EAST'] });
  entities.create(ENTITIES.companies, 'C2', { name: '苏州渣土运输有限公司', credit_code: '91320500MA1234567X', contact: '王师傅 139-0000-0000' });
  entities.create(ENTITIES.trucks, 'T9', { plate: '苏E12345', company_id: 'C2', fleet: 'muck', rated_gross_kg: 31_000.5 });

  const devices = new DeviceStore(db);
  await devices.add('GPS-808', 'trucks', { phone: '013800138000', model: 'ZT-80', authCode: 'Code-1' });
  await devices.add('LORA-BIN-1', 'bins', undefined, { devEui: '24E124136B502217', sensor: 'milesight-em310-udl' });
  await devices.add('SCALE-9', 'scales');
  await devices.addService('waste-ops');
  devices.setEnabled('SCALE-9', false);
  entities.update(ENTITIES.trucks, 'T9', { device_id: 'GPS-808' });
  entities.update(ENTITIES.bins, 'BIN-1', { device_id: 'LORA-BIN-1' });
  entities.create(ENTITIES.weighbridges, 'WB-9', { site_id: 'SITE-A', device_id: 'SCALE-9' });

  const tokens = new TokenStore(db);
  const admin = tokens.create({ name: '指挥中心', role: 'admin' }).token;
  const enforcement = tokens.create({ name: '西区中队 app', role: 'enforcement', jurisdictions: ['WEST', 'EAST'] }).token;
  const old = tokens.create({ name: 'old integrator', role: 'integrator' });
  tokens.revoke(old.id);

  const webhooks = new WebhookStore(db, () => NIGHT);
  await webhooks.create({ jurisdiction_id: 'WEST', url: 'http://127.0.0.1:9/hook', secret: 'whsec-test' }, new WebhookTargets('127.0.0.0/8'));
  const alerts = new AlertStore(db, alertOptions);
  const raised = alerts.record(finding(NIGHT, null, NIGHT + 60_000), NIGHT + 61_000)!;
  webhooks.enqueue(raised.alert, 'raised');
  const grown = alerts.record(finding(NIGHT, null, NIGHT + 120_000, ['EAST', 'WEST']), NIGHT + 121_000)!;
  webhooks.enqueue(grown.alert, 'updated');
  alerts.acknowledge(raised.alert.id, 'officer-li', NIGHT + 200_000);
  const resolved = alerts.resolve(raised.alert.id, 'officer-wang', '苏E12345 已罚款 ✓', NIGHT + 300_000);
  webhooks.enqueue(resolved, 'resolved');
  // A delivered entry pruned: the source's sequence is past every seq left.
  const last = db.statement('SELECT MAX(seq) AS seq FROM webhook_outbox').get() as { seq: number };
  db.statement('DELETE FROM webhook_outbox WHERE seq = ?').run(last.seq);
  db.statement('UPDATE webhook_outbox SET delivered_at = ?, attempts = 1 WHERE seq = (SELECT MIN(seq) FROM webhook_outbox)').run(NIGHT + 62_000);

  const sorting = new SortingStore(db, sortingSchema.parse({}));
  sorting.saveDay(
    '2026-06-01',
    [
      { scope: 'community', scopeId: 'CM-1', districtId: 'D-1', kg: { kitchen: 1234.5678, recyclable: 0.1 + 0.2, hazardous: 0, other: 3000 } },
      { scope: 'district', scopeId: 'D-1', districtId: 'D-1', kg: { kitchen: 1234.5678, recyclable: 0.30000000000000004, hazardous: 1e-9, other: 3000 } },
      { scope: 'city', scopeId: 'city', districtId: null, kg: { kitchen: 1234.5678, recyclable: 0.3, hazardous: 0, other: 3000 } },
    ],
    17,
    NIGHT,
  );
  sorting.oweCount('2026-05-31', NIGHT);
  db.statement('INSERT INTO spillage (truck_id, kind, ts, cell, lon, lat, metres, jurisdiction_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run('T9', 'load_loss', NIGHT, '8a309a64b61ffff', 120.581, 31.3, 3, 'WEST');
  db.statement('INSERT INTO spillage (truck_id, kind, ts, cell, lon, lat, metres, jurisdiction_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run('T9', 'uncovered', NIGHT + 1, '8a309a64b61ffff', 120.582, 31.3, 12.25, null);
  db.statement('INSERT INTO job_runs (job, slot, runner, started_at, finished_at) VALUES (?, ?, ?, ?, ?)').run('sorting', '2026-06-01T05:05', 'host-1:4242', NIGHT, NIGHT + 1500);
  db.statement('INSERT INTO api_rate_limits (client, window_start, hits) VALUES (?, ?, ?)').run('token:abc', NIGHT, 42);
  db.statement('INSERT INTO ingest_workers (worker_id, heartbeat_at, started_at) VALUES (?, ?, ?)').run('host-1:/var/lib/waste/worker-1', NIGHT + 1000, NIGHT);
  db.statement('INSERT INTO device_partitions (device_id, partition, seen_at) VALUES (?, ?, ?)').run('GPS-1', 17, NIGHT + 2000);
  return { db, alertId: raised.alert.id, tokens: { admin, enforcement, revoked: old.token } };
}

describe('REGISTRY_TABLES', () => {
  it('names every table the migrations create, each after the tables it refers to', () => {
    const created = new Map<string, string[]>();
    for (const migration of MIGRATIONS) {
      for (const match of migration.sqlite.matchAll(/CREATE TABLE (?:IF NOT EXISTS )?(\w+) \(([\s\S]*?)\);/g)) {
        created.set(match[1]!, [...match[2]!.matchAll(/REFERENCES (\w+)\(/g)].map((r) => r[1]!));
      }
    }
    expect([...REGISTRY_TABLES].sort()).toEqual([...created.keys()].sort());
    for (const [table, parents] of created) {
      for (const parent of parents) expect(REGISTRY_TABLES.indexOf(parent as never), `${parent} before ${table}`).toBeLessThanOrEqual(REGISTRY_TABLES.indexOf(table as never));
    }
  });
});

describe('copying a registry from SQLite to PostgreSQL', () => {
  it('copies every table, and the stores read back the same on both sides', async () => {
    const { db: source, alertId, tokens } = await buildRegistry(await sqliteFile());
    const target = await postgres();
    const seen = new Map<string, number>();
    const report = copyRegistry(source, target, { progress: (table, rows) => seen.set(table, rows) });
    console.info(`copied ${report.rows} rows in ${report.ms.toFixed(0)} ms (${Math.round(report.rows / (report.ms / 1000))} rows/s)`);

    expect(report).toMatchObject({ from: { dialect: 'sqlite' }, to: { dialect: 'postgres', where: target.where }, schemaVersion: 10, emptied: false });
    expect(report.tables.map((t) => t.table)).toEqual([...REGISTRY_TABLES]);
    expect(Object.fromEntries(seen)).toEqual(Object.fromEntries(report.tables.map((t) => [t.table, t.rows])));
    // Every table has something to copy: none is left out unnoticed.
    expect(tableCounts(source).filter((t) => t.rows === 0)).toEqual([]);
    const comparison = compareRegistries(source, target);
    expect(comparison.tables.filter((t) => !t.equal)).toEqual([]);
    expect(comparison).toMatchObject({ equal: true, schemaVersion: { a: 10, b: 10 } });
    expect(comparison.tables.map((t) => t.a.rows)).toEqual(report.tables.map((t) => t.rows));

    // The stores, on both backends.
    const both = <T>(read: (db: RegistryDb) => T): [T, T] => [read(source), read(target)];
    const [devicesBefore, devicesAfter] = both((db) => new DeviceStore(db).list({ limit: 1000 }));
    expect(devicesAfter).toEqual(devicesBefore);
    expect(devicesAfter.items.find((d) => d.id === 'GPS-808')).toMatchObject({ jt808_phone: '13800138000', jt808_model: 'ZT-80', jt808_registered: true });
    expect(devicesAfter.items.find((d) => d.id === 'LORA-BIN-1')).toMatchObject({ lorawan_dev_eui: '24E124136B502217', lorawan_sensor: 'milesight-em310-udl' });
    expect(new DeviceStore(target).terminal('13800138000')).toEqual(new DeviceStore(source).terminal('13800138000'));
    expect(new DeviceStore(target).service('waste-ops')).toEqual(new DeviceStore(source).service('waste-ops'));

    const [alertBefore, alertAfter] = both((db) => new AlertStore(db, alertOptions).get(alertId));
    expect(alertAfter).toEqual(alertBefore);
    expect(alertAfter).toMatchObject({ status: 'resolved', subject: { plate: '苏E12345' }, jurisdictions: ['EAST', 'WEST'], resolved: { note: '苏E12345 已罚款 ✓' } });
    const [historyBefore, historyAfter] = both((db) => new AlertStore(db, alertOptions).history(alertId));
    expect(historyAfter).toEqual(historyBefore);
    expect(historyAfter.map((h) => h.change)).toEqual(['raised', 'updated', 'acknowledged', 'resolved']);

    const identity = new TokenStore(source).authenticate(tokens.enforcement);
    expect(identity).toMatchObject({ role: 'enforcement', jurisdictions: ['EAST', 'WEST'] });
    expect(new TokenStore(target).authenticate(tokens.enforcement)).toEqual(identity);
    expect(new TokenStore(target).authenticate(tokens.admin)).toMatchObject({ role: 'admin', name: '指挥中心' });
    expect(new TokenStore(target).authenticate(tokens.revoked)).toBeNull();
    expect(new TokenStore(target).list()).toEqual(new TokenStore(source).list());

    const entities = (db: RegistryDb) => new EntityStore(db);
    for (const [def, id] of [[ENTITIES.trucks, 'T9'], [ENTITIES.permits, 'P1'], [ENTITIES.communities, 'CM-1'], [ENTITIES.jurisdictions, 'WEST'], [ENTITIES.bins, 'BIN-1']] as const) {
      expect(entities(target).get(def, id), `${def.name} ${id}`).toEqual(entities(source).get(def, id));
    }
    expect(entities(target).get(ENTITIES.jurisdictions, 'WEST')).toMatchObject({ name: '西区', neighbour_ids: ['EAST'], geometry: { type: 'Polygon' } });
    expect(new WebhookStore(target).list()).toEqual(new WebhookStore(source).list());
    const sorting = (db: RegistryDb) => new SortingStore(db, sortingSchema.parse({}));
    expect(sorting(target).figures('2026-06-01', 'day')).toEqual(sorting(source).figures('2026-06-01', 'day'));
    expect(sorting(target).owedDays()).toEqual(sorting(source).owedDays());
    const revision = (db: RegistryDb) => db.statement('SELECT n FROM registry_revision WHERE id = 1').get();
    expect(revision(target)).toEqual(revision(source));
  }, 60_000);

  it('gives a webhook outbox entry written after the copy a fresh seq, past every seq the source handed out', async () => {
    const { db: source } = await buildRegistry(await sqliteFile());
    const target = await postgres();
    copyRegistry(source, target);
    const highWater = (source.statement("SELECT seq FROM sqlite_sequence WHERE name = 'webhook_outbox'").get() as { seq: number }).seq;
    const maxCopied = (target.statement('SELECT MAX(seq) AS seq FROM webhook_outbox').get() as { seq: number }).seq;
    expect(highWater).toBeGreaterThan(maxCopied);
    const webhook = (target.statement('SELECT id FROM webhooks').get() as { id: string }).id;
    const insert = target.statement("INSERT INTO webhook_outbox (webhook_id, idempotency_key, alert_id, body, created_at, next_attempt_at) VALUES (?, ?, 'al_x', '{}', 1, 1)");
    insert.run(webhook, 'after-copy-1');
    insert.run(webhook, 'after-copy-2');
    const fresh = target.statement("SELECT seq FROM webhook_outbox WHERE idempotency_key LIKE 'after-copy-%' ORDER BY seq").all() as { seq: number }[];
    expect(fresh).toEqual([{ seq: highWater + 1 }, { seq: highWater + 2 }]);
  }, 60_000);

  it('reads in pages: composite keys across page boundaries, many rows', async () => {
    const source = open(await sqliteFile());
    const rows = 5_000;
    source.transaction(() => {
      source.statement("INSERT INTO jurisdictions (id, name, enforcement_unit, geometry, created_at, updated_at) VALUES ('J1', '一', '中队', '{}', 'x', 'x'), ('J2', '二', '中队', '{}', 'x', 'x')").run();
      const alert = source.statement(
        `INSERT INTO alerts (id, type, severity, status, subject_kind, subject_id, started_at, last_evidence_at, raised_at, updated_at, version, evidence, lon, lat)
         VALUES (?, 'speeding', 'warning', 'open', 'truck', ?, ?, ?, ?, ?, 1, ?, ?, 31.3)`,
      );
      const scope = source.statement('INSERT INTO alert_jurisdictions (alert_id, jurisdiction_id) VALUES (?, ?)');
      const history = source.statement("INSERT INTO alert_history (alert_id, version, at, change, status) VALUES (?, ?, ?, 'raised', 'open')");
      for (let i = 0; i < rows; i++) {
        const id = `al_${String(i).padStart(6, '0')}`;
        alert.run(id, `T${i % 97}`, NIGHT + i, NIGHT + i, NIGHT + i, NIGHT + i, JSON.stringify([fix(NIGHT + i), fix(NIGHT + i + 10)]), 120.5 + i / 1e5);
        scope.run(id, 'J1');
        scope.run(id, 'J2');
        history.run(id, 1, NIGHT + i);
        history.run(id, 2, NIGHT + i + 1);
      }
    });
    const target = await postgres();
    const report = copyRegistry(source, target, { pageRows: 777 });
    console.info(`copied ${report.rows} rows in pages of 777 in ${report.ms.toFixed(0)} ms (${Math.round(report.rows / (report.ms / 1000))} rows/s)`);
    expect(report.tables.find((t) => t.table === 'alert_history')?.rows).toBe(2 * rows);
    expect(compareRegistries(source, target, { pageRows: 333 })).toMatchObject({ equal: true });
    expect(compareRegistries(source, target)).toMatchObject({ equal: true });
  }, 60_000);

  it('tells a table that differs after the copy', async () => {
    const { db: source } = await buildRegistry(await sqliteFile());
    const target = await postgres();
    copyRegistry(source, target);
    target.statement("UPDATE sorting_tonnage SET kitchen_kg = kitchen_kg + 0.001 WHERE scope = 'city'").run();
    target.statement("DELETE FROM api_rate_limits").run();
    const comparison = compareRegistries(source, target);
    expect(comparison.equal).toBe(false);
    expect(comparison.tables.filter((t) => !t.equal).map((t) => [t.table, t.a.rows, t.b.rows])).toEqual([
      ['sorting_tonnage', 3, 3],
      ['api_rate_limits', 1, 0],
    ]);
  }, 60_000);

  it('refuses a target that holds rows, and with force replaces them in one transaction', async () => {
    const { db: source } = await buildRegistry(await sqliteFile());
    const target = await postgres();
    copyRegistry(source, target);
    target.statement("INSERT INTO companies (id, name, created_at, updated_at) VALUES ('ONLY-ON-TARGET', '多余', 'x', 'x')").run();
    await new DeviceStore(source).add('NEW-AFTER-FIRST-COPY', 'bins');

    expect(() => copyRegistry(source, target)).toThrow(CopyRefused);
    expect(() => copyRegistry(source, target)).toThrow(/holds rows already \(in companies, districts, communities, jurisdictions, jurisdiction_neighbours and 23 more tables\); .* give --force/);
    expect(new DeviceStore(target).device('NEW-AFTER-FIRST-COPY')).toBeUndefined();

    const report = copyRegistry(source, target, { force: true });
    expect(report.emptied).toBe(true);
    expect(compareRegistries(source, target).equal).toBe(true);
    expect(target.statement("SELECT 1 FROM companies WHERE id = 'ONLY-ON-TARGET'").get()).toBeUndefined();
    expect(new DeviceStore(target).device('NEW-AFTER-FIRST-COPY')).toMatchObject({ class: 'bins' });
  }, 60_000);

  it('writes nothing when a row cannot be copied', async () => {
    const { db: source } = await buildRegistry(await sqliteFile());
    // SQLite keeps 1.5 in an INTEGER column as a REAL; PostgreSQL's BIGINT will not take it.
    source.statement('UPDATE api_rate_limits SET hits = 1.5').run();
    const target = await postgres();
    expect(() => copyRegistry(source, target)).toThrow(/copying table api_rate_limits \(after 0 rows\): invalid input syntax for type bigint/);
    expect(tableCounts(target).filter((t) => t.rows > 0)).toEqual([{ table: 'registry_revision', rows: 1 }]);
    expect(target.statement('SELECT n FROM registry_revision').get()).toEqual({ n: 0 });
  }, 60_000);

  it('refuses databases at different schema versions, and a database onto itself', async () => {
    const file = await sqliteFile();
    const source = open(file);
    const older = open(await cluster.createDatabase(), { migrations: MIGRATIONS.filter((m) => m.version < 9) });
    expect(() => copyRegistry(source, older)).toThrow(/schema version 10, the target .* at 8; both must be at the same version/);
    expect(() => copyRegistry(source, open(`sqlite:${file}`))).toThrow(/the same database/);
    // One PostgreSQL database under two names of its host.
    const url = new URL(await cluster.createDatabase());
    const byName = new URL(url);
    byName.hostname = 'localhost';
    const [first, second] = [open(url.href), open(byName.href)];
    expect(first.where).not.toBe(second.where);
    expect(() => copyRegistry(first, second, { force: true })).toThrow(/the same database/);
    // Two databases of one server are not.
    const another = open(await cluster.createDatabase());
    expect(() => copyRegistry(first, another)).not.toThrow();
  }, 60_000);

  it('copies back from PostgreSQL to SQLite alike', async () => {
    const { db: original, tokens } = await buildRegistry(await sqliteFile());
    const middle = await postgres();
    copyRegistry(original, middle);
    const back = open(await sqliteFile());
    copyRegistry(middle, back);
    expect(compareRegistries(middle, back).equal).toBe(true);
    expect(compareRegistries(original, back).equal).toBe(true);
    expect(new DeviceStore(back).list({ limit: 1000 })).toEqual(new DeviceStore(original).list({ limit: 1000 }));
    expect(new TokenStore(back).authenticate(tokens.admin)).toEqual(new TokenStore(original).authenticate(tokens.admin));
    // PostgreSQL's sequence stood past the pruned entry; SQLite's does now too.
    const sequence = (db: RegistryDb) => db.statement("SELECT seq FROM sqlite_sequence WHERE name = 'webhook_outbox'").get();
    expect(sequence(back)).toEqual(sequence(original));
  }, 60_000);
});
