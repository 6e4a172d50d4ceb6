// A clean DISCONNECT suppresses the will ([MQTT-3.1.2-10]), so the broker records the offline
// status itself, knowing the ending was clean from aedes' _disconnected (cleanlyDisconnected in
// services/broker/library-patches.ts; aedes lib/handlers/index.js sets it on DISCONNECT). Real
// mqtt.js clients over TCP: against a bare aedes broker, cleanlyDisconnected tells a DISCONNECT from
// a dropped connection; against the embedded broker, a device sending DISCONNECT is stored offline
// in the spool and its retained status goes offline.
import net from 'node:net';
import { Aedes, type Client } from 'aedes';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanlyDisconnected } from '../../../services/broker/library-patches.ts';
import { topics } from '../../../services/contract/topics.ts';
import { startBroker, until, type StandaloneBroker } from './standalone.ts';

describe('cleanlyDisconnected, on a bare aedes broker', () => {
  it('is true for a client that sent DISCONNECT, false for one whose connection dropped', async () => {
    const aedes = await Aedes.createBroker();
    const server = net.createServer((socket) => aedes.handle(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const endings = new Map<string, boolean>();
    aedes.on('clientDisconnect', (client: Client) => endings.set(client.id, cleanlyDisconnected(client)));
    try {
      const url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
      const clean = await mqtt.connectAsync(url, { clientId: 'clean', reconnectPeriod: 0 });
      await clean.endAsync(); // sends DISCONNECT
      const dropped = await mqtt.connectAsync(url, { clientId: 'dropped', reconnectPeriod: 0 });
      (dropped.stream as net.Socket).destroy(); // no DISCONNECT
      await until(() => endings.size === 2, 'both clients are gone');
      expect(Object.fromEntries(endings)).toEqual({ clean: true, dropped: false });
      dropped.end(true);
    } finally {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('a device sending DISCONNECT to the embedded broker', () => {
  let b: StandaloneBroker;
  beforeAll(async () => {
    b = await startBroker();
  });
  afterAll(() => b?.stop());

  /** The device's device_status lines in the spool, as online flags in order, once there are `count`. */
  async function statusesStored(deviceId: string, count: number): Promise<boolean[]> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const batch = await b.spool.read(10_000);
      const lines = batch ? batch.body.toString().split('\n') : [];
      const statuses = lines.filter((line) => line.startsWith('device_status,') && line.includes(`device_id=${deviceId} `)).map((line) => / online=T /.test(line));
      if (statuses.length >= count || Date.now() > deadline) return statuses;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  it('is recorded offline, and its retained status goes offline, with no will to do it', async () => {
    const secret = await b.store.add('BYE-1', 'trucks');
    const service = await b.store.addService('waste-watch');
    const device = await mqtt.connectAsync(b.url, { username: 'BYE-1', password: secret, clientId: 'BYE-1', reconnectPeriod: 0 });
    expect(await statusesStored('BYE-1', 1)).toEqual([true]);

    await device.endAsync(); // sends DISCONNECT: aedes suppresses the will
    expect(await statusesStored('BYE-1', 2)).toEqual([true, false]);

    const watcher = await mqtt.connectAsync(b.url, { username: 'waste-watch', password: service, clientId: 'waste-watch-bye', reconnectPeriod: 0 });
    const retained = new Promise<{ payload: string; retain: boolean }>((resolve) => watcher.on('message', (_topic, payload, packet) => resolve({ payload: payload.toString(), retain: packet.retain })));
    await watcher.subscribeAsync(topics.status('trucks', 'BYE-1'), { qos: 1 });
    expect(await retained).toEqual({ payload: '{"online":false}', retain: true });
    await watcher.endAsync();
  });
});
