import { describe, expect, it } from 'vitest';
import mqttPacket from 'mqtt-packet';
import { FrameLimit, PacketTooLargeError } from '../../../services/broker/frame-limit.ts';

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
