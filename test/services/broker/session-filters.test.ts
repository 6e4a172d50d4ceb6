// keepRefusedFiltersOutOfSessions (services/broker/library-patches.ts) against a real aedes broker
// and its real session store (aedes-persistence): a client with a persistent session subscribes to
// a granted filter and a refused one in one SUBSCRIBE. aedes stores the packet's filters as listed,
// the refused one included (lib/handlers/subscribe.js, storeSubscriptions), so messages matching it
// are queued for the session while the client is away; with the patch only the granted one is kept.
import net from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { keepRefusedFiltersOutOfSessions } from '../../../services/broker/library-patches.ts';

const granted = (topic: string): boolean => topic.startsWith('own/');

/** The filters aedes' session store holds for the client, and the clients it would queue a fleet message for. */
async function sessionAfterSubscribe(patched: boolean): Promise<{ grants: number[] | undefined; stored: string[]; queuedFor: string[] }> {
  const aedes = await Aedes.createBroker({
    authorizeSubscribe: (_client, subscription, done) => done(null, granted(subscription.topic) ? subscription : null),
  });
  if (patched) expect(keepRefusedFiltersOutOfSessions(aedes, (_client, subscription) => granted(subscription.topic))).toBe(true);
  const server = net.createServer((socket) => aedes.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`, { clientId: 'away', clean: false, reconnectPeriod: 0 });
    // mqtt.js rejects a SUBACK with a refusal in it; the grants are on the packet.
    const grants = await client.subscribeAsync(['own/downlink', 'fleet/#'], { qos: 1 }).then(
      (subscriptions) => subscriptions.map((s) => s.qos),
      (error: { packet?: { granted?: number[] } }) => error.packet?.granted,
    );
    await client.endAsync();
    const persistence = (aedes as unknown as { persistence: { subscriptionsByClient(client: { id: string }): Promise<Array<{ topic: string }>>; subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string }>> } }).persistence;
    const stored = (await persistence.subscriptionsByClient({ id: 'away' })).map((s) => s.topic);
    const queuedFor = (await persistence.subscriptionsByTopic('fleet/T2/position')).map((s) => s.clientId);
    return { grants, stored, queuedFor };
  } finally {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe('keepRefusedFiltersOutOfSessions', () => {
  it('is needed: aedes stores a refused filter in the persistent session, and queues what it matches', async () => {
    expect(await sessionAfterSubscribe(false)).toEqual({ grants: [1, 128], stored: ['own/downlink', 'fleet/#'], queuedFor: ['away'] });
  });

  it('keeps only the granted filters in the session', async () => {
    expect(await sessionAfterSubscribe(true)).toEqual({ grants: [1, 128], stored: ['own/downlink'], queuedFor: [] });
  });
});
