// The RabbitMQ cluster helper itself: three nodes form one cluster, MQTT published on one node
// reaches an AMQP consumer on another, and a killed node comes back into the cluster.
import amqp from 'amqplib';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RABBIT_ADMIN, startTestRabbitCluster, type TestRabbitCluster } from './rabbitmq.ts';

let cluster: TestRabbitCluster;

beforeAll(async () => {
  cluster = await startTestRabbitCluster();
}, 180_000);
afterAll(async () => {
  await cluster?.cleanup();
});

describe('startTestRabbitCluster', () => {
  it('runs three clustered nodes: MQTT into one node reaches an AMQP consumer on another, and a killed node rejoins', async () => {
    const status = JSON.parse(await cluster.ctl(0, 'cluster_status', '--formatter', 'json')) as { running_nodes: string[] };
    expect(status.running_nodes.sort()).toEqual(cluster.nodes.map((n) => n.name).sort());
    const connection = await amqp.connect(cluster.nodes[2]!.amqpUrl);
    const channel = await connection.createChannel();
    const { queue } = await channel.assertQueue('helper-test', { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await channel.bindQueue(queue, 'amq.topic', 'helper.#');
    const received: string[] = [];
    await channel.consume(queue, (m) => {
      if (m) received.push(`${m.fields.routingKey} ${m.content.toString()}`);
    }, { noAck: true });
    const device = await mqtt.connectAsync(cluster.nodes[1]!.mqttUrl, { ...RABBIT_ADMIN, clientId: 'helper-device' });
    await device.publishAsync('helper/one', 'hello', { qos: 1 });
    await device.endAsync();
    for (let i = 0; i < 50 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(received).toEqual(['helper.one hello']);
    await connection.close();

    await cluster.kill(1);
    const down = JSON.parse(await cluster.ctl(0, 'cluster_status', '--formatter', 'json')) as { running_nodes: string[] };
    expect(down.running_nodes).not.toContain(cluster.nodes[1]!.name);
    await cluster.start(1);
    const up = JSON.parse(await cluster.ctl(0, 'cluster_status', '--formatter', 'json')) as { running_nodes: string[] };
    expect(up.running_nodes).toContain(cluster.nodes[1]!.name);
  });
});
