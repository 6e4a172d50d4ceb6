// Client ids are bound to the credentials that hold them. [MQTT-3.1.4-2] has a server disconnect the
// existing client when another connects with its id; a device connecting with another client's id
// once cut that client off, another device or a connected service account alike.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawLogin, startBroker, type StandaloneBroker } from './standalone.ts';

let b: StandaloneBroker;
const secrets: Record<string, string> = {};
const open: MqttClient[] = [];

beforeAll(async () => {
  b = await startBroker();
  for (const id of ['A', 'B', 'C']) secrets[id] = await b.store.add(id, 'trucks');
  secrets['waste-ops'] = await b.store.addService('waste-ops');
});
afterAll(async () => {
  for (const client of open) client.end(true);
  await b?.stop();
});

async function connect(username: string, options: IClientOptions): Promise<MqttClient> {
  const client = await mqtt.connectAsync(b.url, { username, password: secrets[username], reconnectPeriod: 0, ...options });
  open.push(client);
  return client;
}

/** The CONNACK code a login gets (0: accepted). */
async function answer(username: string, options: IClientOptions): Promise<number> {
  return connect(username, options).then(
    async (client) => {
      await client.endAsync();
      return 0;
    },
    (error: { code?: number }) => error.code ?? -1,
  );
}

const closes = (client: MqttClient) => {
  const state = { closed: false };
  client.once('close', () => (state.closed = true));
  return state;
};

describe('client ids', () => {
  it('refuses (CONNACK 2) a device taking the client id of another connected device, and keeps that one connected', async () => {
    const a = await connect('A', { clientId: 'shared-id' });
    const watch = closes(a);
    expect(await answer('B', { clientId: 'shared-id' })).toBe(2);
    // A publish acknowledged after the refusal: A is still connected.
    await a.publishAsync('waste/trucks/A/status', '{"online":true}', { qos: 1 });
    expect(watch.closed).toBe(false);
    expect(a.connected).toBe(true);
    await a.endAsync();
  });

  it('refuses a device taking the client id of a connected service account, whatever the id looks like', async () => {
    const ops = await connect('waste-ops', { clientId: 'ops-console' });
    const watch = closes(ops);
    expect(await answer('A', { clientId: 'ops-console' })).toBe(2);
    expect(await answer('A', { clientId: 'waste-ops-2' })).toBe(2);
    await ops.subscribeAsync('waste/#', { qos: 1 });
    expect(watch.closed).toBe(false);
    await ops.endAsync();
  });

  it("keeps a device's own id its own, connected or not", async () => {
    expect(await answer('B', { clientId: 'A' })).toBe(2);
    expect(await answer('waste-ops', { clientId: 'A' })).toBe(2);
    expect(await answer('A', { clientId: 'A' })).toBe(0);
  });

  it('lets a device take over its own connection with the same id (the old one half-open)', async () => {
    // A connection that has gone quiet, as one whose network went away does: it answers nothing.
    const first = rawLogin({ port: b.port, username: 'C', password: secrets.C!, clientId: 'C', clean: false });
    expect(await first.answer).toBe(0);
    const second = await connect('C', { clientId: 'C', clean: false });
    await first.closed;
    expect(second.connected).toBe(true);
    await second.endAsync();
  });

  it('keeps the id of a persistent session for its holder while it is away, and frees a clean one when it ends', async () => {
    const away = await connect('A', { clientId: 'A-persistent', clean: false });
    await away.endAsync();
    expect(await answer('B', { clientId: 'A-persistent', clean: true })).toBe(2);
    expect(await answer('B', { clientId: 'A-persistent', clean: false })).toBe(2);
    expect(await answer('A', { clientId: 'A-persistent', clean: false })).toBe(0);

    const passing = await connect('A', { clientId: 'passing-through', clean: true });
    await passing.endAsync();
    expect(await answer('B', { clientId: 'passing-through' })).toBe(0);
  });

  it('refuses a zero-byte client id with a persistent session ([MQTT-3.1.3-8]) and accepts it with a clean one', async () => {
    // mqtt-packet will not build it: a clean CONNECT with the CleanSession bit (0x02 of the connect
    // flags, after the fixed header, the protocol name and level) cleared.
    const persistent = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: '', keepalive: 60, username: 'A', password: Buffer.from(secrets.A!) });
    expect(persistent[1]! < 128 && persistent[9]! & 0x02).toBeTruthy();
    persistent[9]! &= ~0x02;
    expect(await rawLogin({ port: b.port, connectPacket: persistent }).answer).toBe(2);
    const clean = rawLogin({ port: b.port, username: 'A', password: secrets.A!, clientId: '', clean: true });
    expect(await clean.answer).toBe(0);
    clean.socket.destroy();
  });

  it('tells nothing about an id to a client without the secret: a wrong secret gets 4 whatever the id', async () => {
    const a = await connect('A', { clientId: 'held-by-A' });
    expect(await mqtt.connectAsync(b.url, { username: 'B', password: 'wrong', clientId: 'held-by-A', reconnectPeriod: 0 }).then(() => 0, (e: { code?: number }) => e.code)).toBe(4);
    expect(a.connected).toBe(true);
    await a.endAsync();
  });

  it('gives a device registered later its own id back from a client that took it first', async () => {
    expect(await answer('A', { clientId: 'NEW-1', clean: false })).toBe(0);
    secrets['NEW-1'] = await b.store.add('NEW-1', 'bins');
    expect(await answer('NEW-1', { clientId: 'NEW-1', clean: false })).toBe(0);
    // And from then on the id is the device's.
    expect(await answer('A', { clientId: 'NEW-1', clean: false })).toBe(2);
  });

  it('refuses a ninth persistent session to one client (CONNACK 2), and takes clean ones and its own again', async () => {
    secrets.CYCLER = await b.store.add('CYCLER', 'trucks');
    for (let i = 0; i < 8; i++) expect(await answer('CYCLER', { clientId: `cycle-${i}`, clean: false })).toBe(0);
    expect(await answer('CYCLER', { clientId: 'cycle-8', clean: false })).toBe(2);
    expect(await answer('CYCLER', { clientId: 'cycle-8', clean: true })).toBe(0);
    expect(await answer('CYCLER', { clientId: 'cycle-0', clean: false })).toBe(0);
    // The ids stay its own: nobody else resumes its sessions.
    expect(await answer('B', { clientId: 'cycle-3', clean: true })).toBe(2);
  });


  it('holds no id for a connection that closed while its secret was being verified', async () => {
    // Fresh secrets for each, so each login needs scrypt, and each connection closes at once.
    const ids = await Promise.all(Array.from({ length: 10 }, async (_, i) => ({ id: `GONE-${i}`, secret: await b.store.add(`GONE-${i}`, 'trucks') })));
    const gone = ids.map(({ id, secret }) => rawLogin({ port: b.port, username: id, password: secret, clientId: `gone-id-${id}` }));
    await new Promise((resolve) => setTimeout(resolve, 5));
    for (const login of gone) login.socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const { id } of ids) expect(await answer('A', { clientId: `gone-id-${id}` })).toBe(0);
  });

  it('closes the oldest of a device\'s connections when it opens more than broker.maxConnectionsPerDevice', async () => {
    const clients = await Promise.all(Array.from({ length: 4 }, (_, i) => connect('B', { clientId: `many-${i}`, keepalive: 0 })));
    const oldest = closes(clients[0]!);
    const other = await connect('A', { clientId: 'other-1' });
    const otherWatch = closes(other);
    const fifth = await connect('B', { clientId: 'many-4', keepalive: 0 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(oldest.closed).toBe(true);
    expect(clients.slice(1).every((c) => c.connected)).toBe(true);
    expect(fifth.connected).toBe(true);
    // Another device is not affected.
    expect(otherWatch.closed).toBe(false);
    await Promise.all([...clients.slice(1), fifth, other].map((c) => c.endAsync()));
  });

});
