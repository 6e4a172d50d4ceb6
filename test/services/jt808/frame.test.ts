// JT/T 808 framing on synthetic bytes: escaping, the check code, cutting a TCP stream into frames.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameError, FrameSplitter, checkCode, frame, unescape, verified } from '../../../services/jt808/frame.ts';

describe('JT/T 808 framing', () => {
  it('escapes 0x7e and 0x7d inside a frame and computes the XOR check code (JT/T 808-2013 §4.4)', () => {
    // The standard's own example: 0x30 0x7e 0x08 0x7d 0x55 is sent as 0x30 0x7d 0x02 0x08 0x7d 0x01 0x55.
    const message = Buffer.from([0x30, 0x7e, 0x08, 0x7d, 0x55]);
    const wire = frame(message);
    expect(wire.toString('hex')).toBe(`7e307d02087d0155${checkCode(message).toString(16).padStart(2, '0')}7e`);
    expect(verified(wire.subarray(1, -1))).toEqual(message);
  });

  it('round-trips any message through frame, the splitter and verified, however the stream is cut', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 5 }), fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1 }), (messages, cuts) => {
        const stream = Buffer.concat([Buffer.from([0x01, 0x02]), ...messages.map((m) => frame(m))]);
        const splitter = new FrameSplitter(2048);
        const got: Buffer[] = [];
        for (let offset = 0, c = 0; offset < stream.length; c++) {
          const size = cuts[c % cuts.length]!;
          got.push(...splitter.push(stream.subarray(offset, offset + size)).frames);
          offset += size;
        }
        expect(got.map((content) => verified(content))).toEqual(messages.map((m) => Buffer.from(m)));
      }),
      { numRuns: 300 },
    );
  });

  it('takes frames that share a flag as well as frames with a flag each', () => {
    const a = frame(Buffer.from([1, 2, 3]));
    const b = frame(Buffer.from([4, 5, 6]));
    const shared = Buffer.concat([a, b.subarray(1)]);
    expect(new FrameSplitter(100).push(shared).frames.map((f) => verified(f))).toEqual([Buffer.from([1, 2, 3]), Buffer.from([4, 5, 6])]);
  });

  it('drops a frame past the size cap once, keeping none of it, and goes on with the next', () => {
    const splitter = new FrameSplitter(64);
    let oversized = 0;
    oversized += splitter.push(Buffer.from([0x7e, ...new Array(50).fill(1)])).oversized;
    for (let i = 0; i < 1000; i++) oversized += splitter.push(Buffer.alloc(1000, 1)).oversized;
    const next = splitter.push(Buffer.concat([Buffer.from([0x7e]), frame(Buffer.from([9, 9]))]));
    expect(oversized + next.oversized).toBe(1);
    expect(next.frames.map((f) => f.length)).toEqual([3]);
  });

  it('refuses a wrong check code, a bad escape and a frame too short, saying which', () => {
    const good = frame(Buffer.from([1, 2, 3])).subarray(1, -1);
    const bad = Buffer.from(good);
    bad[bad.length - 1]! ^= 0xff;
    expect(() => verified(bad)).toThrow(/check code 0x.. does not match the frame's 0x../);
    expect(() => unescape(Buffer.from([1, 0x7d, 0x05]))).toThrow(FrameError);
    expect(() => verified(Buffer.from([1]))).toThrow(/holds 1 byte/);
  });
});
