// JT/T 808 headers and bodies built here and read back: both editions' headers, a location report
// with its status bits and additional items, a batch upload, and what is refused.
import { describe, expect, it } from 'vitest';
import { frame, verified } from '../../../services/jt808/frame.ts';
import { readHeader, writeMessage } from '../../../services/jt808/header.ts';
import { bcdTime, decodeBatch, decodeLocation } from '../../../services/jt808/location.ts';
import { MESSAGE, decodeRegistration, decodeTerminalResponse, platformResponse, registrationResponse } from '../../../services/jt808/session.ts';

/** A 0x0200 body: the 28 basic bytes and the given additional items. */
function locationBody(o: { alarm?: number; status: number; lat: number; lon: number; alt?: number; speed10: number; heading: number; time: string; items?: [number, number[]][] }): Buffer {
  const basic = Buffer.alloc(28);
  basic.writeUInt32BE(o.alarm ?? 0, 0);
  basic.writeUInt32BE(o.status, 4);
  basic.writeUInt32BE(Math.round(Math.abs(o.lat) * 1e6), 8);
  basic.writeUInt32BE(Math.round(Math.abs(o.lon) * 1e6), 12);
  basic.writeInt16BE(o.alt ?? 0, 16);
  basic.writeUInt16BE(o.speed10, 18);
  basic.writeUInt16BE(o.heading, 20);
  Buffer.from(o.time, 'hex').copy(basic, 22);
  return Buffer.concat([basic, ...(o.items ?? []).map(([id, value]) => Buffer.from([id, value.length, ...value]))]);
}

describe('JT/T 808 headers', () => {
  it('reads a 2013 header (BCD[6] phone) and a 2019 header (version byte, BCD[10] phone) as written', () => {
    const body = Buffer.from([1, 2, 3]);
    for (const edition of [2013, 2019] as const) {
      const message = verified(frame(writeMessage({ messageId: MESSAGE.location, edition, phone: '13800138000', serial: 65535 }, body)).subarray(1, -1));
      const { header, body: read } = readHeader(message);
      expect(header).toMatchObject({ messageId: 0x0200, edition, phone: '13800138000', serial: 65535, bodyLength: 3, subpackage: null, protocolVersion: edition === 2019 ? 1 : null });
      expect(read).toEqual(body);
    }
  });

  it('reads sub-package fields, and refuses a package numbered 0 or past its count', () => {
    const message = (count: number, index: number) => {
      const head = Buffer.from('0200' + '2001' + '013800138000' + '0007', 'hex');
      const sub = Buffer.alloc(4);
      sub.writeUInt16BE(count, 0);
      sub.writeUInt16BE(index, 2);
      return Buffer.concat([head, sub, Buffer.from([0xaa])]);
    };
    expect(readHeader(message(3, 2)).header.subpackage).toEqual({ count: 3, index: 2 });
    expect(() => readHeader(message(3, 0))).toThrow(/sub-package 0 of 3 does not exist/);
    expect(() => readHeader(message(3, 4))).toThrow(/sub-package 4 of 3/);
    expect(() => readHeader(message(0, 0))).toThrow(/does not exist/);
  });

  it('refuses a body longer or shorter than the header announces, and a header cut short', () => {
    const message = writeMessage({ messageId: MESSAGE.heartbeat, edition: 2013, phone: '1', serial: 1 }, Buffer.from([1, 2]));
    expect(() => readHeader(Buffer.concat([message, Buffer.from([0])]))).toThrow(/announces a body of 2 bytes; the frame holds 3/);
    expect(() => readHeader(message.subarray(0, 13))).toThrow(/announces a body of 2 bytes; the frame holds 1/);
    expect(() => readHeader(message.subarray(0, 8))).toThrow(/shortest header is 12/);
  });
});

describe('JT/T 808 location reports', () => {
  it('reads position, speed, heading and GMT+8 time, south and west from the status bits, ACC and load state, and the standard items', () => {
    // Status: ACC on (bit 0), positioned (1), south (2), west (3), fully loaded (bits 8-9 = 11).
    const body = locationBody({ status: 0x030f, lat: 33.8688, lon: 151.2093, alt: 58, speed10: 365, heading: 271, time: '261201083015', items: [[0x01, [0, 0, 0x30, 0x39]], [0x30, [25]], [0x31, [12]], [0xe1, [1, 2]]] });
    const report = decodeLocation(body);
    expect(report).toMatchObject({ lat: -33.8688, lon: -151.2093, altitudeM: 58, speedKmh: 36.5, heading: 271, ignition: true, positioned: true, loadState: 3, mileageKm: 1234.5, signal: 25, satellites: 12 });
    expect(report.ts).toBe(Date.parse('2026-12-01T08:30:15+08:00'));
    expect(report.items.get(0xe1)).toEqual(Buffer.from([1, 2]));
  });

  it('reads a blind-area batch upload (0x0704 type 1) report by report', () => {
    const reports = [0, 1, 2].map((i) => locationBody({ status: 0x03, lat: 31.3, lon: 120.6 + i / 1000, speed10: 300, heading: 90, time: `26120108300${i}` }));
    const body = Buffer.concat([Buffer.from([0, 3, 1]), ...reports.flatMap((r) => [Buffer.from([0, r.length]), r])]);
    const batch = decodeBatch(body);
    expect(batch.type).toBe(1);
    expect(batch.reports.map((r) => r.lon)).toEqual([120.6, 120.601, 120.602]);
    expect(() => decodeBatch(Buffer.concat([body, Buffer.from([0])]))).toThrow(/1 bytes after its 3 reports/);
    expect(() => decodeBatch(body.subarray(0, body.length - 5))).toThrow(/announces 28 bytes; 23 follow/);
  });

  it('refuses a time that is no date, and an additional item longer than what follows', () => {
    expect(() => bcdTime(Buffer.from('260230120000', 'hex'))).toThrow(/not a real date/);
    expect(() => bcdTime(Buffer.from('26123a120000', 'hex'))).toThrow(/not BCD/);
    const body = locationBody({ status: 2, lat: 31, lon: 120, speed10: 0, heading: 0, time: '261201083015', items: [[0x01, [0, 0, 0, 1]]] });
    expect(() => decodeLocation(body.subarray(0, body.length - 1))).toThrow(/item 0x01 announces 4 bytes; 3 follow/);
    expect(() => decodeLocation(body.subarray(0, 20))).toThrow(/at least 28 bytes/);
  });
});

describe('JT/T 808 responses', () => {
  it('builds the platform general response and the registration response, and reads the terminal\'s', () => {
    expect(platformResponse(0x1234, MESSAGE.location, 0).toString('hex')).toBe('1234020000');
    expect(registrationResponse(7, 0, 'AUTH1').toString('hex')).toBe(`000700${Buffer.from('AUTH1').toString('hex')}`);
    expect(registrationResponse(7, 4, 'AUTH1').toString('hex')).toBe('000704');
    expect(decodeTerminalResponse(Buffer.from('0001830000', 'hex'))).toEqual({ serial: 1, messageId: 0x8300, result: 0 });
  });
});

describe('JT/T 808 registration', () => {
  it('reads a 2011 registration (model BYTE[8], JT/T 808-2011 §8.5), whose header is a 2013 one, by its shorter body', () => {
    const body = Buffer.concat([Buffer.from('0020000a', 'hex'), Buffer.from('70107'), Buffer.from('MD-200\0\0'), Buffer.from('2366104'), Buffer.from([1]), Buffer.from('cbd5453132333435', 'hex')]);
    expect(decodeRegistration(body, 2013)).toEqual({ province: 32, city: 10, manufacturer: '70107', model: 'MD-200', terminalId: '2366104', plateColour: 1, plate: '苏E12345' });
  });
});
