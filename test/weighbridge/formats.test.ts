// The indicator formats against frames built from their manuals, and the frame reader against the
// line's faults: noise, reads split anywhere, corrupted bytes, truncated and overlong frames.
import { describe, expect, it } from 'vitest';
import { FrameReader } from '../../weighbridge/formats/frame-reader.ts';
import { toledo, toledoNoChecksum } from '../../weighbridge/formats/toledo.ts';
import { nibbleChar, xk3190A9, xk3190Check } from '../../weighbridge/formats/xk3190-a9.ts';
import { toledoFrame, xk3190Frame } from './frames.ts';

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

describe('XK3190-A9 continuous (tF=0)', () => {
  it('reads the published example +20.00 (check 1Bh sent as "1" "B")', () => {
    // 地磅.md in njzscloud device-ctrl (z-doc/wbs): 02 '+' 002000 '2' '1' 'B' 03.
    const reader = new FrameReader(xk3190A9);
    expect(reader.push(hex('02 2B 30 30 32 30 30 30 32 31 42 03'))).toEqual([{ weight: 20 }]);
    expect(reader.stats.frames).toBe(1);
  });

  it('builds the same frame from the manual as the published example', () => {
    expect(xk3190Frame(20, 2)).toEqual(hex('02 2B 30 30 32 30 30 30 32 31 42 03'));
  });

  it('reads sign, six digits and decimal places', () => {
    const reader = new FrameReader(xk3190A9);
    const frames = [xk3190Frame(25_680), xk3190Frame(-40), xk3190Frame(31.25, 2), xk3190Frame(0), xk3190Frame(-0)];
    expect(reader.push(Buffer.concat(frames)).map((r) => r.weight)).toEqual([25_680, -40, 31.25, 0, 0]);
  });

  it('accepts a check sent as nibble + 30h for A-F as well as the manual\'s nibble + 37h', () => {
    const frame = xk3190Frame(20, 2);
    frame[10] = 0x3b; // ';' = 30h + Bh
    expect(new FrameReader(xk3190A9).push(frame)).toEqual([{ weight: 20 }]);
  });

  it('skips and counts a bad check, bad content and frames of the wrong length', () => {
    const reader = new FrameReader(xk3190A9);
    const corrupted = xk3190Frame(12_340);
    corrupted[5] = 0x39;
    // A letter among the digits, with its check made right: the content, not the check, is wrong.
    const withLetter = xk3190Frame(12_340);
    withLetter[3] = 0x41;
    const check = xk3190Check(withLetter);
    withLetter[9] = nibbleChar(check >> 4);
    withLetter[10] = nibbleChar(check & 0x0f);
    const truncated = Buffer.concat([xk3190Frame(5).subarray(0, 8), Buffer.from([0x03])]);
    const overlong = Buffer.concat([xk3190Frame(5).subarray(0, 11), Buffer.from('7'), Buffer.from([0x03])]);
    const readings = reader.push(Buffer.concat([corrupted, withLetter, truncated, xk3190Frame(1_000), overlong, xk3190Frame(2_000)]));
    expect(readings.map((r) => r.weight)).toEqual([1_000, 2_000]);
    expect(reader.stats.rejected).toMatchObject({ bad_check: 1, bad_content: 1, bad_length: 2 });
    expect(reader.stats.frames).toBe(2);
  });

  it('finds frames in noise and across reads split at every byte', () => {
    const reader = new FrameReader(xk3190A9);
    const noise = Buffer.from('\xff\x00AT+OK\r\n', 'latin1');
    const stream = Buffer.concat([noise, xk3190Frame(18_500), noise, xk3190Frame(18_520), Buffer.from([0x03, 0x03]), xk3190Frame(18_500)]);
    const weights: number[] = [];
    for (const byte of stream) weights.push(...reader.push(Buffer.from([byte])).map((r) => r.weight));
    expect(weights).toEqual([18_500, 18_520, 18_500]);
    expect(reader.stats.garbageBytes).toBe(noise.length * 2 + 2);
  });

  it('holds less than one frame between reads, whatever arrives', () => {
    const reader = new FrameReader(xk3190A9);
    // A megabyte of start bytes: every one is a frame start whose end is wrong.
    reader.push(Buffer.alloc(1 << 20, 0x02));
    expect((reader as unknown as { pending: Buffer }).pending.length).toBeLessThan(xk3190A9.length);
    expect(reader.push(xk3190Frame(700))).toEqual([{ weight: 700 }]);
  });

  it('never throws on random bytes', () => {
    const reader = new FrameReader(xk3190A9);
    let seed = 7;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff) & 0xff;
    for (let i = 0; i < 2_000; i++) reader.push(Buffer.from(Array.from({ length: 1 + (i % 40) }, random)));
    const { frames, garbageBytes, rejected } = reader.stats;
    expect(frames + garbageBytes + Object.values(rejected).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });
});

describe('Toledo continuous output', () => {
  it('reads weight, sign and motion from the status words', () => {
    const reader = new FrameReader(toledo);
    const readings = reader.push(Buffer.concat([toledoFrame(25_680), toledoFrame(25_700, { motion: true }), toledoFrame(-60)]));
    expect(readings).toEqual([
      { weight: 25_680, motion: false },
      { weight: 25_700, motion: true },
      { weight: -60, motion: false },
    ]);
  });

  it('builds the frame of the Wildcat manual byte for byte: STX, "*", "0", " ", weight, tare, CR, checksum', () => {
    const frame = toledoFrame(25_680, {}, 0);
    expect(frame.subarray(0, 17).toString('latin1')).toBe('\x02*0 025680000000\r');
    // Sum of all 18 bytes is 0 in the low seven bits.
    expect(frame.reduce((a, b) => a + b, 0) & 0x7f).toBe(0);
  });

  it('scales by the decimal code of SWA: dummy zeros and decimal places', () => {
    const reader = new FrameReader(toledo);
    const readings = reader.push(
      Buffer.concat([
        toledoFrame(0, { decimalCode: 1, digits: '002568' }),
        toledoFrame(0, { decimalCode: 0, digits: '000256' }),
        toledoFrame(0, { decimalCode: 4, digits: '002568' }),
        toledoFrame(0, { decimalCode: 7, digits: '100000' }),
      ]),
    );
    expect(readings.map((r) => r.weight)).toEqual([25_680, 25_600, 25.68, 1]);
  });

  it('skips and counts a bad checksum, net display, out of range and pounds', () => {
    const reader = new FrameReader(toledo);
    const corrupted = toledoFrame(10_000);
    corrupted[6] = 0x39;
    const readings = reader.push(
      Buffer.concat([corrupted, toledoFrame(10_000, { net: true }), toledoFrame(10_000, { outOfRange: true }), toledoFrame(10_000, { lb: true }), toledoFrame(9_980)]),
    );
    expect(readings.map((r) => r.weight)).toEqual([9_980]);
    expect(reader.stats.rejected).toMatchObject({ bad_check: 1, net_displayed: 1, out_of_range: 1, unit_lb: 1 });
  });

  it('ignores the parity bit (bit 7) of each byte', () => {
    const frame = toledoFrame(1_500);
    frame[1] = frame[1]! | 0x80;
    frame[17] = frame[17]! | 0x80;
    expect(new FrameReader(toledo).push(frame)).toEqual([{ weight: 1_500, motion: false }]);
  });

  it('reads a 7E1 stream taken as 8N1: the even-parity bit set on any byte, STX and CR included', () => {
    const evenParity = (frame: Buffer) => Buffer.from(frame.map((b) => (b.toString(2).split('1').length % 2 === 0 ? b | 0x80 : b)));
    const frames = [toledoFrame(25_680), toledoFrame(25_700, { motion: true })].map(evenParity);
    // STX (one bit set) and CR (three) go out as 82h and 8Dh.
    expect([frames[0]![0], frames[0]![16]]).toEqual([0x82, 0x8d]);
    const reader = new FrameReader(toledo);
    const stream = Buffer.concat([Buffer.from([0x8d, 0x41]), frames[0]!, frames[1]!]);
    // Split at every byte: the start and end bytes are found under the mask wherever a read ends.
    const readings = [...stream].flatMap((b) => reader.push(Buffer.from([b])));
    expect(readings).toEqual([
      { weight: 25_680, motion: false },
      { weight: 25_700, motion: true },
    ]);
    const plain = new FrameReader(toledoNoChecksum);
    expect(plain.push(evenParity(toledoFrame(3_000, {}, 0, false)))).toEqual([{ weight: 3_000, motion: false }]);
  });

  it('reads the frame without checksum when the terminal sends none', () => {
    const reader = new FrameReader(toledoNoChecksum);
    const frames = Buffer.concat([toledoFrame(3_000, {}, 0, false), Buffer.from('noise'), toledoFrame(3_020, {}, 0, false)]);
    expect(reader.push(frames).map((r) => r.weight)).toEqual([3_000, 3_020]);
  });

  it('skips a frame without checksum when one is expected, and reads the frame after it', () => {
    const reader = new FrameReader(toledo);
    const readings = reader.push(Buffer.concat([toledoFrame(3_000, {}, 0, false), toledoFrame(3_020)]));
    expect(readings.map((r) => r.weight)).toEqual([3_020]);
    // The next frame's STX stood where the checksum goes.
    expect(reader.stats.rejected.bad_check).toBe(1);
  });
});
