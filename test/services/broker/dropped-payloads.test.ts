// DroppedPayloads (services/broker/library-patches.ts) against a real aedes broker: a message
// refused in authorizePublish is told apart in authorizeForward by its payload Buffer, which aedes
// hands on by reference from the one hook to the other (aedes.js publish, aedes-packet packet.js).
// Real mqtt.js clients over TCP: the subscriber gets the accepted messages only, and the retained
// copy is the last accepted one, not the refused one published after it.
import net from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { DroppedPayloads } from '../../../services/broker/library-patches.ts';
import { until } from './standalone.ts';

describe('DroppedPayloads', () => {
  it('keeps refused messages from subscribers and from the retained store', async () => {
    const drops = new DroppedPayloads();
    const aedes = await Aedes.createBroker({
      authorizePublish: (_client, packet, done) => {
        if (packet.payload.toString().startsWith('refused')) drops.drop(packet);
        done(null);
      },
      authorizeForward: (_client, packet) => (drops.has(packet) ? null : packet),
    });
    const server = net.createServer((socket) => aedes.handle(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    try {
      const received: string[] = [];
      const subscriber = await mqtt.connectAsync(url, { clientId: 'subscriber', reconnectPeriod: 0 });
      subscriber.on('message', (_topic, payload) => received.push(payload.toString()));
      await subscriber.subscribeAsync('t/#', { qos: 1 });
      const publisher = await mqtt.connectAsync(url, { clientId: 'publisher', reconnectPeriod: 0 });
      for (const payload of ['accepted 1', 'refused 1', 'accepted 2']) await publisher.publishAsync('t/1', payload, { qos: 1, retain: true });
      await publisher.publishAsync('t/1', 'refused 2', { qos: 1, retain: true });
      await publisher.publishAsync('t/2', 'last', { qos: 1 });
      await until(() => received.includes('last'), 'the last message arrives');
      expect(received).toEqual(['accepted 1', 'accepted 2', 'last']);

      const late = await mqtt.connectAsync(url, { clientId: 'late', reconnectPeriod: 0 });
      const retained = new Promise<string>((resolve) => late.on('message', (_topic, payload) => resolve(payload.toString())));
      await late.subscribeAsync('t/1', { qos: 1 });
      expect(await retained).toBe('accepted 2');
      await Promise.all([subscriber.endAsync(), publisher.endAsync(), late.endAsync()]);
    } finally {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
