// Location reports: 0x0200 (JT/T 808-2013 §8.18) and the batch upload 0x0704 (§8.50, type 1 a
// blind-area back-fill). The basic information is 28 bytes: alarm flags DWORD, status DWORD,
// latitude and longitude DWORD in 1e-6 degrees (south and west by status bits 2 and 3), altitude
// WORD in m, speed WORD in 1/10 km/h, direction WORD 0-359, time BCD[6] YYMMDDhhmmss in GMT+8;
// then additional items, each id BYTE, length BYTE, value.
import { FrameError } from './frame.ts';
import { fromBcd } from './header.ts';

export interface LocationReport {
  /** Epoch ms. */
  ts: number;
  lat: number;
  lon: number;
  altitudeM: number;
  speedKmh: number;
  heading: number;
  alarm: number;
  status: number;
  /** Status bit 0 (ACC on). */
  ignition: boolean;
  /** Status bit 1: the fix is valid. */
  positioned: boolean;
  /** Status bits 8-9: 0 empty, 1 half loaded, 3 fully loaded (2 reserved). */
  loadState: number;
  /** Additional items by id, as sent (the standard's and vendors'). */
  items: Map<number, Buffer>;
  /** 0x01: mileage in km (DWORD in 1/10 km). */
  mileageKm?: number;
  /** 0x03: speed from the tachograph in km/h (WORD in 1/10 km/h). */
  tachographKmh?: number;
  /** 0x30: wireless signal strength (BYTE). */
  signal?: number;
  /** 0x31: GNSS satellites in view (BYTE). */
  satellites?: number;
}

const BASIC_BYTES = 28;
/** China Standard Time, in which the terminal's clock is read (§8.18, table 23: "GMT+8"). */
const GMT8_MS = 8 * 3_600_000;

/** Epoch ms of BCD YYMMDDhhmmss read in GMT+8; throws when the digits are no time. */
export function bcdTime(bytes: Uint8Array): number {
  const digits = fromBcd(bytes);
  const m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)$/.exec(digits);
  if (!m) throw new FrameError('wrong_length', `time ${digits} is not BCD YYMMDDhhmmss`);
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(2000 + year, month - 1, day, hour, minute, second) - GMT8_MS;
  const back = new Date(ms + GMT8_MS);
  if (back.getUTCMonth() !== month - 1 || back.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) {
    throw new FrameError('wrong_length', `time ${digits} is not a real date and time`);
  }
  return ms;
}

/** Decodes one location report (a 0x0200 body, or one item of a 0x0704). */
export function decodeLocation(body: Buffer): LocationReport {
  if (body.length < BASIC_BYTES) throw new FrameError('truncated', `a location report holds at least ${BASIC_BYTES} bytes; this one ${body.length}`);
  const alarm = body.readUInt32BE(0);
  const status = body.readUInt32BE(4);
  const lat = (body.readUInt32BE(8) / 1e6) * (status & 0x04 ? -1 : 1);
  const lon = (body.readUInt32BE(12) / 1e6) * (status & 0x08 ? -1 : 1);
  const report: LocationReport = {
    ts: bcdTime(body.subarray(22, 28)),
    lat,
    lon,
    altitudeM: body.readInt16BE(16),
    speedKmh: body.readUInt16BE(18) / 10,
    heading: body.readUInt16BE(20),
    alarm,
    status,
    ignition: (status & 0x01) !== 0,
    positioned: (status & 0x02) !== 0,
    loadState: (status >> 8) & 0x03,
    items: new Map(),
  };
  for (let offset = BASIC_BYTES; offset < body.length; ) {
    if (offset + 2 > body.length) throw new FrameError('truncated', `additional item at byte ${offset} has no length`);
    const id = body[offset]!;
    const length = body[offset + 1]!;
    const value = body.subarray(offset + 2, offset + 2 + length);
    if (value.length !== length) throw new FrameError('truncated', `additional item 0x${id.toString(16).padStart(2, '0')} announces ${length} bytes; ${value.length} follow`);
    report.items.set(id, value);
    if (id === 0x01 && length === 4) report.mileageKm = value.readUInt32BE(0) / 10;
    else if (id === 0x03 && length === 2) report.tachographKmh = value.readUInt16BE(0) / 10;
    else if (id === 0x30 && length === 1) report.signal = value[0]!;
    else if (id === 0x31 && length === 1) report.satellites = value[0]!;
    offset += 2 + length;
  }
  return report;
}

/** Decodes a 0x0704 body: its type (0 normal, 1 blind-area back-fill) and its reports. */
export function decodeBatch(body: Buffer): { type: number; reports: LocationReport[] } {
  if (body.length < 3) throw new FrameError('truncated', `a batch upload holds at least 3 bytes; this one ${body.length}`);
  const count = body.readUInt16BE(0);
  const type = body[2]!;
  const reports: LocationReport[] = [];
  let offset = 3;
  for (let i = 0; i < count; i++) {
    if (offset + 2 > body.length) throw new FrameError('truncated', `the batch announces ${count} reports; it holds ${i}`);
    const length = body.readUInt16BE(offset);
    const item = body.subarray(offset + 2, offset + 2 + length);
    if (item.length !== length) throw new FrameError('truncated', `report ${i} of the batch announces ${length} bytes; ${item.length} follow`);
    reports.push(decodeLocation(item));
    offset += 2 + length;
  }
  if (offset !== body.length) throw new FrameError('wrong_length', `the batch holds ${body.length - offset} bytes after its ${count} reports`);
  return { type, reports };
}
