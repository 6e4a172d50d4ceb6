// The ingest worker on a real 3-node RabbitMQ cluster: devices log in through the service's HTTP
// authentication backend on any node, their messages are spread over the partitions by a
// consistent-hash exchange, and the worker stores every acknowledged reading once.
import amqp from 'amqplib';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../../../services/contract/topics.ts';
import { PARTITION_EXCHANGE, partitionQueue } from '../../../services/ingest/rabbitmq-partitions.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';
import { freePort } from '../../helpers/ports.ts';
import { startTestRabbitCluster, type TestRabbitCluster } from '../../helpers/rabbitmq.ts';
import { eventually, provision, startTestService, testConfig, type TestService } from '../../helpers/service.ts';

let influxd: TestInfluxd;
let cluster: TestRabbitCluster;
let svc: TestService;
let secrets: Record<string, string>;
const FLEET = Array.from({ length: 6 }, (_, i) => `RQ-T${i + 1}`);
const PARTITIONS = 8;

beforeAll(async () => {
  const apiPort = await freePort();
  [influxd, cluster] = await Promise.all([startTestInfluxd(), startTestRabbitCluster({ authHttp: `http://127.0.0.1:${apiPort}/broker/rabbitmq` })]);
  const config = await testConfig(influxd.url, {
    'api.port': apiPort,
    'api.host': '127.0.0.1',
    'rabbitmq.authBackend': true,
    'rabbitmq.amqpUrls': cluster.nodes.map((n) => n.amqpUrl),
    'rabbitmq.partitions': PARTITIONS,
  });
  secrets = await provision(config, FLEET.map((id) => [id, 'trucks'] as [string, 'trucks']));
  svc = await startTestService(config);
}, 180_000);

afterAll(async () => {
  await svc?.stop();
  await cluster?.cleanup();
  await influxd?.cleanup();
});

const count = (deviceId: string) => influxd.count('truck_position', 'lat', deviceId);

describe('ingest from the partitions of a RabbitMQ cluster', () => {
  it('declares the partitions, and stores once every fix that devices publishing through different nodes were acknowledged', async () => {
    const connection = await amqp.connect(cluster.nodes[2]!.amqpUrl);
    const channel = await connection.createChannel();
    await channel.checkExchange(PARTITION_EXCHANGE);
    for (let p = 0; p < PARTITIONS; p++) expect((await channel.checkQueue(partitionQueue(p))).consumerCount).toBe(1);
    await connection.close();

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
    await eventually(async () => worker.stats.acknowledged, (n) => n === FLEET.length * 300);
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
