// RabbitMQ's HTTP authentication backend served by the service, asked by a real 3-node RabbitMQ
// cluster (test/helpers/rabbitmq.ts) for every device login and topic: devices log in through any
// node with their registry secret, publish only as themselves and subscribe only to their downlink.
import amqp from 'amqplib';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../../../../services/contract/topics.ts';
import { startTestInfluxd, type TestInfluxd } from '../../../helpers/influxd.ts';
import { freePort } from '../../../helpers/ports.ts';
import { RABBIT_ADMIN, startTestRabbitCluster, type TestRabbitCluster } from '../../../helpers/rabbitmq.ts';
import { eventually, provision, startTestService, testConfig, type TestService } from '../../../helpers/service.ts';

let influxd: TestInfluxd;
let cluster: TestRabbitCluster;
let svc: TestService;
let secrets: Record<string, string>;
let apiPort: number;
const received: string[] = [];
let amqpConnection: amqp.ChannelModel;

beforeAll(async () => {
  apiPort = await freePort();
  [influxd, cluster] = await Promise.all([startTestInfluxd(), startTestRabbitCluster({ authHttp: `http://127.0.0.1:${apiPort}/broker/rabbitmq` })]);
  const config = await testConfig(influxd.url, {
    'api.port': apiPort,
    'api.host': '127.0.0.1',
    'rabbitmq.authBackend': true,
    'rabbitmq.managementUrl': cluster.nodes[1]!.managementUrl,
    'rabbitmq.managementUsername': RABBIT_ADMIN.username,
    'rabbitmq.managementPassword': RABBIT_ADMIN.password,
  });
  secrets = await provision(config, [['R-T1', 'trucks'], ['R-T2', 'trucks'], ['R-T3', 'trucks'], ['R-OFF', 'trucks']]);
  svc = await startTestService(config);
  svc.service.devices.setEnabled('R-OFF', false);
  // What devices publish, as a worker would see it on amq.topic.
  amqpConnection = await amqp.connect(cluster.nodes[0]!.amqpUrl);
  const channel = await amqpConnection.createChannel();
  const { queue } = await channel.assertQueue('', { exclusive: true });
  await channel.bindQueue(queue, 'amq.topic', 'waste.#');
  await channel.consume(queue, (m) => m && received.push(`${m.fields.routingKey} ${m.content.toString()}`), { noAck: true });
}, 180_000);

afterAll(async () => {
  await amqpConnection?.close();
  await svc?.stop();
  await cluster?.cleanup();
  await influxd?.cleanup();
});

const connect = (node: number, username: string, password: string, clientId = username): Promise<MqttClient> =>
  mqtt.connectAsync(cluster.nodes[node]!.mqttUrl, { username, password, clientId, reconnectPeriod: 0, connectTimeout: 10_000 });

describe('RabbitMQ cluster logging devices in through the service', () => {
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
});
