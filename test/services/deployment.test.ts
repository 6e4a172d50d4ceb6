// Several processes of the service on one PostgreSQL (docs/deployment.md), each a real child
// process started as `npm start -- --role …` starts it, with its own data directory and ports.
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryDb } from '../../services/registry/db.ts';
import { DeviceStore } from '../../services/registry/devices.ts';
import { ENTITIES } from '../../services/registry/entities.ts';
import { EntityStore } from '../../services/registry/entity-store.ts';
import { TokenStore } from '../../services/registry/tokens.ts';
import { JobRuns } from '../../services/scheduler/job-runs.ts';
import { startTestInfluxd, type TestInfluxd } from '../helpers/influxd.ts';
import { freePort } from '../helpers/ports.ts';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { spawnService, type ServiceProcess } from '../helpers/process.ts';
import { connectDevice, eventually, sleep, tempDir } from '../helpers/service.ts';

let influxd: TestInfluxd;
let postgres: TestPostgres;
const running: ServiceProcess[] = [];

beforeAll(async () => {
  [influxd, postgres] = await Promise.all([startTestInfluxd(), startTestPostgres()]);
});

afterAll(async () => {
  for (const service of running) if (service.child.exitCode === null) service.child.kill('SIGKILL');
  await Promise.all(running.map((s) => s.exited));
  await Promise.all([influxd?.cleanup(), postgres?.cleanup()]);
});

interface Started {
  process: ServiceProcess;
  mqttPort: number;
  apiPort: number;
}

async function start(databaseUrl: string, role: string, extra: Record<string, string> = {}): Promise<Started> {
  const mqttPort = await freePort();
  const apiPort = await freePort();
  const process = await spawnService({
    WASTE_DATA_DIR: await tempDir('waste-deployment-'),
    WASTE_DATABASE_URL: databaseUrl,
    WASTE_ROLE: role,
    WASTE_BROKER_HOST: '127.0.0.1',
    WASTE_BROKER_PORT: String(mqttPort),
    WASTE_BROKER_WS_PORT: '0',
    WASTE_API_HOST: '127.0.0.1',
    WASTE_API_PORT: String(apiPort),
    WASTE_JT808_PORT: '0',
    WASTE_INFLUX_URL: influxd.url,
    WASTE_INFLUX_START_PRIVATE: 'false',
    WASTE_LOG_LEVEL: 'info',
    ...extra,
  });
  running.push(process);
  return { process, mqttPort, apiPort };
}

function adminToken(databaseUrl: string): string {
  const db = new RegistryDb(databaseUrl).open();
  try {
    return new TokenStore(db).create({ name: 'ops', role: 'admin' }).token;
  } finally {
    db.close();
  }
}

const closed = (client: MqttClient) => new Promise<void>((resolve) => client.once('close', () => resolve()));

describe('the service as several processes on one PostgreSQL', () => {
  it('lets a device created through one process connect to the broker of another at once, and cuts it off within a second of being disabled there', async () => {
    const url = await postgres.createDatabase();
    const token = adminToken(url);
    const [a, b] = await Promise.all([start(url, 'api,ingest'), start(url, 'ingest,scheduler')]);
    expect(a.process.output()).toContain('running the HTTP API');
    expect(b.process.output()).toContain('expecting elsewhere, on the same database: api');

    const api = (method: string, path: string, body?: unknown) =>
      fetch(`http://127.0.0.1:${a.apiPort}/api/v1${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const created = await api('POST', '/devices', { id: 'BIN-PG-1', class: 'bins' });
    expect(created.status).toBe(201);
    const { secret } = (await created.json()) as { secret: string };

    const device = await connectDevice(`mqtt://127.0.0.1:${b.mqttPort}`, 'BIN-PG-1', secret, { reconnectPeriod: 0 });
    expect(device.connected).toBe(true);
    const cutOff = closed(device);
    const disabledAt = Date.now();
    expect((await api('PATCH', '/devices/BIN-PG-1', { enabled: false })).status).toBe(200);
    await cutOff;
    expect(Date.now() - disabledAt).toBeLessThan(1000);
    // And it cannot come back.
    await expect(connectDevice(`mqtt://127.0.0.1:${b.mqttPort}`, 'BIN-PG-1', secret, { reconnectPeriod: 0 })).rejects.toThrow();
    for (const s of [a, b]) s.process.child.kill('SIGTERM');
    expect(await Promise.all([a.process.exited, b.process.exited])).toEqual([0, 0]);
  });

  it('hands the scheduled work to the standby within seconds of the active scheduler being killed, and the hourly job is still run once', async () => {
    const url = await postgres.createDatabase();
    const env = { WASTE_SCHEDULER_LEASE_CHECK_MS: '200' };
    const first = await start(url, 'scheduler', env);
    await eventually(async () => first.process.output(), (out) => out.includes('this process is the active scheduler'), 10_000);
    const second = await start(url, 'scheduler', env);
    await sleep(600);
    expect(second.process.output()).not.toContain('this process is the active scheduler');

    const killedAt = Date.now();
    first.process.child.kill('SIGKILL');
    await first.process.exited;
    await eventually(async () => second.process.output(), (out) => out.includes('this process is the active scheduler'), 10_000);
    expect(Date.now() - killedAt).toBeLessThan(3000);
    // The new scheduler's start-up run finds this hour's run made already.
    await eventually(async () => second.process.output(), (out) => out.includes('separation-rate run of this hour made already'), 10_000);

    const db = new RegistryDb(url).open();
    const runs = new JobRuns(db).runs('separation-rate');
    db.close();
    expect(runs.length).toBeGreaterThanOrEqual(1);
    expect(new Set(runs.map((r) => r.slot)).size).toBe(runs.length);
    expect(runs[0]!.runner).toBe(`${first.process.child.pid}@${(await import('node:os')).hostname()}`);
    second.process.child.kill('SIGTERM');
    expect(await second.process.exited).toBe(0);
  });

  it('raises one alert when two processes find the same overflow at the same moment, and the API of either streams it', async () => {
    const url = await postgres.createDatabase();
    const token = adminToken(url);
    const db = new RegistryDb(url).open();
    const secret = await new DeviceStore(db).add('BIN-TWICE', 'bins');
    new EntityStore(db).create(ENTITIES.bins, 'bin-twice', { category: 'kitchen', location: { type: 'Point', coordinates: [120.6, 31.3] }, depth_mm: 1000, device_id: 'BIN-TWICE' });
    db.close();
    const [a, b, c] = await Promise.all([start(url, 'api'), start(url, 'ingest'), start(url, 'ingest')]);
    // The API process runs no rules: what it streams comes from the ingest processes.
    const stream = await fetch(`http://127.0.0.1:${a.apiPort}/api/v1/alerts/stream`, { headers: { authorization: `Bearer ${token}` } });
    expect(stream.status).toBe(200);
    let streamed = '';
    void (async () => {
      for await (const chunk of stream.body!) streamed += Buffer.from(chunk).toString();
    })().catch(() => {});
    const devices = await Promise.all([b, c].map((p) => connectDevice(`mqtt://127.0.0.1:${p.mqttPort}`, 'BIN-TWICE', secret, { clientId: `bin-twice-${p.mqttPort}` })));
    const base = Date.now() - 60_000;
    for (const [k, fill] of [20, 95, 96].entries()) {
      const payload = JSON.stringify({ ts: new Date(base + k * 10_000).toISOString(), fill_pct: fill });
      await Promise.all(devices.map((d) => d.publishAsync('waste/bins/BIN-TWICE/telemetry', payload, { qos: 1 })));
    }
    const check = new RegistryDb(url).open();
    const alerts = await eventually(async () => check.statement("SELECT id FROM alerts WHERE type = 'overflow' AND subject_id = 'bin-twice'").all(), (rows) => rows.length > 0, 15_000);
    await sleep(1500);
    expect(check.statement("SELECT id FROM alerts WHERE type = 'overflow' AND subject_id = 'bin-twice'").all()).toEqual(alerts);
    expect(alerts).toHaveLength(1);
    check.close();
    await eventually(async () => streamed, (text) => text.includes('"change":"raised"'), 10_000);
    expect(streamed.split('"change":"raised"').length - 1).toBe(1);
    await Promise.all(devices.map((d) => d.endAsync()));
    await stream.body!.cancel().catch(() => {});
    for (const p of [a, b, c]) p.process.child.kill('SIGTERM');
    await Promise.all([a, b, c].map((p) => p.process.exited));
  });

  it('does not take a bin that reports through another ingest process for one gone silent, nor the time it did for a gap when it moves', async () => {
    const url = await postgres.createDatabase();
    const db = new RegistryDb(url).open();
    const store = new DeviceStore(db);
    const secrets = { 'BIN-AT-B': await store.add('BIN-AT-B', 'bins'), 'BIN-AT-A': await store.add('BIN-AT-A', 'bins') };
    const entities = new EntityStore(db);
    for (const [id, lon] of [['BIN-AT-B', 120.6], ['BIN-AT-A', 120.61]] as const) {
      entities.create(ENTITIES.bins, id.toLowerCase(), { category: 'other', location: { type: 'Point', coordinates: [lon, 31.3] }, depth_mm: 1000, device_id: id });
    }
    db.close();
    // Bins report every 2 s: silent after 6 s. Each process asks InfluxDB every second which
    // devices report elsewhere (rules.elsewhereCheckS; 10 s against bins reporting every few minutes).
    const env = { WASTE_RULES_BIN_REPORT_INTERVAL_S: '2', WASTE_RULES_ELSEWHERE_CHECK_S: '1' };
    const b = await start(url, 'ingest,scheduler', env);
    const atB = await connectDevice(`mqtt://127.0.0.1:${b.mqttPort}`, 'BIN-AT-B', secrets['BIN-AT-B']);
    const report = (device: MqttClient, id: string) => device.publishAsync(`waste/bins/${id}/telemetry`, JSON.stringify({ ts: new Date().toISOString(), fill_pct: 30 }), { qos: 1 });
    await report(atB, 'BIN-AT-B');
    await sleep(2000);
    await report(atB, 'BIN-AT-B');
    await eventually(() => influxd.count('bin_level', 'fill_pct', 'BIN-AT-B'), (n) => n === 2, 10_000);
    // A starts now, replays BIN-AT-B's readings, and from then on hears only BIN-AT-A.
    const a = await start(url, 'api,ingest', env);
    const atA = await connectDevice(`mqtt://127.0.0.1:${a.mqttPort}`, 'BIN-AT-A', secrets['BIN-AT-A']);
    for (let i = 0; i < 6; i++) {
      await Promise.all([report(atB, 'BIN-AT-B'), report(atA, 'BIN-AT-A')]);
      await sleep(2000);
    }
    // Now the bin moves to A: the time it reported through B is no gap there either.
    await atB.endAsync();
    const moved = await connectDevice(`mqtt://127.0.0.1:${a.mqttPort}`, 'BIN-AT-B', secrets['BIN-AT-B']);
    await report(moved, 'BIN-AT-B');
    await sleep(2000);
    const check = new RegistryDb(url).open();
    expect(check.statement("SELECT subject_id FROM alerts WHERE type = 'device_offline'").all()).toEqual([]);
    check.close();
    await Promise.all([atA.endAsync(), moved.endAsync()]);
    for (const p of [a, b]) p.process.child.kill('SIGTERM');
    await Promise.all([a, b].map((p) => p.process.exited));
  });

  it('keeps taking readings while PostgreSQL is down, answers 503 meanwhile, and records the alert found then once it is back', async () => {
    // A cluster of its own: this test stops it.
    const own = await startTestPostgres();
    try {
      const url = await own.createDatabase();
      const token = adminToken(url);
      const db = new RegistryDb(url).open();
      const secret = await new DeviceStore(db).add('BIN-OUT-1', 'bins');
      new EntityStore(db).create(ENTITIES.bins, 'bin-out-1', { category: 'kitchen', location: { type: 'Point', coordinates: [120.6, 31.3] }, depth_mm: 1000, device_id: 'BIN-OUT-1' });
      db.close();
      const service = await start(url, 'all');
      const device = await connectDevice(`mqtt://127.0.0.1:${service.mqttPort}`, 'BIN-OUT-1', secret);
      const publish = (fill: number, at: number) => device.publishAsync('waste/bins/BIN-OUT-1/telemetry', JSON.stringify({ ts: new Date(at).toISOString(), fill_pct: fill }), { qos: 1 });
      const start0 = Date.now() - 60_000;
      await publish(20, start0);

      await own.kill();
      // Acknowledged (the spool has them) although the registry does not answer; the last two raise an overflow.
      for (let i = 1; i <= 3; i++) await publish(i === 1 ? 40 : 95, start0 + i * 10_000);
      const api = await fetch(`http://127.0.0.1:${service.apiPort}/api/v1/alerts`, { headers: { authorization: `Bearer ${token}` } });
      expect(api.status).toBe(503);
      expect(((await api.json()) as { error: { code: string } }).error.code).toBe('database_unavailable');
      await eventually(() => influxd.count('bin_level', 'fill_pct', 'BIN-OUT-1'), (n) => n === 4, 15_000);
      // A login the registry cannot check is refused, and the broker goes on.
      await expect(connectDevice(`mqtt://127.0.0.1:${service.mqttPort}`, 'BIN-OUT-1', secret, { reconnectPeriod: 0, clientId: 'second' })).rejects.toThrow();
      expect(service.process.child.exitCode).toBeNull();

      await own.restart();
      const after = new RegistryDb(url).open();
      const overflow = await eventually(
        async () => after.statement("SELECT id, status FROM alerts WHERE type = 'overflow' AND subject_id = 'bin-out-1'").all(),
        (rows) => rows.length > 0,
        15_000,
      );
      expect(overflow).toHaveLength(1);
      after.close();
      // Held while it was down (the log says so when they are recorded).
      expect(await eventually(async () => service.process.output(), (out) => out.includes('the findings that waited are recorded'), 10_000)).toContain('the findings that waited are recorded');
      await device.endAsync();
      service.process.child.kill('SIGTERM');
      expect(await service.process.exited).toBe(0);
    } finally {
      await own.cleanup();
    }
  });

  it('refuses a role apart without PostgreSQL, saying what to set', async () => {
    await expect(start('', 'api')).rejects.toThrow(/roles apart .* set database\.url \(WASTE_DATABASE_URL\)/);
  });
});
