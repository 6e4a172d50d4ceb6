// A real 3-node RabbitMQ cluster (test/helpers/rabbitmq.ts) as the device broker of one service,
// which is both its HTTP authentication backend (api/routes/broker-auth.ts) and the ingest worker on
// its partitions (ingest/rabbitmq-partitions.ts): devices log in on any node with their registry
// secret, publish only as themselves and subscribe only to their downlink; their messages are
// spread over the partitions, and every acknowledged reading is stored once, also when a node dies.
// A JT/T 808 terminal reaching the service's gateway is relayed through the cluster as well.
// Then three worker processes on PostgreSQL share the same cluster (the last block). One file, so
// that the suite starts one cluster for all of it.
import os from 'node:os';
import path from 'node:path';
import amqp from 'amqplib';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../../services/contract/topics.ts';
import { RegistryDb } from '../../services/registry/db.ts';
import { DeviceStore } from '../../services/registry/devices.ts';
import { ENTITIES } from '../../services/registry/entities.ts';
import { PARTITION_EXCHANGE, partitionQueue } from '../../services/ingest/rabbitmq-partitions.ts';
import { startTestInfluxd, type TestInfluxd } from '../helpers/influxd.ts';
import { freePort } from '../helpers/ports.ts';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { spawnService, type ServiceProcess } from '../helpers/process.ts';
import { RABBIT_ADMIN, startTestRabbitCluster, type TestRabbitCluster } from '../helpers/rabbitmq.ts';
import { TestTerminal } from '../helpers/jt808.ts';
import { MESSAGE, RESULT } from '../../services/jt808/session.ts';
import { authenticationFrame, locationFrame } from '../../services/jt808/terminal.ts';
import { DEVICES, deviationTrip, worldRegistry } from '../helpers/rules-world.ts';
import { eventually, provision, startTestService, tempDir, testConfig, type TestService } from '../helpers/service.ts';

let influxd: TestInfluxd;
let cluster: TestRabbitCluster;
let svc: TestService;
/** The port the cluster asks to log devices in: the one-process service's, then the API process's. */
let apiPort: number;
let serviceStopped = false;
let secrets: Record<string, string>;
const received: string[] = [];
let amqpConnection: amqp.ChannelModel;
const FLEET = Array.from({ length: 6 }, (_, i) => `RQ-T${i + 1}`);
const PARTITIONS = 8;
const WORKER = { username: 'waste-worker', password: 'worker-secret' };

beforeAll(async () => {
  apiPort = await freePort();
  [influxd, cluster] = await Promise.all([startTestInfluxd(), startTestRabbitCluster({ authHttp: `http://127.0.0.1:${apiPort}/broker/rabbitmq` })]);
  // The worker runs on the account docs/scale-out.md gives workers, with exactly its rights.
  await cluster.ctl(0, 'add_user', WORKER.username, WORKER.password);
  await cluster.ctl(0, 'set_permissions', '-p', '/', WORKER.username, '^waste\\.partition', '^(waste\\.partition|amq\\.topic)', '^(waste\\.partition|amq\\.topic)');
  await cluster.ctl(0, 'set_topic_permissions', '-p', '/', WORKER.username, 'amq.topic', '^waste\\.', '^waste\\.');
  const config = await testConfig(influxd.url, {
    'api.port': apiPort,
    'api.host': '127.0.0.1',
    'rabbitmq.authBackend': true,
    'rabbitmq.managementUrl': cluster.nodes[1]!.managementUrl,
    'rabbitmq.managementUsername': RABBIT_ADMIN.username,
    'rabbitmq.managementPassword': RABBIT_ADMIN.password,
    'rabbitmq.amqpUrls': cluster.nodes.map((n) => `amqp://${WORKER.username}:${WORKER.password}@127.0.0.1:${n.amqpPort}`),
    'rabbitmq.partitions': PARTITIONS,
    'jt808.host': '127.0.0.1',
    'jt808.port': await freePort(),
  });
  secrets = await provision(config, [...['R-T1', 'R-T2', 'R-T3', 'R-OFF', ...FLEET].map((id) => [id, 'trucks'] as [string, 'trucks'])]);
  svc = await startTestService(config);
  svc.service.devices.setEnabled('R-OFF', false);
}, 180_000);

afterAll(async () => {
  if (!serviceStopped) await svc?.stop();
  await cluster?.cleanup();
  await influxd?.cleanup();
});

const connect = (node: number, username: string, password: string, clientId = username): Promise<MqttClient> =>
  mqtt.connectAsync(cluster.nodes[node]!.mqttUrl, { username, password, clientId, reconnectPeriod: 0, connectTimeout: 10_000 });

describe('RabbitMQ cluster logging devices in through the service', () => {
  beforeAll(async () => {
    // What devices publish, as seen on amq.topic.
    amqpConnection = await amqp.connect(cluster.nodes[0]!.amqpUrl);
    const channel = await amqpConnection.createChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(queue, 'amq.topic', 'waste.#');
    await channel.consume(queue, (m) => m && received.push(`${m.fields.routingKey} ${m.content.toString()}`), { noAck: true });
  });
  afterAll(async () => {
    await amqpConnection?.close();
  });

  it('lets a device log in on any node with its secret and publish as itself', async () => {
    for (const node of [0, 1, 2]) {
      const device = await connect(node, 'R-T1', secrets['R-T1']!);
      await device.publishAsync(topics.data('trucks', 'R-T1'), `{"via":${node}}`, { qos: 1 });
      await device.endAsync();
    }
    const mine = await eventually(async () => received.filter((r) => r.startsWith('waste.trucks.R-T1.position')), (r) => r.length === 3);
    expect(mine.sort()).toEqual([0, 1, 2].map((n) => `waste.trucks.R-T1.position {"via":${n}}`));
  });

  it('refuses a wrong secret, an unknown device and a disabled one', async () => {
    await expect(connect(1, 'R-T1', 'not-the-secret')).rejects.toThrow(/Not authorized|Bad username or password/i);
    await expect(connect(2, 'NOBODY', 'whatever')).rejects.toThrow(/Not authorized|Bad username or password/i);
    await expect(connect(0, 'R-OFF', secrets['R-OFF']!)).rejects.toThrow(/Not authorized|Bad username or password/i);
  });

  it("refuses a publish on another device's topic, and a subscription beyond the device's downlink", async () => {
    const device = await connect(1, 'R-T1', secrets['R-T1']!);
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()));
    // RabbitMQ closes the connection of a publish its authorisation refuses.
    device.publish(topics.data('trucks', 'R-T2'), '{"forged":true}', { qos: 1 });
    await closed;
    device.end(true);
    const subscriber = await connect(2, 'R-T1', secrets['R-T1']!);
    const granted = await subscriber.subscribeAsync('waste/trucks/R-T1/downlink/#', { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1]);
    // RabbitMQ 3.10 answers a refused subscription by closing the connection, not with SUBACK 0x80.
    await expect(subscriber.subscribeAsync('waste/trucks/R-T2/downlink/#', { qos: 1 })).rejects.toThrow(/Connection closed/);
    subscriber.end(true);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(received.filter((r) => r.includes('forged'))).toEqual([]);
  });

  it('does not take a device\'s own message for a ticket forwarded by a worker, whatever headers it carries', async () => {
    // A device may log in over AMQP 0-9-1 too, and set headers there: publishing as itself on
    // amq.topic, with the header workers mark forwarded tickets with, it is still just itself.
    // (R-T1: the test of max_message_size below finds nothing of R-T2 on amq.topic.)
    const forged = { ticket_id: 'FORGED-1', ts: Date.now(), plate: '苏E00001', gross_kg: 40_000, tare_kg: 14_000, net_kg: 26_000, category: 'construction', direction: 'out' };
    const before = svc.service.partitions!.stats.forwardedReceived;
    const device = await amqp.connect(`amqp://R-T1:${encodeURIComponent(secrets['R-T1']!)}@127.0.0.1:${cluster.nodes[2]!.amqpPort}`);
    const channel = await device.createConfirmChannel();
    await new Promise<void>((resolve, reject) => channel.publish('amq.topic', 'waste.trucks.R-T1.position', Buffer.from(JSON.stringify(forged)), { headers: { 'x-waste-forwarded-from': 'waste/scales/R-T1/tickets' } }, (error) => (error ? reject(error as Error) : resolve())));
    await device.close();
    // Judged as what its topic says: a truck's fix, which this is not.
    await eventually(async () => received.filter((r) => r.startsWith('waste.ingest.rejected ') && r.includes('R-T1') && r.includes('invalid_payload')), (r) => r.length > 0);
    expect(svc.service.partitions!.stats.forwardedReceived).toBe(before);
  });

  it('reports a refused message back on the cluster, published by the worker on its own account', async () => {
    const device = await connect(2, 'R-T3', secrets['R-T3']!);
    await device.publishAsync(topics.data('trucks', 'R-T3'), '{"lat": 31.3, "lon":', { qos: 1 });
    await device.endAsync();
    const reports = await eventually(async () => received.filter((r) => r.startsWith('waste.ingest.rejected ') && r.includes('R-T3')), (r) => r.length > 0);
    expect(JSON.parse(reports[0]!.slice('waste.ingest.rejected '.length))).toMatchObject({ device_id: 'R-T3', reason: 'invalid_json' });
  });

  it('relays a JT/T 808 terminal\'s fixes and status through the cluster, answering the terminal once RabbitMQ holds them', async () => {
    const phone = '13800138001';
    await svc.service.devices.add('R-JT1', 'trucks', { phone, authCode: 'code-1' });
    const terminal = await TestTerminal.connect(svc.ports.jt808Port!);
    try {
      terminal.send(authenticationFrame({ phone, serial: 1, edition: 2013 }, { code: 'code-1' }));
      expect(await terminal.response(1)).toMatchObject({ messageId: MESSAGE.authentication, result: RESULT.ok });
      const ts = Math.floor(Date.now() / 1000) * 1000 - 5000;
      terminal.send(locationFrame({ phone, serial: 2, edition: 2013 }, { ts, lat: 31.3, lon: 120.6, speedKmh: 36, heading: 90 }));
      expect(await terminal.response(2)).toMatchObject({ messageId: MESSAGE.location, result: RESULT.ok });
      // On amq.topic as if the terminal had published over MQTT, hence through the partitions.
      const relayed = await eventually(async () => received.filter((r) => r.startsWith('waste.trucks.R-JT1.')), (r) => r.length >= 2);
      expect(relayed.map((r) => r.split(' ')[0]).sort()).toEqual(['waste.trucks.R-JT1.position', 'waste.trucks.R-JT1.status']);
      expect(JSON.parse(relayed.find((r) => r.startsWith('waste.trucks.R-JT1.position'))!.split(' ').slice(1).join(' '))).toMatchObject([{ ts, lat: 31.3, lon: 120.6, speed_kmh: 36, heading: 90 }]);
      expect(await eventually(() => influxd.count('truck_position', 'lat', 'R-JT1'), (n) => n === 1)).toBe(1);
    } finally {
      terminal.close();
    }
  });

  it('never acknowledges nor routes a message over max_message_size (the documented 1 MiB)', async () => {
    const device = await connect(0, 'R-T2', secrets['R-T2']!);
    let acknowledged = false;
    device.publishAsync(topics.data('trucks', 'R-T2'), Buffer.alloc(2_000_000, 0x20), { qos: 1 }).then(() => (acknowledged = true), () => undefined);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    device.end(true);
    expect(acknowledged).toBe(false);
    expect(received.filter((r) => r.startsWith('waste.trucks.R-T2.'))).toEqual([]);
  });

  it('closes the connections of a device disabled in the registry, of one removed and of one given a new secret, and no others', async () => {
    const [t1, t2, t3] = await Promise.all([connect(0, 'R-T1', secrets['R-T1']!), connect(1, 'R-T2', secrets['R-T2']!), connect(2, 'R-T3', secrets['R-T3']!)]);
    const closed = new Set<string>();
    for (const [id, client] of [['R-T1', t1], ['R-T2', t2], ['R-T3', t3]] as const) client.on('close', () => closed.add(id));
    // The revocation has seen them connected (its sweep at start, or the next).
    await new Promise((resolve) => setTimeout(resolve, 500));
    svc.service.devices.setEnabled('R-T2', false);
    svc.service.devices.remove('R-T3');
    await eventually(async () => closed, (c) => c.has('R-T2') && c.has('R-T3'), 20_000);
    expect(closed.has('R-T1')).toBe(false);
    await expect(connect(1, 'R-T2', secrets['R-T2']!)).rejects.toThrow(/Not authorized|Bad username or password/i);
    const newSecret = await svc.service.devices.rotate('R-T1');
    await eventually(async () => closed, (c) => c.has('R-T1'), 20_000);
    const again = await connect(2, 'R-T1', newSecret);
    await again.endAsync();
  });

  it('answers only the addresses it is told to', async () => {
    const elsewhere = await startTestService(await testConfig(influxd.url, { 'api.port': await freePort(), 'api.host': '127.0.0.1', 'rabbitmq.authBackend': true, 'rabbitmq.authAllowFrom': ['192.0.2.0/24'] }));
    const response = await fetch(`http://127.0.0.1:${elsewhere.ports.apiPort}/broker/rabbitmq/user`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=R-T1&password=x' });
    await elsewhere.stop();
    expect([response.status, await response.text()]).toEqual([403, 'deny']);
  });

  it('refuses devices on a virtual host whose partitions no worker has declared, and lets them in where a worker has', async () => {
    await cluster.ctl(0, 'add_vhost', 'waste-empty');
    const login = async (vhost: string) => {
      const other = await startTestService(await testConfig(influxd.url, {
        'registry.file': svc.config.registry.file,
        'api.port': await freePort(),
        'api.host': '127.0.0.1',
        'rabbitmq.authBackend': true,
        'rabbitmq.vhost': vhost,
        'rabbitmq.managementUrl': cluster.nodes[2]!.managementUrl,
        'rabbitmq.managementUsername': RABBIT_ADMIN.username,
        'rabbitmq.managementPassword': RABBIT_ADMIN.password,
      }));
      const response = await fetch(`http://127.0.0.1:${other.ports.apiPort}/broker/rabbitmq/user`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: FLEET[0]!, password: secrets[FLEET[0]!]! }).toString() });
      await other.stop();
      return response.text();
    };
    expect(await login('waste-empty')).toBe('deny');
    // The service under test is the worker of vhost "/" and declared its partitions at start.
    expect(await login('/')).toBe('allow');
  });
});

const count = (deviceId: string) => influxd.count('truck_position', 'lat', deviceId);

describe('ingest from the partitions of a RabbitMQ cluster', () => {
  it('declares the partitions, and stores once every fix that devices publishing through different nodes were acknowledged', async () => {
    const connection = await amqp.connect(cluster.nodes[2]!.amqpUrl);
    const channel = await connection.createChannel();
    await channel.checkExchange(PARTITION_EXCHANGE);
    for (let p = 0; p < PARTITIONS; p++) expect((await channel.checkQueue(partitionQueue(p))).consumerCount).toBe(1);
    await connection.close();

    const acknowledgedBefore = svc.service.partitions!.stats.acknowledged;
    const base = Date.now() - 3_600_000;
    await Promise.all(
      FLEET.map(async (id, i) => {
        const device = await mqtt.connectAsync(cluster.nodes[i % 3]!.mqttUrl, { username: id, password: secrets[id], clientId: id, reconnectPeriod: 0 });
        for (let n = 0; n < 300; n += 100) {
          await Promise.all(Array.from({ length: 100 }, (_, k) => device.publishAsync(topics.data('trucks', id), JSON.stringify({ ts: base + (n + k) * 1000, lat: 31.3, lon: 120.6, speed_kmh: 30, heading: 90 }), { qos: 1 })));
        }
        await device.endAsync();
      }),
    );
    for (const id of FLEET) expect(await eventually(() => count(id), (n) => n === 300, 30_000)).toBe(300);
    const worker = svc.service.partitions!;
    await eventually(async () => worker.stats.acknowledged - acknowledgedBefore, (n) => n === FLEET.length * 300);
    // Acknowledged in groups: fewer basic.acks than deliveries.
    expect(worker.stats.acks).toBeLessThan(worker.stats.delivered);
  });

  it('loses nothing acknowledged when the node the worker and some devices are connected to is killed', async () => {
    const worker = svc.service.partitions!;
    const sessionsBefore = worker.stats.sessions;
    const base = Date.now() - 7_200_000;
    const acknowledged = new Map<string, Set<number>>(FLEET.map((id) => [id, new Set()]));
    let killed = false;
    const publishing = FLEET.map(async (id, i) => {
      let node = i % 3;
      let device = await connectSomewhere(id, node);
      for (let n = 0; n < 400; n++) {
        const ts = base + n * 1000;
        for (;;) {
          try {
            // mqtt.js leaves a publish pending for ever when the connection closes and it does not reconnect.
            await Promise.race([device.publishAsync(topics.data('trucks', id), JSON.stringify({ ts, lat: 31.3, lon: 120.6, speed_kmh: 30, heading: 90 }), { qos: 1 }), closed.get(device)!]);
            acknowledged.get(id)!.add(ts);
            break;
          } catch {
            // The node went: the device connects to the next one and sends what was not acknowledged again.
            device.end(true);
            node = (node + 1) % 3;
            device = await connectSomewhere(id, node);
          }
        }
        if (n === 150 && i === 0 && !killed) {
          killed = true;
          await cluster.kill(0);
        }
      }
      await device.endAsync();
    });
    await Promise.all(publishing);
    for (const id of FLEET) {
      const stored = await eventually(() => storedTimes(id, base), (times) => [...acknowledged.get(id)!].every((ts) => times.has(ts)), 60_000);
      expect(stored.size).toBe(400);
    }
    // The worker was on the killed node (the first of its URLs) and went on through another.
    expect(worker.stats.sessions).toBeGreaterThan(sessionsBefore);
    await cluster.start(0);
  });
});

/** Rejects when the client's connection closes. */
const closed = new WeakMap<mqtt.MqttClient, Promise<never>>();

async function connectSomewhere(id: string, first: number): Promise<mqtt.MqttClient> {
  for (let attempt = 0; ; attempt++) {
    const node = (first + attempt) % 3;
    try {
      const client = await mqtt.connectAsync(cluster.nodes[node]!.mqttUrl, { username: id, password: secrets[id], clientId: `${id}-kill`, reconnectPeriod: 0, connectTimeout: 5000 });
      const gone = new Promise<never>((_, reject) => client.once('close', () => reject(new Error('connection closed'))));
      gone.catch(() => undefined);
      closed.set(client, gone);
      return client;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

async function storedTimes(deviceId: string, from: number): Promise<Set<number>> {
  const series = await influxd.store().query('SELECT lat FROM truck_position WHERE device_id = $id', { id: deviceId }).catch(() => []);
  return new Set((series[0]?.values ?? []).map((row) => Number(row[0])).filter((ts) => ts >= from && ts < from + 400_000));
}

// Three ingest workers, each a process of its own, sharing the partitions of a real 3-node
// RabbitMQ cluster through PostgreSQL; an API process logs the devices in. A worker killed with
// SIGKILL in the middle of a truck's route deviation: its partitions move to the two left, the
// truck's state is rebuilt from InfluxDB there, and the deviation stays one alert, judged first
// by the killed worker and then by another (the alert's history names who judged). Weighing
// tickets from six weighbridges, whose partitions are spread over the workers, are all judged by
// the worker judging their truck's fixes.
describe('ingest workers sharing a RabbitMQ cluster', () => {
  // Enough that each of three workers gets some: with 12, one got none in about 1 run of 40.
  const SHARED_PARTITIONS = 24;
  const WORKER_FLEET = Array.from({ length: 6 }, (_, i) => `RW-T${i + 1}`);
  /** Weighbridges at T1's construction site, each printing T1 one overloaded ticket: spread over the partitions, most reach another worker than T1's. */
  const SCALES = Array.from({ length: 6 }, (_, i) => `RW-S${i + 1}`);

  let postgres: TestPostgres;
  let databaseUrl: string;
  let api: ServiceProcess;
  const workers: { process: ServiceProcess; dataDir: string; env: Record<string, string> }[] = [];
  const workerSecrets: Record<string, string> = {};
  let registry: RegistryDb;

  beforeAll(async () => {
    // The one-process service of the blocks above makes way: the cluster asks this block's API
    // process, on the same port, to log its devices in.
    await svc.stop();
    serviceStopped = true;
    postgres = await startTestPostgres();
    databaseUrl = await postgres.createDatabase();
    // The rules' world (truck T1 on device GPS-1 holds a permit with a corridor), and the fleet.
    const world = await worldRegistry({}, databaseUrl);
    registry = new RegistryDb(databaseUrl);
    registry.open();
    const devices = new DeviceStore(registry);
    workerSecrets[DEVICES.gps1] = await devices.rotate(DEVICES.gps1);
    for (const id of WORKER_FLEET) workerSecrets[id] = await devices.add(id, 'trucks');
    for (const [i, id] of SCALES.entries()) {
      workerSecrets[id] = await devices.add(id, 'scales');
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
      WASTE_RABBITMQ_PARTITIONS: String(SHARED_PARTITIONS),
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
    await postgres?.cleanup();
  });

  /** The partitions each worker last said it consumes. */
  function consumed(worker: ServiceProcess): number {
    const said = [...worker.output().matchAll(/this worker now consumes (\d+) of \d+ partitions \((\d+) workers\)/g)].at(-1);
    return said ? Number(said[1]) : 0;
  }

  const workerIdOf = (dataDir: string) => `rules on ${os.hostname()}:${path.resolve(dataDir)}`;

  it('spreads the partitions, loses nothing acknowledged when a worker is killed, and keeps a deviation in progress one alert across the handover', async () => {
    await eventually(async () => workers.map((w) => consumed(w.process)), (counts) => counts.every((n) => n > 0) && counts.reduce((a, b) => a + b, 0) === SHARED_PARTITIONS, 20_000);

    // The fleet publishes all along, through all three nodes.
    const base = Date.now() - 3_000_000;
    let publishing = true;
    const sent = new Map<string, number>(WORKER_FLEET.map((id) => [id, 0]));
    const fleet = WORKER_FLEET.map(async (id, i) => {
      const device = await mqtt.connectAsync(cluster.nodes[i % 3]!.mqttUrl, { username: id, password: workerSecrets[id], clientId: id, reconnectPeriod: 0 });
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
    const truck = await mqtt.connectAsync(cluster.nodes[1]!.mqttUrl, { username: DEVICES.gps1, password: workerSecrets[DEVICES.gps1], clientId: DEVICES.gps1, reconnectPeriod: 0 });
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
      const scale = await mqtt.connectAsync(cluster.nodes[k % 3]!.mqttUrl, { username: id, password: workerSecrets[id], clientId: id, reconnectPeriod: 0 });
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
    await eventually(async () => survivors.map((w) => consumed(w.process)), (counts) => counts.reduce((a, b) => a + b, 0) === SHARED_PARTITIONS, 20_000);
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
    for (const id of WORKER_FLEET) expect(await eventually(() => influxd.count('truck_position', 'lat', id), (n) => n === sent.get(id), 60_000)).toBe(sent.get(id));
    expect(await eventually(() => influxd.count('truck_position', 'lat', DEVICES.gps1), (n) => n === trip.length, 60_000)).toBe(trip.length);
    // One deviation, judged before the kill by the victim and after it by a survivor.
    const after = await eventually(async () => judges(), (by) => by.length >= 2, 30_000);
    expect(deviation()).toHaveLength(1);
    expect(after).toContain(judge);
    expect(survivors.map((w) => workerIdOf(w.dataDir)).some((s) => after.includes(s))).toBe(true);
    // The workers recorded the partition each truck came through (for the next to take it over
    // with its silent devices); weighbridges are judged with their trucks, and not recorded.
    const recorded = registry.statement('SELECT device_id, partition FROM device_partitions').all() as { device_id: string; partition: number }[];
    expect(recorded.map((r) => r.device_id).sort()).toEqual([DEVICES.gps1, ...WORKER_FLEET].sort());
    for (const { partition } of recorded) expect(partition >= 0 && partition < SHARED_PARTITIONS).toBe(true);
  });
});
