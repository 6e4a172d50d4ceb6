// Frames captured from real JT/T 808 terminals, as published in open-source projects' test suites
// (the hex is data; each cites where it came from). Traccar's Jt808ProtocolDecoderTest.java
// (traccar/traccar, formerly HuabaoProtocolDecoderTest.java; line numbers at 9e5c458ad0bf) holds
// its frames already unescaped, so where a frame contains 0x7d or 0x7e the wire form here is that
// frame escaped again. The values checked were decoded by hand from the standard (JT/T 808-2013
// §8.18: 1e-6 degrees, 1/10 km/h, BCD time in GMT+8), independently of this code.
import { describe, expect, it } from 'vitest';
import { FrameSplitter, verified } from '../../../services/jt808/frame.ts';
import { readHeader } from '../../../services/jt808/header.ts';
import { decodeBatch, decodeLocation } from '../../../services/jt808/location.ts';
import { MESSAGE, decodeAuthentication, decodeRegistration } from '../../../services/jt808/session.ts';

/** Header and body of a frame given as hex on the wire (flags included). */
function read(hex: string) {
  const { frames } = new FrameSplitter(4096).push(Buffer.from(hex, 'hex'));
  expect(frames).toHaveLength(1);
  return readHeader(verified(frames[0]!));
}

describe('frames from real terminals', () => {
  it('reads a 0x0200 from Brazil: south and west by the status bits, mileage (Traccar test, line 341)', () => {
    const { header, body } = read('7e020000220014012499170007000000000000400e012af16f02cbd2ba000000000000150101194257010400000077a97e');
    expect(header).toMatchObject({ messageId: MESSAGE.location, edition: 2013, phone: '1401249917', serial: 7 });
    const report = decodeLocation(body);
    expect(report).toMatchObject({ lat: -19.591535, lon: -46.912186, speedKmh: 0, heading: 0, positioned: true, ignition: false, mileageKm: 11.9 });
    expect(new Date(report.ts).toISOString()).toBe('2015-01-01T11:42:57.000Z');
  });

  it('reads a 0x0200 from the UK with the SOS alarm bit and a speed (Traccar test, line 338)', () => {
    const report = decodeLocation(read('7e0200002e094027587492000a000000010000000a03083db7001329f3000000140000130412164952010400000012360a0002341502cb0c20085c107e').body);
    expect(report).toMatchObject({ alarm: 1, lat: 50.871735, lon: -1.255923, speedKmh: 2, mileageKm: 1.8 });
    expect(report.items.get(0x36)?.toString('hex')).toBe('0002341502cb0c20085c');
  });

  it('reads a 0x0200 from Jakarta with signal strength and satellites (Traccar test, line 314)', () => {
    const report = decodeLocation(read('7e0200002c00160128561400030000000000040007005de13c065c6cdb00160000000017011710054201040000a9002a02000030011b310104e47e').body);
    expect(report).toMatchObject({ lat: -6.152508, lon: 106.720475, altitudeM: 22, ignition: true, mileageKm: 4326.4, signal: 27, satellites: 4 });
    expect(new Date(report.ts).toISOString()).toBe('2017-01-17T02:05:42.000Z');
  });

  it('reads a 0x0200 whose body holds 0x7d, sent escaped as 7d 01 (Traccar test, line 204)', () => {
    const { header, body } = read('7E0200008201215233475100030000000000000003015A7F6106CF8CEC003D0000000021071311481901040000005630011931011AE10200755D3D0601CC0024990A7D01A0032301CC002499099B2941FC01CC002499099B29430B01CC0024990A7D01A0290601CC0024990A7D01A015FD01CC0026220994506BFFFE157C010400000001F10C000000000000000000000000997E');
    expect(header).toMatchObject({ phone: '12152334751', serial: 3, bodyLength: 130 });
    expect(decodeLocation(body)).toMatchObject({ lat: 22.708065, lon: 114.265324, altitudeM: 61, mileageKm: 8.6, signal: 25, satellites: 26 });
  });

  it('reads a 0x0200 whose body holds 0x7e, sent escaped as 7d 02, with vendor items kept as sent (Traccar test, line 229)', () => {
    const report = decodeLocation(read('7E0200008E01917159043700B300000000800000030158990606CA0FD7000400000000211129111705010400000000CC14383938363037423831303230393031363239363830010D8001AA81021388820200858301148401AA8502189B8601338702007D028801338901148A0200998B1131323334353637383941424344454647488C04000200A88D0200828E0114A00B50353338662C5530323966037E').body);
    expect(report).toMatchObject({ lat: 22.583558, lon: 113.905623, ignition: true, signal: 13 });
    expect(report.items.get(0xa0)?.toString('latin1')).toBe('P538f,U029f');
  });

  it('reads a blind-area batch upload 0x0704 of 8 positions (Traccar test, line 299)', () => {
    const { header, body } = read('7E0704014301356777777707F5000801002600000000000000030159741206CBFD5001720000000116052709062401040000001D03020000002600000000000000030159746606CBFD50016B0000000116052709065301040000001D0302000000260000000000000003015975E406CBFE58013F0000000116052709072701040000001D0302000000260000000000000003015976DE06CBFF10012E0000000116052709075601040000001D0302000000260000000000000003015976BC06CBFED0012D0000000116052709083001040000001D0302000000260000000000000003015976FE06CBFEC001080000000116052709090001040000001D0302000000260000000000000003015976FE06CBFE7800FC0000000116052709093301040000001D0302000000260000000000000003015977A606CBFF3001080000000116052709100201040000001D030200001F7E');
    expect(header).toMatchObject({ messageId: MESSAGE.batchLocation, phone: '13567777777', serial: 2037 });
    const batch = decodeBatch(body);
    expect(batch.type).toBe(1);
    expect(batch.reports).toHaveLength(8);
    expect(batch.reports[0]).toMatchObject({ lat: 22.639634, lon: 114.031952, altitudeM: 370, heading: 1, mileageKm: 2.9, tachographKmh: 0 });
    expect(new Date(batch.reports[0]!.ts).toISOString()).toBe('2016-05-27T01:06:24.000Z');
    expect(batch.reports.at(-1)).toMatchObject({ lat: 22.64055, lon: 114.032432 });
    expect(new Date(batch.reports.at(-1)!.ts).toISOString()).toBe('2016-05-27T01:10:02.000Z');
  });

  it('reads a 2019-edition 0x0704 (version byte, BCD[10] phone) from Queensland (Traccar test, line 34)', () => {
    const { header, body } = read('7e0704402d0100000866496077582164881d0001000028000000000000000701a00192091f2a4700160000000226050916422701040000258230010031010e507e');
    expect(header).toMatchObject({ edition: 2019, protocolVersion: 1, phone: '866496077582164', serial: 34845 });
    const { type, reports } = decodeBatch(body);
    expect(type).toBe(0);
    expect(reports[0]).toMatchObject({ lat: -27.263378, lon: 153.037383, heading: 2, mileageKm: 960.2, satellites: 14 });
    expect(new Date(reports[0]!.ts).toISOString()).toBe('2026-05-09T08:42:27.000Z');
  });

  it('reads a 2013 registration with its GBK plate, and the authentication that followed it (Traccar test, lines 320 and 326)', () => {
    const registration = read('7E0100002D013511221122000500000000373031303748422D52303347424400000000000000000000003233363631303402CBD5424136383630387E');
    expect(registration.header).toMatchObject({ messageId: MESSAGE.registration, phone: '13511221122', serial: 5 });
    expect(decodeRegistration(registration.body, 2013)).toEqual({ province: 0, city: 0, manufacturer: '70107', model: 'HB-R03GBD', terminalId: '2366104', plateColour: 2, plate: '苏BA6860' });
    const authentication = read('7E0102000E013511221122000661757468656E7469636174696F6E3F7E');
    expect(authentication.header.serial).toBe(6);
    expect(decodeAuthentication(authentication.body, 2013)).toEqual({ code: 'authentication' });
  });

  it('reads a 2019 registration of a real tracker (Traccar test, line 31)', () => {
    const { header, body } = read('7e0100405c010000086649607758216452180000000000000000000000000000004d443330300000000000000000000000000000000000000000000000000038363634393630373735383231363400000000000000000000000000000004000000000000000000000000000000007a7e');
    expect(header).toMatchObject({ edition: 2019, phone: '866496077582164', serial: 21016 });
    expect(decodeRegistration(body, 2019)).toMatchObject({ model: 'MD300', terminalId: '866496077582164', plateColour: 4, plate: '' });
  });

  it('reads heartbeats, one whose check code is 0x7e sent as 7d 02 (Traccar test, line 344; SmallChi/JT808 JT808_0x0002Test.Test3)', () => {
    expect(read('7e0002000004304832546500b7ca7e').header).toMatchObject({ messageId: MESSAGE.heartbeat, phone: '43048325465', serial: 183, bodyLength: 0 });
    expect(read('7E00020000040021679287002B7D027E').header).toMatchObject({ messageId: MESSAGE.heartbeat, phone: '40021679287', serial: 43 });
  });
});

describe('random and mutated frames', () => {
  // The real frames above, each byte flipped, dropped or repeated at random, and random bytes: every
  // one either decodes or is refused with a FrameError; nothing else is ever thrown.
  const seeds = [
    '7e020000220014012499170007000000000000400e012af16f02cbd2ba000000000000150101194257010400000077a97e',
    '7e0704402d0100000866496077582164881d0001000028000000000000000701a00192091f2a4700160000000226050916422701040000258230010031010e507e',
    '7E0100002D013511221122000500000000373031303748422D52303347424400000000000000000000003233363631303402CBD5424136383630387E',
  ].map((hex) => Buffer.from(hex, 'hex'));

  function decodeAny(content: Buffer): void {
    const { header, body } = readHeader(verified(content));
    if (header.messageId === MESSAGE.location) decodeLocation(body);
    else if (header.messageId === MESSAGE.batchLocation) decodeBatch(body);
    else if (header.messageId === MESSAGE.registration) decodeRegistration(body, header.edition);
    else if (header.messageId === MESSAGE.authentication) decodeAuthentication(body, header.edition);
  }

  it('decodes or refuses with a reason each of 100,000, and never throws anything else', async () => {
    const { FrameError } = await import('../../../services/jt808/frame.ts');
    let seed = 808;
    const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    let decoded = 0;
    let refused = 0;
    let frames = 0;
    for (let i = 0; i < 100_000; i++) {
      let bytes: number[];
      if (i % 10 === 0) bytes = [0x7e, ...Array.from({ length: random(200) }, () => random(256)), 0x7e];
      else {
        bytes = [...seeds[i % seeds.length]!];
        for (let m = 0, n = 1 + random(4); m < n; m++) {
          const at = 1 + random(bytes.length - 2);
          const op = random(3);
          if (op === 0) bytes[at] = random(256);
          else if (op === 1) bytes.splice(at, 1);
          else bytes.splice(at, 0, bytes[at]!);
        }
      }
      for (const content of new FrameSplitter(4096).push(Buffer.from(bytes)).frames) {
        frames++;
        try {
          decodeAny(content);
          decoded++;
        } catch (error) {
          if (!(error instanceof FrameError)) throw error;
          refused++;
        }
      }
    }
    // A mutation that removes a flag leaves no frame to judge; every frame there was is accounted for.
    expect(frames).toBeGreaterThan(95_000);
    expect(decoded + refused).toBe(frames);
    expect(refused).toBeGreaterThan(90_000);
  });
});
