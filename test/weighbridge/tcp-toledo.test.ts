// The agent behind a serial-device server: a net.Server in the test stands in for a USR-TCP232 box
// sending a Toledo indicator's continuous output. The box drops the connection mid-frame and later
// accepts without sending; the agent reconnects with backoff each time and the truck's two
// weighings still make one ticket, delivered to a real Mosquitto.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeighbridgeAgent } from '../../weighbridge/agent.ts';
import { agentLogger } from '../../weighbridge/log.ts';
import type { Outcome } from '../../weighbridge/weighing/ledger.ts';
import { startTestMosquitto, type TestMosquitto } from '../helpers/mosquitto.ts';
import { toledoFrame, truckPass } from './frames.ts';
import { ACL, DEVICE_ID, OBSERVER, OBSERVER_PASSWORD, SECRET, agentConfig, next, observe, until, type Observer } from './harness.ts';

let broker: TestMosquitto;
let observer: Observer;
let server: net.Server;
const sockets: net.Socket[] = [];

beforeAll(async () => {
  broker = await startTestMosquitto({ [DEVICE_ID]: SECRET, [OBSERVER]: OBSERVER_PASSWORD }, { acl: ACL });
  observer = await observe(broker.url);
  server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => server?.close(resolve));
  await observer?.close();
  await broker?.cleanup();
});

/** A truck's pass in Toledo frames, the indicator flagging motion while it rolls on. */
function pass(kg: number): Buffer {
  const weights = truckPass(kg, { jitterKg: 0 });
  return Buffer.concat(weights.map((w, i) => toledoFrame(w, { motion: i < 6 })));
}

describe('weighbridge agent on a TCP serial-device server, Toledo format', () => {
  it('reconnects after a drop mid-frame and after a silent connection, and pairs across them', async () => {
    const { port } = server.address() as net.AddressInfo;
    const config = await agentConfig({ tcp: { host: '127.0.0.1', port }, idleTimeoutS: 0.5 }, { indicator: { format: 'toledo', unit: 'kg' }, pairing: { minPairIntervalS: 0 } });
    config.mqtt.url = broker.url;
    const agent = new WeighbridgeAgent(config, agentLogger(config.log.level));
    const problems: string[] = [];
    agent.on('line', (_up, problem) => problem && problems.push(problem));
    await agent.start();
    try {
      await until(() => sockets.length === 1 && agent.status().input.connected, 'the first connection');
      expect(agent.offerPlate('苏E55555', 'test', null)).toMatchObject({ ok: true, placed: 'next' });
      const weighed = next<[Outcome]>(agent, 'weighing');
      // A terminal showing net weight is not read: its frames are counted and skipped.
      sockets[0]!.write(Buffer.concat([toledoFrame(9_000, { net: true }), pass(24_680)]));
      expect((await weighed)[0]).toMatchObject({ kind: 'open', weighing: { kg: 24_680, plate: '苏E55555' } });
      await until(() => agent.status().bridge === 'empty', 'the truck to leave');

      // The box drops the connection halfway through a frame.
      sockets[0]!.write(toledoFrame(0).subarray(0, 9));
      sockets[0]!.destroy();
      await until(() => sockets.length === 2, 'a reconnection after the drop');
      // The next connection stays silent: the agent gives up on it and connects again.
      await until(() => sockets.length === 3, 'a reconnection after the silence', 5_000);
      expect(problems).toEqual([expect.stringContaining('closed the connection'), expect.stringContaining('no data from the serial-device server')]);
      await until(() => agent.status().input.connected, 'the third connection');

      agent.offerPlate('苏E55555', 'test', null);
      const sent = next<[string]>(agent, 'sent');
      const ticket = next<[Outcome]>(agent, 'weighing');
      sockets[2]!.write(pass(11_180));
      expect((await ticket)[0]).toMatchObject({ kind: 'ticket', ticket: { plate: '苏E55555', gross_kg: 24_680, tare_kg: 11_180, net_kg: 13_500 } });
      const [ticketId] = await sent;
      await until(() => observer.ticketIds().has(ticketId), 'the ticket at the observer');
      const { frames } = agent.status().input;
      expect(frames.rejected.net_displayed).toBe(1);
      expect(frames.garbageBytes).toBeGreaterThanOrEqual(9);
    } finally {
      await agent.stop();
    }
  });
});
