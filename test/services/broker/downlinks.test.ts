// Downlinks to devices with persistent sessions ([MQTT-3.1.2-4]: the server keeps the session's
// subscriptions and its QoS 1 messages while the client is away), and what else such a session
// may be given.
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../../../services/contract/topics.ts';
import { rawLogin, startBroker, until, type StandaloneBroker } from './standalone.ts';

let b: StandaloneBroker;
const secrets: Record<string, string> = {};

beforeAll(async () => {
  b = await startBroker();
  for (const id of ['D1', 'D2', 'D3', 'LEAK', 'OTHER']) secrets[id] = await b.store.add(id, 'trucks');
  secrets['waste-ops'] = await b.store.addService('waste-ops');
});
afterAll(() => b?.stop());

const downlink = (id: string, sub = '') => `waste/trucks/${id}/downlink${sub}`;

/** A device connection with a persistent session under the client id `id`, recording what it receives. */
async function device(id: string): Promise<{ client: MqttClient; received: string[]; sessionPresent: boolean }> {
  const received: string[] = [];
  const client = mqtt.connect(b.url, { username: id, password: secrets[id], clientId: id, clean: false, reconnectPeriod: 0 });
  client.on('message', (topic, payload) => received.push(`${topic} ${payload.toString()}`));
  const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  return { client, received, sessionPresent: connack.sessionPresent };
}

async function service(): Promise<MqttClient> {
  return mqtt.connectAsync(b.url, { username: 'waste-ops', password: secrets['waste-ops'], clientId: `waste-ops-${Math.random().toString(16).slice(2, 8)}`, reconnectPeriod: 0 });
}

/** Publishes at QoS 1 and waits for the PUBACK; rejects if the broker closes the connection instead. */
function acknowledged(client: MqttClient, topic: string, payload: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const closed = () => reject(new Error(`the broker closed the connection instead of acknowledging ${topic}`));
    client.once('close', closed);
    client.publish(topic, payload, { qos: 1 }, (error) => {
      client.off('close', closed);
      if (error) reject(error);
      else resolve();
    });
  });
}

describe('QoS 1 downlinks to a device with a persistent session', () => {
  it('reach it when it comes back, from the service and from a service account, on the downlink topic and below it', async () => {
    const first = await device('D1');
    await first.client.subscribeAsync(topics.downlink('trucks', 'D1'), { qos: 1 });
    await first.client.endAsync();

    await b.broker.publish(downlink('D1', '/config'), 'from the service', { qos: 1 });
    const ops = await service();
    await acknowledged(ops, downlink('D1', '/cmd'), 'from an account');
    // "downlink/#" matches "downlink" itself ([MQTT-4.7.1-2]); a service account publishing there
    // was refused and disconnected.
    await acknowledged(ops, downlink('D1'), 'on the topic itself');
    await ops.endAsync();

    const back = await device('D1');
    expect(back.sessionPresent).toBe(true);
    await until(() => back.received.length >= 3, 'the three downlinks arrive');
    expect(back.received).toEqual([`${downlink('D1', '/config')} from the service`, `${downlink('D1', '/cmd')} from an account`, `${downlink('D1')} on the topic itself`]);
    await back.client.endAsync();
  });

  it('reach it over its new connection when one sent to its half-open old connection was never acknowledged', async () => {
    const quiet = rawLogin({ port: b.port, username: 'D2', password: secrets.D2!, clientId: 'D2', clean: false });
    expect(await quiet.answer).toBe(0);
    quiet.socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: topics.downlink('trucks', 'D2'), qos: 1 }] }));
    await until(() => quiet.packets.some((p) => p.cmd === 'suback'), 'SUBACK');
    await b.broker.publish(downlink('D2', '/cmd'), 'sent into the void', { qos: 1 });
    // The old connection got it and never acknowledges it.
    await until(() => quiet.packets.some((p) => p.cmd === 'publish'), 'the PUBLISH on the old connection');
    const back = await device('D2');
    await quiet.closed;
    await until(() => back.received.length >= 1, 'the downlink is sent again');
    expect(back.received).toEqual([`${downlink('D2', '/cmd')} sent into the void`]);
    await back.client.endAsync();
  });
});

describe('what a persistent session keeps', () => {
  it('only the filters the ACL granted: a device subscribing to its downlink and waste/# together gets nothing else while away', async () => {
    const first = await device('LEAK');
    const granted = await first.client.subscribeAsync([topics.downlink('trucks', 'LEAK'), 'waste/#'], { qos: 1 }).catch((error: { packet?: { granted?: number[] } }) => error.packet?.granted);
    // mqtt.js rejects a SUBACK with a refusal in it; the grants say 1 and 0x80.
    expect(granted).toEqual([1, 128]);
    await first.client.endAsync();
    const refusedBefore = b.broker.stats.refusedSubscriptions;

    await b.broker.publish('waste/alerts/J1/route_deviation', 'an alert', { qos: 1 });
    await b.broker.publish(downlink('OTHER', '/cmd'), 'for another device', { qos: 1 });
    const other = await device('OTHER');
    await other.client.publishAsync(topics.status('trucks', 'OTHER'), '{"online":true}', { qos: 1, retain: true });
    await other.client.endAsync();
    await b.broker.publish(downlink('LEAK', '/cmd'), 'mine', { qos: 1 });

    const back = await device('LEAK');
    await b.broker.publish(downlink('LEAK', '/cmd'), 'last', { qos: 1 });
    // What was queued goes out before what is published after the reconnection.
    await until(() => back.received.some((m) => m.endsWith(' last')), 'the last downlink arrives');
    expect(back.received).toEqual([`${downlink('LEAK', '/cmd')} mine`, `${downlink('LEAK', '/cmd')} last`]);
    // The refused filter was not stored, so the session did not bring it back to be refused again.
    expect(b.broker.stats.refusedSubscriptions).toBe(refusedBefore);
    await back.client.endAsync();
  });
});

describe('publish()', () => {
  it('refuses topic names that are filters or empty ([MQTT-3.3.2-2], [MQTT-4.7.3-1])', async () => {
    await expect(b.broker.publish(topics.downlink('trucks', 'D3'), 'x')).rejects.toThrow(/not a topic name/);
    await expect(b.broker.publish('waste/trucks/+/downlink', 'x')).rejects.toThrow(/not a topic name/);
    await expect(b.broker.publish('', 'x')).rejects.toThrow(/not a topic name/);
    await expect(b.broker.publish('waste/alerts/J1/\u0000', 'x')).rejects.toThrow(/not a topic name/);
  });
});
