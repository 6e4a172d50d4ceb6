// FrameLimit on chunks as they come; and limitFramesBeforeParsing (services/broker/library-patches.ts)
// putting it in front of a real aedes broker's parser on a real TCP connection, where aedes reads
// the connection with read() (aedes lib/client.js, nextBatch).
import net from 'node:net';
import { Aedes } from 'aedes';
import { describe, expect, it } from 'vitest';
import mqttPacket from 'mqtt-packet';
import { FrameLimit, PacketTooLargeError } from '../../../services/broker/frame-limit.ts';
import { limitFramesBeforeParsing } from '../../../services/broker/library-patches.ts';
import { rawLogin } from './standalone.ts';

function publish(size: number): Buffer {
  return mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(size), qos: 0, dup: false, retain: false });
}

/** Checks the chunks in turn; how many bytes passed before a chunk was refused, and why. */
function run(chunks: Buffer[], limit: number): { passed: number; error?: Error } {
  const guard = new FrameLimit(limit);
  let passed = 0;
  for (const chunk of chunks) {
    try {
      guard.check(chunk);
    } catch (error) {
      return { passed, error: error as Error };
    }
    passed += chunk.length;
  }
  return { passed };
}

describe('FrameLimit', () => {
  it('passes packets up to the limit, however the stream is chunked', () => {
    const stream = Buffer.concat([publish(10), publish(1000), publish(200_000 - 5), publish(0)]);
    const byteByByte = [...stream].map((b) => Buffer.from([b]));
    expect(run([stream], 200_000).passed).toBe(stream.length);
    const chunked = run(byteByByte.slice(0, 5000).concat([stream.subarray(5000)]), 200_000);
    expect(chunked).toEqual({ passed: stream.length });
  });

  it('stops at the header of a packet over the limit, before its body arrives', () => {
    const big = publish(300_000);
    const { error, passed } = run([publish(10), big.subarray(0, 10)], 200_000);
    expect(error).toBeInstanceOf(PacketTooLargeError);
    expect((error as PacketTooLargeError).size).toBe(300_000 + 3);
    expect(passed).toBe(publish(10).length);
  });
});

/**
 * A bare aedes broker, the frame limit of 1,000 bytes installed or not; a client logs in and sends
 * the header of a 10 MB PUBLISH and 64 KB of its body. Says whether the broker closed the
 * connection within `waitMs`, and what the limit refused.
 */
async function oversized(install: boolean, waitMs: number): Promise<{ closed: boolean; refused: unknown[] }> {
  const aedes = await Aedes.createBroker();
  const refused: unknown[] = [];
  const server = net.createServer((socket) => {
    if (install) limitFramesBeforeParsing(socket, new FrameLimit(1000), (error) => refused.push(error));
    aedes.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const login = rawLogin({ port: (server.address() as net.AddressInfo).port });
    expect(await login.answer).toBe(0);
    const big = mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(10 * 1024 * 1024), qos: 0, dup: false, retain: false });
    login.socket.write(big.subarray(0, 64 * 1024));
    const closed = await Promise.race([login.closed.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), waitMs))]);
    login.socket.destroy();
    return { closed, refused };
  } finally {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe('limitFramesBeforeParsing', () => {
  it('is needed: aedes itself waits for the whole 10 MB packet, buffering it', async () => {
    expect(await oversized(false, 500)).toEqual({ closed: false, refused: [] });
  });

  it("closes the connection at the header of a packet over the limit, before aedes' parser takes it", async () => {
    const { closed, refused } = await oversized(true, 10_000);
    expect(closed).toBe(true);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toBeInstanceOf(PacketTooLargeError);
    expect((refused[0] as PacketTooLargeError).size).toBe(10 * 1024 * 1024 + 3);
  });
});
