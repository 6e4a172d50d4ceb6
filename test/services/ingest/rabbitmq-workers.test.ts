// Three ingest workers, each a process of its own, sharing the partitions of a real 3-node
// RabbitMQ cluster through PostgreSQL; an API process logs the devices in. A worker killed with
// SIGKILL in the middle of a truck's route deviation: its partitions move to the two left, the
// truck's state is rebuilt from InfluxDB there, and the deviation stays one alert, judged first
// by the killed worker and then by another (the alert's history names who judged). Weighing
// tickets from six weighbridges, whose partitions are spread over the workers, are all judged by
// the worker judging their truck's fixes.
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../../../services/contract/topics.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { ENTITIES } from '../../../services/registry/entities.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';
import { freePort } from '../../helpers/ports.ts';
import { startTestPostgres, type TestPostgres } from '../../helpers/postgres.ts';
import { spawnService, type ServiceProcess } from '../../helpers/process.ts';
import { startTestRabbitCluster, type TestRabbitCluster } from '../../helpers/rabbitmq.ts';
import { DEVICES, deviationTrip, worldRegistry } from '../../helpers/rules-world.ts';
import { eventually, tempDir } from '../../helpers/service.ts';

// Enough that each of three workers gets some: with 12, one got none in about 1 run of 40.
const PARTITIONS = 24;
const FLEET = Array.from({ length: 6 }, (_, i) => `RW-T${i + 1}`);
/** Weighbridges at T1's construction site, each printing T1 one overloaded ticket: spread over the partitions, most reach another worker than T1's. */
const SCALES = Array.from({ length: 6 }, (_, i) => `RW-S${i + 1}`);

let influxd: TestInfluxd;
let cluster: TestRabbitCluster;
let postgres: TestPostgres;
let databaseUrl: string;
let api: ServiceProcess;
const workers: { process: ServiceProcess; dataDir: string; env: Record<string, string> }[] = [];
const secrets: Record<string, string> = {};
let registry: RegistryDb;

beforeAll(async () => {
  const apiPort = await freePort();
  [influxd, cluster, postgres] = await Promise.all([startTestInfluxd(), startTestRabbitCluster({ authHttp: `http://127.0.0.1:${apiPort}/broker/rabbitmq` }), startTestPostgres()]);
  databaseUrl = await postgres.createDatabase();
  // The rules' world (truck T1 on device GPS-1 holds a permit with a corridor), and the fleet.
  const world = await worldRegistry({}, databaseUrl);
  registry = new RegistryDb(databaseUrl);
  registry.open();
  const devices = new DeviceStore(registry);
  secrets[DEVICES.gps1] = await devices.rotate(DEVICES.gps1);
  for (const id of FLEET) secrets[id] = await devices.add(id, 'trucks');
  for (const [i, id] of SCALES.entries()) {
    secrets[id] = await devices.add(id, 'scales');
    world.entities.create(ENTITIES.weighbridges, `WB-W${i + 1}`, { site_id: 'SITE-A', device_id: id });
  }
  world.db.close();
  const common = {
    WASTE_DATABASE_URL: databaseUrl,
    WASTE_INFLUX_URL: influxd.url,
    WASTE_INFLUX_START_PRIVATE: 'false',
    WASTE_JT808_PORT: '0',
    WASTE_BROKER_WS_PORT: '0',
    WASTE_LOG_LEVEL: 'info',
    WASTE_RABBITMQ_PARTITIONS: String(PARTITIONS),
    WASTE_RABBITMQ_AMQP_URLS: JSON.stringify(cluster.nodes.map((n) => n.amqpUrl)),
  };
  // Started side by side: each waits for nothing of the others.
  const apiDir = await tempDir('waste-rw-api-');
  const started = Promise.all([0, 1, 2].map(async (i) => {
    const dataDir = await tempDir(`waste-rw-worker${i}-`);
    const env = { ...common, WASTE_ROLE: 'ingest', WASTE_DATA_DIR: dataDir, WASTE_API_PORT: '0' };
    return { dataDir, env, process: await spawnService(env) };
  }));
  api = await spawnService({ ...common, WASTE_ROLE: 'api,scheduler', WASTE_DATA_DIR: apiDir, WASTE_API_HOST: '127.0.0.1', WASTE_API_PORT: String(apiPort), WASTE_RABBITMQ_AUTH_BACKEND: 'true' });
  workers.push(...(await started));
}, 240_000);

afterAll(async () => {
  for (const { process } of [...workers, { process: api }]) process?.child.kill('SIGKILL');
  registry?.close();
  await cluster?.cleanup();
  await postgres?.cleanup();
  await influxd?.cleanup();
});

/** The partitions each worker last said it consumes. */
function consumed(worker: ServiceProcess): number {
  const said = [...worker.output().matchAll(/this worker now consumes (\d+) of \d+ partitions \((\d+) workers\)/g)].at(-1);
  return said ? Number(said[1]) : 0;
}

const workerIdOf = (dataDir: string) => `rules on ${os.hostname()}:${path.resolve(dataDir)}`;

describe('ingest workers sharing a RabbitMQ cluster', () => {
  it('spreads the partitions, loses nothing acknowledged when a worker is killed, and keeps a deviation in progress one alert across the handover', async () => {
    await eventually(async () => workers.map((w) => consumed(w.process)), (counts) => counts.every((n) => n > 0) && counts.reduce((a, b) => a + b, 0) === PARTITIONS, 20_000);

    // The fleet publishes all along, through all three nodes.
    const base = Date.now() - 3_000_000;
    let publishing = true;
    const sent = new Map<string, number>(FLEET.map((id) => [id, 0]));
    const fleet = FLEET.map(async (id, i) => {
      const device = await mqtt.connectAsync(cluster.nodes[i % 3]!.mqttUrl, { username: id, password: secrets[id], clientId: id, reconnectPeriod: 0 });
      for (let n = 0; publishing; n++) {
        await device.publishAsync(topics.data('trucks', id), JSON.stringify({ ts: base + n * 1000, lat: 31.2, lon: 120.5, speed_kmh: 0, heading: 0 }), { qos: 1 });
        sent.set(id, n + 1);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await device.endAsync();
    });

    // Truck T1 drives its permit's route with a detour, at event times ending now.
    const trip = deviationTrip(DEVICES.gps1, 0);
    const start = Date.now() - trip.length * 10_000;
    const truck = await mqtt.connectAsync(cluster.nodes[1]!.mqttUrl, { username: DEVICES.gps1, password: secrets[DEVICES.gps1], clientId: DEVICES.gps1, reconnectPeriod: 0 });
    const send = (i: number) => {
      const { kind: _k, deviceId: _d, ...fix } = trip[i]!;
      return truck.publishAsync(topics.data('trucks', DEVICES.gps1), JSON.stringify({ ...fix, ts: start + fix.ts }), { qos: 1 });
    };
    const deviation = () => registry.statement("SELECT id FROM alerts WHERE type = 'route_deviation' AND subject_id = 'T1'").all() as { id: string }[];
    let i = 0;
    for (; i < trip.length && deviation().length === 0; i++) {
      await send(i);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(deviation()).toHaveLength(1);
    const [{ id }] = deviation() as [{ id: string }];
    const judges = () => (registry.statement('SELECT DISTINCT "by" FROM alert_history WHERE alert_id = ?').all(id) as { by: string | null }[]).map((r) => r.by);
    const [judge] = judges();
    const victim = workers.findIndex((w) => workerIdOf(w.dataDir) === judge);
    expect(victim).toBeGreaterThanOrEqual(0);

    // Weighing tickets reach the workers of their weighbridges' partitions and are judged with
    // the truck they name, by the worker judging its fixes: every overload of T1 judged there.
    await Promise.all(SCALES.map(async (id, k) => {
      const scale = await mqtt.connectAsync(cluster.nodes[k % 3]!.mqttUrl, { username: id, password: secrets[id], clientId: id, reconnectPeriod: 0 });
      const ticket = { ticket_id: `OVER-${k}`, ts: Date.now() - (k + 1) * 1000, plate: '苏E·00001', gross_kg: 40_000, tare_kg: 14_000, net_kg: 26_000, category: 'construction', direction: 'out' };
      await scale.publishAsync(topics.data('scales', id), JSON.stringify(ticket), { qos: 1 });
      await scale.endAsync();
    }));
    const weighedBy = () => new Set((registry.statement("SELECT evidence FROM alerts WHERE type = 'overload' AND subject_id = 'T1'").all() as { evidence: string }[]).flatMap((a) => (JSON.parse(a.evidence) as { device_id: string }[]).map((e) => e.device_id)));
    expect([...await eventually(async () => weighedBy(), (scales) => SCALES.every((id) => scales.has(id)), 20_000)].sort()).toEqual(SCALES);
    const overloadJudges = registry.statement("SELECT DISTINCT h.\"by\" FROM alert_history h JOIN alerts a ON a.id = h.alert_id WHERE a.type = 'overload' AND a.subject_id = 'T1'").all() as { by: string | null }[];
    expect(overloadJudges.map((r) => r.by)).toEqual([judge]);

    // The worker judging T1 dies in the middle of the detour.
    workers[victim]!.process.child.kill('SIGKILL');
    const survivors = workers.filter((_, k) => k !== victim);
    await eventually(async () => survivors.map((w) => consumed(w.process)), (counts) => counts.reduce((a, b) => a + b, 0) === PARTITIONS, 20_000);
    for (; i < trip.length; i++) {
      await send(i);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await truck.endAsync();
    publishing = false;
    await Promise.all(fleet);

    // Its supervisor starts it again on its data directory: its spool holds what it had
    // acknowledged and not yet shipped when it died, and ships it now.
    workers[victim]!.process = await spawnService(workers[victim]!.env);
    // Every acknowledged fix is stored: the killed worker's unacknowledged ones went to another.
    for (const id of FLEET) expect(await eventually(() => influxd.count('truck_position', 'lat', id), (n) => n === sent.get(id), 60_000)).toBe(sent.get(id));
    expect(await eventually(() => influxd.count('truck_position', 'lat', DEVICES.gps1), (n) => n === trip.length, 60_000)).toBe(trip.length);
    // One deviation, judged before the kill by the victim and after it by a survivor.
    const after = await eventually(async () => judges(), (by) => by.length >= 2, 30_000);
    expect(deviation()).toHaveLength(1);
    expect(after).toContain(judge);
    expect(survivors.map((w) => workerIdOf(w.dataDir)).some((s) => after.includes(s))).toBe(true);
  });
});
