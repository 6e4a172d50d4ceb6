// The framing in front of the MQTT parser: whatever way TCP cuts the stream, the parser gets the
// bytes of every packet within the limit, in order, and of an oversized PUBLISH only its topic
// and packet id are read.
import fc from 'fast-check';
import mqttPacket, { type IPublishPacket } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { MalformedPacketError, PacketFraming, type OversizedPublish } from '../../../services/ingest/mqtt-framing.ts';

const LIMIT = 1000;

const packetArbitrary = fc.oneof(
  fc.record({ topic: fc.string({ minLength: 1, maxLength: 40 }), size: fc.integer({ min: 0, max: 3000 }), qos: fc.constantFrom(0 as const, 1 as const), id: fc.integer({ min: 1, max: 65_535 }) }).map(
    ({ topic, size, qos, id }): IPublishPacket => ({ cmd: 'publish', topic, payload: Buffer.alloc(size, 0x62), qos, retain: false, dup: false, ...(qos > 0 ? { messageId: id } : {}) }),
  ),
  fc.constant({ cmd: 'pingresp' } as const),
  fc.integer({ min: 1, max: 65_535 }).map((id) => ({ cmd: 'puback', messageId: id }) as const),
);

describe('PacketFraming', () => {
  it('passes packets within the limit whole and in order, and reports oversized publishes, however the stream is cut', () => {
    fc.assert(
      fc.property(fc.array(packetArbitrary, { maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 30 }), (packets, cuts) => {
        const encoded = packets.map((p) => mqttPacket.generate(p));
        const stream = Buffer.concat(encoded);
        const passed: Buffer[] = [];
        const oversized: OversizedPublish[] = [];
        const framing = new PacketFraming(LIMIT, (b) => passed.push(Buffer.from(b)), (p) => oversized.push(p));
        for (let at = 0, i = 0; at < stream.length; i++) {
          const size = cuts[i % cuts.length]!;
          framing.feed(stream.subarray(at, at + size));
          at += size;
        }
        const within = encoded.filter((bytes, i) => !(packets[i]!.cmd === 'publish' && bytes.length - headerLength(bytes) > LIMIT));
        expect(Buffer.concat(passed).equals(Buffer.concat(within))).toBe(true);
        const expected = packets.flatMap((p, i) =>
          p.cmd === 'publish' && encoded[i]!.length - headerLength(encoded[i]!) > LIMIT
            ? [{ topic: p.topic, qos: p.qos, messageId: p.qos > 0 ? p.messageId! : null, bytes: encoded[i]!.length - headerLength(encoded[i]!) }]
            : [],
        );
        expect(oversized).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a Remaining Length of more than four bytes, and a packet other than PUBLISH over the limit', () => {
    expect(() => new PacketFraming(LIMIT, () => undefined, () => undefined).feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toThrow(MalformedPacketError);
    expect(() => new PacketFraming(LIMIT, () => undefined, () => undefined).feed(Buffer.from([0x90, 0xe8, 0x07]))).not.toThrow();
    expect(() => new PacketFraming(LIMIT, () => undefined, () => undefined).feed(Buffer.from([0x90, 0xe9, 0x07]))).toThrow(/type 9 and 1001/);
  });
});

/** Bytes of the fixed header ([MQTT 3.1.1] §2.2): the type byte and 1 to 4 length bytes. */
function headerLength(bytes: Buffer): number {
  let i = 1;
  while (bytes[i]! & 0x80) i++;
  return i + 1;
}
