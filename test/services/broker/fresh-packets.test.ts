// A real aedes broker on a TCP socket and a real MQTT client: with parseIntoFreshPackets installed,
// each packet is parsed into an object allocated when it arrives, not into the one left waiting
// after the previous packet; the messages themselves come through unchanged.
import net from 'node:net';
import { Aedes, type Client } from 'aedes';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { parseIntoFreshPackets } from '../../../services/broker/library-patches.ts';

interface ParserView extends NodeJS.EventEmitter {
  packet: object;
}

interface Seen {
  emitted: { topic?: string; payload?: Buffer };
  /** The object the parser held right after emitting the packet before this one. */
  waitingBefore: object | undefined;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** Publishes three messages a moment apart through a broker, fix installed or not. */
async function run(install: boolean): Promise<{ installed: boolean | undefined; seen: Seen[] }> {
  const aedes = await Aedes.createBroker();
  const seen: Seen[] = [];
  let installed: boolean | undefined;
  const server = net.createServer((socket) => {
    const client = aedes.handle(socket);
    if (install) installed = parseIntoFreshPackets(client);
    const parser = (client as Client & { _parser: ParserView })._parser;
    let waiting: object | undefined;
    parser.on('packet', (packet: Seen['emitted'] & { cmd: string }) => {
      if (packet.cmd !== 'publish') return;
      seen.push({ emitted: packet, waitingBefore: waiting });
      // _newPacket allocates the next object after the 'packet' listeners have run.
      setImmediate(() => (waiting = parser.packet));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as net.AddressInfo;
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
  cleanups.push(() => client.endAsync());
  for (const n of [1, 2, 3]) {
    await client.publishAsync(`t/${n}`, `fix ${n}`, { qos: 1 });
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { installed, seen };
}

describe('parseIntoFreshPackets', () => {
  it('parses each packet into a new object, with topic and payload intact', async () => {
    const { installed, seen } = await run(true);
    expect(installed).toBe(true);
    expect(seen.map((s) => [s.emitted.topic, s.emitted.payload?.toString()])).toEqual([
      ['t/1', 'fix 1'],
      ['t/2', 'fix 2'],
      ['t/3', 'fix 3'],
    ]);
    for (const { emitted, waitingBefore } of seen.slice(1)) {
      expect(waitingBefore).toBeDefined();
      expect(emitted).not.toBe(waitingBefore);
    }
  });

  it('is needed: without it the parser fills in the object it allocated after the previous packet', async () => {
    const { seen } = await run(false);
    expect(seen).toHaveLength(3);
    for (const { emitted, waitingBefore } of seen.slice(1)) expect(emitted).toBe(waitingBefore);
  });

  it('leaves a client whose parser it does not know untouched', () => {
    const client = { _parser: { packet: null } } as unknown as Client;
    expect(parseIntoFreshPackets(client)).toBe(false);
    expect(parseIntoFreshPackets({} as Client)).toBe(false);
  });
});
