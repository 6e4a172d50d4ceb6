// The persistent MQTT session the ingest worker and the LoRaWAN bridge read through: against
// Debian's Mosquitto with the documented configuration (docs/examples/mosquitto.conf), and against
// a scripted peer (test/helpers/mqtt-peer.ts) for what no real broker sends on request.
import mqtt from 'mqtt';
import mqttPacket, { type IPubackPacket, type IPublishPacket, type Packet } from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DurableSubscription, type DurableSubscriptionOptions, type MessageHandler } from '../../../services/ingest/durable-subscription.ts';
import type { OversizedPublish } from '../../../services/ingest/mqtt-framing.ts';
import { createLogger } from '../../../services/log.ts';
import { startTestMosquitto, type TestMosquitto } from '../../helpers/mosquitto.ts';
import { startMqttPeer, type MqttPeer } from '../../helpers/mqtt-peer.ts';
import { eventually } from '../../helpers/service.ts';

const log = createLogger('silent');
const USERS = { 'waste-ingest': 'ingest-secret', 'TRUCK-1': 'truck-secret' };
const TOPIC = 'waste/trucks/TRUCK-1/position';

let mosquitto: TestMosquitto;

beforeAll(async () => {
  mosquitto = await startTestMosquitto(USERS);
});
afterAll(async () => {
  await mosquitto?.cleanup();
});

function subscription(url: string, handle: MessageHandler, options: Partial<DurableSubscriptionOptions> = {}): DurableSubscription {
  return new DurableSubscription(
    {
      url,
      clientId: 'ingest-under-test',
      username: 'waste-ingest',
      password: USERS['waste-ingest'],
      subscriptions: ['waste/trucks/+/position'],
      qos: 1,
      label: 'the test worker',
      loginHint: 'check the test users',
      aclHint: 'check the test ACL',
      maxPacketBytes: 64 * 1024,
      refuseOversized: () => undefined,
      ...options,
    },
    handle,
    log,
  );
}

async function publishAll(count: number, from = 0): Promise<void> {
  const device = await mqtt.connectAsync(mosquitto.url, { username: 'TRUCK-1', password: USERS['TRUCK-1'], clientId: 'TRUCK-1' });
  await Promise.all(Array.from({ length: count }, (_, i) => device.publishAsync(TOPIC, JSON.stringify({ n: from + i }), { qos: 1 })));
  await device.endAsync();
}

const numberOf = (payload: Buffer) => (JSON.parse(payload.toString()) as { n: number }).n;

describe('on Mosquitto', () => {
  it('hands messages over without waiting for the ones before, and acknowledges a whole group once it is durable', async () => {
    // Each group is made durable at once when Mosquitto's in-flight window (max_inflight_messages
    // 1000) is full: a client that waited for one message's handler before reading the next would
    // never fill it and stall here.
    const handed: number[] = [];
    let held: (() => void)[] = [];
    let mostHeld = 0;
    const sub = subscription(mosquitto.url, (_topic, payload) => {
      handed.push(numberOf(payload));
      return new Promise<void>((resolve) => {
        held.push(resolve);
        mostHeld = Math.max(mostHeld, held.length);
        if (held.length === 1000) {
          for (const release of held) release();
          held = [];
        }
      });
    });
    await sub.start();
    await publishAll(3000);
    await eventually(async () => handed.length, (n) => n === 3000, 20_000);
    expect(mostHeld).toBe(1000);
    expect(new Set(handed).size).toBe(3000);
    await eventually(async () => sub.unacknowledged(), (n) => n === 0);
    await sub.stop();
    // Everything was acknowledged: the session has nothing to deliver again.
    const again: number[] = [];
    const next = subscription(mosquitto.url, async (_t, payload) => void again.push(numberOf(payload)));
    await next.start();
    await publishAll(1, 5000);
    await eventually(async () => again, (a) => a.length === 1);
    await next.stop();
    expect(again).toEqual([5000]);
  });

  it('leaves what it could not make durable with the broker, which sends exactly that again on the next connection', async () => {
    let failing = true;
    const durable: number[] = [];
    const waiting: ((error: Error) => void)[] = [];
    const sub = subscription(mosquitto.url, (_t, payload) => {
      const n = numberOf(payload);
      if (n < 10 || !failing) {
        durable.push(n);
        return Promise.resolve();
      }
      return new Promise<void>((_, reject) => waiting.push(reject));
    });
    await sub.start();
    await publishAll(20);
    await eventually(async () => waiting.length, (n) => n === 10);
    const stopped = sub.stop();
    for (const reject of waiting) reject(new Error('disk I/O error (injected)'));
    await stopped;
    failing = false;
    const next = subscription(mosquitto.url, async (_t, payload) => void durable.push(numberOf(payload)));
    await next.start();
    await eventually(async () => durable.length, (n) => n === 20);
    await next.stop();
    expect(durable.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('refuses to start, saying what to check, when the broker refuses the login', async () => {
    const sub = subscription(mosquitto.url, async () => undefined, { password: 'wrong' });
    await expect(sub.start()).rejects.toThrow(/the test worker: the broker at .* refused the login \(CONNACK 5: not authorized\); check the test users/);
  });
});

describe('against a scripted broker', () => {
  let peer: MqttPeer;
  beforeAll(async () => {
    peer = await startMqttPeer();
  });
  afterAll(async () => {
    await peer?.close();
  });

  const publish = (messageId: number, payload: Buffer | string, topic = TOPIC): IPublishPacket => ({ cmd: 'publish', topic, payload, qos: 1, messageId, retain: false, dup: false });
  const pubacks = (from: number) => peer.received.slice(from).filter((p): p is IPubackPacket => p.cmd === 'puback').map((p) => p.messageId);

  it('sends the acknowledgements in the order the messages came, whatever order they became durable in', async () => {
    const resolvers = new Map<number, () => void>();
    const sub = subscription(peer.url, (_t, payload) => new Promise<void>((resolve) => resolvers.set(numberOf(payload), resolve)));
    await sub.start();
    const mark = peer.received.length;
    for (let id = 1; id <= 5; id++) peer.send(publish(id, JSON.stringify({ n: id })));
    await eventually(async () => resolvers.size, (n) => n === 5);
    for (const n of [5, 3, 4]) resolvers.get(n)!();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(pubacks(mark)).toEqual([]); // 1 is not durable yet ([MQTT-4.6.0-2])
    resolvers.get(1)!();
    await eventually(async () => pubacks(mark), (ids) => ids.length === 1);
    resolvers.get(2)!();
    await eventually(async () => pubacks(mark), (ids) => ids.length === 5);
    expect(pubacks(mark)).toEqual([1, 2, 3, 4, 5]);
    await sub.stop();
  });

  it('acknowledges and reports a message larger than it reads without buffering it, and takes the next one', async () => {
    const handed: string[] = [];
    const refused: OversizedPublish[] = [];
    const sub = subscription(peer.url, async (_t, payload) => void handed.push(payload.toString()), { refuseOversized: (p) => refused.push(p) });
    await sub.start();
    const mark = peer.received.length;
    // 3 MB in a packet, sent in pieces of 1,000 bytes as TCP may cut it, then a small one.
    const bytes = Buffer.concat([mqttPacket.generate(publish(7, Buffer.alloc(3_000_000, 0x61))), mqttPacket.generate(publish(8, JSON.stringify({ n: 8 })))]);
    for (let at = 0; at < bytes.length; at += 1000) peer.write(bytes.subarray(at, at + 1000));
    await eventually(async () => pubacks(mark), (ids) => ids.length === 2);
    expect(pubacks(mark)).toEqual([7, 8]);
    expect(refused).toEqual([{ topic: TOPIC, qos: 1, messageId: 7, bytes: 3_000_000 + 2 + TOPIC.length + 2 }]);
    expect(handed).toEqual(['{"n":8}']);
    await sub.stop();
  });

  it('stops reading a broker that sends faster than it can make durable, and reads on once there is room', async () => {
    const held: (() => void)[] = [];
    let handed = 0;
    const sub = subscription(peer.url, () => {
      handed++;
      return new Promise<void>((resolve) => held.push(resolve));
    });
    await sub.start();
    const mark = peer.received.length;
    // 25,000 messages at once, as a broker with no in-flight limit would send a backlog.
    const packets = Array.from({ length: 25_000 }, (_, i) => mqttPacket.generate(publish((i % 65_535) + 1, JSON.stringify({ n: i }))));
    peer.write(Buffer.concat(packets));
    await eventually(async () => handed, (n) => n >= 10_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    // 10,000 waiting (UNACKED_MAX), plus what was left of the socket read that reached the bound.
    expect(handed).toBeGreaterThanOrEqual(10_000);
    expect(handed).toBeLessThan(10_000 + 65_536 / 20);
    while (held.length > 0 || handed < 25_000) {
      for (const release of held.splice(0)) release();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await eventually(async () => pubacks(mark).length, (n) => n === 25_000);
    expect(pubacks(mark)).toEqual(Array.from({ length: 25_000 }, (_, i) => (i % 65_535) + 1));
    await sub.stop();
  });

  it('reconnects after bytes that are not MQTT, and sends its own unacknowledged publishes again marked as duplicates', async () => {
    const sub = subscription(peer.url, async () => undefined);
    await sub.start();
    const connections = peer.connections();
    const mark = peer.received.length;
    let published = false;
    const alert = sub.publish('waste/alerts/WEST/no_permit', '{"type":"no_permit"}').then(() => (published = true));
    await eventually(async () => peer.received.slice(mark).filter((p) => p.cmd === 'publish').length, (n) => n === 1);
    // A Remaining Length of five bytes ([MQTT 3.1.1] §2.2.3 allows four).
    peer.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]));
    await eventually(async () => peer.connections(), (n) => n === connections + 1);
    await peer.subscribed();
    const sent = await eventually(async () => peer.received.slice(mark).filter((p): p is IPublishPacket => p.cmd === 'publish'), (p) => p.length === 2);
    expect(sent.map((p) => [p.messageId, p.dup])).toEqual([
      [sent[0]!.messageId, false],
      [sent[0]!.messageId, true],
    ]);
    expect(published).toBe(false);
    peer.send({ cmd: 'puback', messageId: sent[0]!.messageId! } as Packet);
    await alert;
    await sub.stop();
  });
});
