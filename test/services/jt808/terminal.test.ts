// The terminal side (terminal.ts) read back by the codec: every message a terminal builds, in both
// editions, decodes to what was put in; and what the platform answers is read as it was built.
import { describe, expect, it } from 'vitest';
import { FrameError, FrameSplitter, frame, verified } from '../../../services/jt808/frame.ts';
import { readHeader, writeMessage } from '../../../services/jt808/header.ts';
import { decodeBatch, decodeLocation } from '../../../services/jt808/location.ts';
import { MESSAGE, REGISTRATION_RESULT, RESULT, decodeAuthentication, decodeRegistration, decodeTerminalResponse, platformResponse, registrationResponse, type Registration } from '../../../services/jt808/session.ts';
import {
  BATCH_TYPE,
  MAX_BODY_BYTES,
  WASTE_SIM_LAYOUT,
  authenticationFrame,
  batchBody,
  batchCapacity,
  batchFrame,
  gbkEncode,
  heartbeatFrame,
  locationBody,
  locationFrame,
  logoutFrame,
  parsePlatformMessage,
  registrationFrame,
  retransmissionTimeouts,
  terminalResponseFrame,
  toBcdTime,
  wasteSimItems,
  type TerminalFix,
} from '../../../services/jt808/terminal.ts';

const EDITIONS = [2013, 2019] as const;
const gbk = new TextDecoder('gbk');

/** The one frame on the wire, cut as the gateway cuts it, checked and split into header and body. */
function read(wire: Buffer) {
  expect(wire[0]).toBe(0x7e);
  expect(wire.at(-1)).toBe(0x7e);
  // Escaped: no flag inside the frame.
  expect(wire.subarray(1, -1).includes(0x7e)).toBe(false);
  const { frames } = new FrameSplitter(4096).push(wire);
  expect(frames).toHaveLength(1);
  return readHeader(verified(frames[0]!));
}

const header = (edition: 2013 | 2019, serial = 1) => ({ phone: '14712345678', edition, serial });

describe('GBK encoding', () => {
  it('is the inverse of the decoder the codec reads with, for every two-byte GBK code but private-use ones, and the euro sign', () => {
    let checked = 0;
    let privateUse = 0;
    for (let lead = 0x81; lead <= 0xfe; lead++) {
      for (let trail = 0x40; trail <= 0xfe; trail++) {
        if (trail === 0x7f) continue;
        const char = gbk.decode(Buffer.from([lead, trail]));
        checked++;
        // WHATWG's gbk (the decoder) and iconv-lite's (the encoder) map a few codes to different
        // private-use characters, U+E000-U+F8FF, which no plate or message holds: those are refused.
        const codePoint = char.codePointAt(0)!;
        if (codePoint >= 0xe000 && codePoint <= 0xf8ff) {
          let encoded: Buffer | null = null;
          try {
            encoded = gbkEncode(char);
          } catch {
            privateUse++;
            continue;
          }
          expect(gbk.decode(encoded)).toBe(char);
          continue;
        }
        expect(gbk.decode(gbkEncode(char))).toBe(char);
      }
    }
    expect(checked).toBe(23_940);
    expect(privateUse).toBeLessThan(100);
    expect(gbkEncode('€')).toEqual(Buffer.from([0x80]));
    expect(gbkEncode('苏E·W2352')).toEqual(Buffer.from('cbd545a1a45732333532', 'hex'));
  });

  it('refuses a character GBK does not have', () => {
    expect(() => gbkEncode('苏E😀')).toThrow(/"😀" \(U\+1F600\) has no GBK encoding/);
  });
});

describe('terminal session messages', () => {
  const registration: Registration = { province: 32, city: 500, manufacturer: 'WSIM', model: 'WASTE-SIM', terminalId: '2345678', plateColour: 2, plate: '苏E·W2352' };

  it('builds 0x0100 in both editions, with the GBK plate, read back by decodeRegistration', () => {
    for (const edition of EDITIONS) {
      const { header: h, body } = read(registrationFrame(header(edition, 7), registration));
      expect(h).toMatchObject({ messageId: MESSAGE.registration, edition, phone: '14712345678', serial: 7 });
      expect(body.length).toBe((edition === 2013 ? 37 : 76) + 10);
      expect(decodeRegistration(body, edition)).toEqual(registration);
    }
  });

  it('fills each fixed field to its edition size, and refuses a value too long for it', () => {
    const full2013 = { ...registration, manufacturer: 'ABCDE', model: 'M'.repeat(20), terminalId: 'T'.repeat(7) };
    expect(decodeRegistration(read(registrationFrame(header(2013), full2013)).body, 2013)).toEqual(full2013);
    expect(() => registrationFrame(header(2013), { ...registration, terminalId: 'T'.repeat(8) })).toThrow(/terminal id "TTTTTTTT" takes 8 bytes; the field holds 7/);
    const full2019 = { ...registration, manufacturer: 'A'.repeat(11), model: '型'.repeat(15), terminalId: 'T'.repeat(30) };
    expect(decodeRegistration(read(registrationFrame(header(2019), full2019)).body, 2019)).toEqual(full2019);
    expect(() => registrationFrame(header(2019), { ...registration, model: '型'.repeat(16) })).toThrow(/takes 32 bytes; the field holds 30/);
    expect(() => registrationFrame(header(2013), { ...registration, province: 70_000 })).toThrow(/province 70000 is not a WORD/);
  });

  it('builds 0x0102: the code alone in 2013; length, code, IMEI and software version in 2019', () => {
    const a2013 = read(authenticationFrame(header(2013), { code: 'Ab3-x_9', imei: 'ignored' }));
    expect(a2013.header.messageId).toBe(MESSAGE.authentication);
    expect(a2013.body.toString('latin1')).toBe('Ab3-x_9');
    expect(decodeAuthentication(a2013.body, 2013)).toEqual({ code: 'Ab3-x_9' });
    const a2019 = read(authenticationFrame(header(2019), { code: 'Ab3-x_9', imei: '860012345678901', softwareVersion: 'sim 1.0' }));
    expect(a2019.body.length).toBe(1 + 7 + 15 + 20);
    expect(decodeAuthentication(a2019.body, 2019)).toEqual({ code: 'Ab3-x_9', imei: '860012345678901' });
    expect(a2019.body.subarray(23).toString('latin1').replace(/\0+$/, '')).toBe('sim 1.0');
  });

  it('builds heartbeats and logouts with empty bodies, and general responses read by decodeTerminalResponse', () => {
    for (const edition of EDITIONS) {
      expect(read(heartbeatFrame(header(edition, 3))).header).toMatchObject({ messageId: MESSAGE.heartbeat, edition, serial: 3, bodyLength: 0 });
      expect(read(logoutFrame(header(edition, 4))).header).toMatchObject({ messageId: MESSAGE.logout, edition, serial: 4, bodyLength: 0 });
      const response = read(terminalResponseFrame(header(edition, 5), { serial: 0xbeef, messageId: MESSAGE.text }, 0));
      expect(response.header.messageId).toBe(MESSAGE.terminalResponse);
      expect(decodeTerminalResponse(response.body)).toEqual({ serial: 0xbeef, messageId: MESSAGE.text, result: 0 });
    }
  });

  it('escapes 0x7e and 0x7d wherever they fall: serial, body and check code', () => {
    // Serial 0x7e7d puts both bytes in the header; the frame is cut and read back whole.
    for (const edition of EDITIONS) {
      const wire = heartbeatFrame({ phone: '14712345678', edition, serial: 0x7e7d });
      expect(wire.toString('hex')).toContain('7d027d01');
      expect(read(wire).header.serial).toBe(0x7e7d);
    }
  });
});

describe('terminal location reports', () => {
  const fix: TerminalFix = { ts: Date.parse('2026-12-01T00:30:15.000Z'), lat: 31.298765, lon: 120.612345, speedKmh: 36.5, heading: 271, altitude: 12, ignition: true, loadState: 3, alarm: 0x0000_0002, items: [[0x01, Buffer.from([0, 0, 0x30, 0x39])], [0x31, Buffer.from([9])]] };

  it('builds a 0x0200 read back by decodeLocation in both editions: position, speed, heading, status bits, alarm, items', () => {
    for (const edition of EDITIONS) {
      const { header: h, body } = read(locationFrame(header(edition, 11), fix));
      expect(h).toMatchObject({ messageId: MESSAGE.location, edition, serial: 11 });
      const report = decodeLocation(body);
      expect(report).toMatchObject({ ts: fix.ts, lat: fix.lat, lon: fix.lon, speedKmh: 36.5, heading: 271, altitudeM: 12, ignition: true, positioned: true, loadState: 3, alarm: 2, mileageKm: 1234.5, satellites: 9 });
      expect(report.status).toBe(0x0303);
      expect([...report.items.keys()]).toEqual([0x01, 0x31]);
    }
  });

  it('says south and west by the status bits, and a negative altitude', () => {
    const south = { ...fix, lat: -33.8688, lon: -70.6693, altitude: -154, ignition: false, loadState: 0 as const, alarm: 0, items: [] };
    const report = decodeLocation(locationBody(south));
    expect(report).toMatchObject({ lat: -33.8688, lon: -70.6693, altitudeM: -154, ignition: false, loadState: 0, alarm: 0 });
    expect(report.status & 0x0c).toBe(0x0c);
    expect(decodeLocation(locationBody({ ...south, lat: 33.8688 })).status & 0x0c).toBe(0x08);
    expect(decodeLocation(locationBody({ ...south, lon: 70.6693 })).status & 0x0c).toBe(0x04);
  });

  it('writes the time as BCD YYMMDDhhmmss in GMT+8, to the second', () => {
    expect(toBcdTime(Date.parse('2026-12-01T00:30:15.999Z')).toString('hex')).toBe('261201083015');
    // 16:00 UTC on New Year's Eve is already the next year in Beijing.
    const newYear = Date.parse('2026-12-31T16:00:00.000Z');
    expect(toBcdTime(newYear).toString('hex')).toBe('270101000000');
    expect(decodeLocation(locationBody({ ...fix, ts: newYear + 750 })).ts).toBe(newYear);
    expect(() => toBcdTime(Date.parse('1999-12-31T15:59:59Z'))).toThrow(/outside 2000-2099/);
  });

  it('rounds speed to 1/10 km/h and heading to a whole degree 0-359; refuses what the fields cannot hold', () => {
    expect(decodeLocation(locationBody({ ...fix, speedKmh: 12.34, heading: 359.6 }))).toMatchObject({ speedKmh: 12.3, heading: 0 });
    expect(() => locationBody({ ...fix, lat: 91 })).toThrow(/not a latitude and longitude/);
    expect(() => locationBody({ ...fix, altitude: 40_000 })).toThrow(/altitude/);
    expect(() => locationBody({ ...fix, speedKmh: -1 })).toThrow(/speed/);
  });

  it('builds a 0x0704 blind-area batch read back by decodeBatch in both editions', () => {
    const fixes = [0, 1, 2].map((i) => ({ ...fix, ts: fix.ts + i * 15_000, lat: fix.lat + i / 1e4, lon: i === 2 ? -fix.lon : fix.lon }));
    for (const edition of EDITIONS) {
      const { header: h, body } = read(batchFrame(header(edition, 12), BATCH_TYPE.blindArea, fixes));
      expect(h).toMatchObject({ messageId: MESSAGE.batchLocation, edition, serial: 12 });
      const batch = decodeBatch(body);
      expect(batch.type).toBe(1);
      expect(batch.reports.map((r) => [r.ts, r.lat, r.lon])).toEqual(fixes.map((f) => [f.ts, f.lat, f.lon]));
    }
  });

  it('says how many reports fit one 0x0704 without sub-packages, and refuses a batch past 1,023 bytes', () => {
    const body = locationBody({ ...fix, items: wasteSimItems({ coverClosed: true, tipperUp: false, loadKg: 18_000 }) });
    expect(body.length).toBe(28 + 10 + 3);
    const bodies = Array.from({ length: 40 }, () => body);
    const fits = batchCapacity(bodies);
    // 3 bytes of count and type, then 2 + 41 bytes a report.
    expect(fits).toBe(Math.floor((MAX_BODY_BYTES - 3) / 43));
    expect(batchBody(BATCH_TYPE.blindArea, bodies.slice(0, fits)).length).toBeLessThanOrEqual(MAX_BODY_BYTES);
    expect(() => batchBody(BATCH_TYPE.blindArea, bodies.slice(0, fits + 1))).toThrow(/takes 1035 bytes; without sub-packages a body holds 1023/);
    expect(batchCapacity([])).toBe(0);
  });
});

describe('the simulator terminals\' vendor items', () => {
  it('carries the load in 0x55 (8 bytes, 1/10 kg) and cover closed / tipper up in bits 0 and 1 of 0xEC', () => {
    const report = decodeLocation(locationBody({ ts: Date.parse('2026-12-01T00:00:00Z'), lat: 31.3, lon: 120.6, speedKmh: 0, heading: 0, items: wasteSimItems({ coverClosed: false, tipperUp: true, loadKg: 31_415.5 }) }));
    expect(report.items.get(WASTE_SIM_LAYOUT.loadKg.item)?.toString('hex')).toBe('000000000004cb2b');
    expect(Number(report.items.get(0x55)!.readBigUInt64BE(0)) * 0.1).toBeCloseTo(31_415.5, 6);
    expect([...report.items.get(0xec)!]).toEqual([0b10]);
    expect([...decodeLocation(locationBody({ ts: report.ts, lat: 31.3, lon: 120.6, speedKmh: 0, heading: 0, items: wasteSimItems({ coverClosed: true, tipperUp: false }) })).items.get(0xec)!]).toEqual([0b01]);
    expect(wasteSimItems({})).toEqual([]);
  });
});

describe('retransmission', () => {
  it('waits T(n+1) = T(n) × (n+1) before each retransmission', () => {
    expect(retransmissionTimeouts(10_000, 3)).toEqual([10_000, 20_000, 60_000, 240_000]);
    expect(retransmissionTimeouts(5_000, 0)).toEqual([5_000]);
  });
});

describe('what the platform sends', () => {
  /** A platform message as the gateway writes it. */
  const platform = (messageId: number, body: Buffer, edition: 2013 | 2019 = 2013, serial = 9) => {
    const wire = frame(writeMessage({ messageId, edition, phone: '14712345678', serial }, body));
    return new FrameSplitter(4096).push(wire).frames[0]!;
  };

  it('reads 0x8001 and 0x8100 (with the code on success, none on "terminal already registered")', () => {
    for (const edition of EDITIONS) {
      expect(parsePlatformMessage(platform(MESSAGE.platformResponse, platformResponse(0x7e7d, MESSAGE.location, RESULT.ok), edition))).toMatchObject({ kind: 'response', serial: 0x7e7d, messageId: MESSAGE.location, result: 0, header: { edition, phone: '14712345678' } });
      expect(parsePlatformMessage(platform(MESSAGE.registrationResponse, registrationResponse(3, REGISTRATION_RESULT.ok, 'k3y~code'), edition))).toMatchObject({ kind: 'registration', serial: 3, result: 0, code: 'k3y~code' });
      expect(parsePlatformMessage(platform(MESSAGE.registrationResponse, registrationResponse(4, REGISTRATION_RESULT.terminalRegistered), edition))).toMatchObject({ kind: 'registration', serial: 4, result: 3, code: null });
    }
  });

  it('reads a 0x8300 text: flag and GBK text in 2013; flag, text type and text in 2019', () => {
    const text = '请盖好篷布 cover the load';
    expect(parsePlatformMessage(platform(MESSAGE.text, Buffer.concat([Buffer.from([0x0c]), gbkEncode(text)])))).toMatchObject({ kind: 'text', flag: 0x0c, textType: null, text, header: { serial: 9 } });
    expect(parsePlatformMessage(platform(MESSAGE.text, Buffer.concat([Buffer.from([0x04, 1]), gbkEncode(text)]), 2019))).toMatchObject({ kind: 'text', flag: 0x04, textType: 1, text });
  });

  it('hands any other message over as it is, and refuses a broken frame with a FrameError', () => {
    expect(parsePlatformMessage(platform(0x8103, Buffer.from([1, 2, 3])))).toMatchObject({ kind: 'other', header: { messageId: 0x8103 }, body: Buffer.from([1, 2, 3]) });
    const content = Buffer.from(platform(MESSAGE.platformResponse, platformResponse(1, MESSAGE.heartbeat, 0)));
    content[content.length - 1]! ^= 0xff;
    expect(() => parsePlatformMessage(content)).toThrow(FrameError);
    expect(() => parsePlatformMessage(platform(MESSAGE.platformResponse, Buffer.from([1, 2, 3])))).toThrow(/holds 5 bytes; this one 3/);
  });
});
