// The terminal's side of JT/T 808: the messages a vehicle terminal sends, as escaped frames ready
// for the wire, and a reader of what the platform sends back. Used by the city simulator, the
// gateway's tests and the benchmarks, so that they speak to the gateway as a terminal does. Built
// on the codec (frame.ts, header.ts) and read back by it in test/services/jt808/terminal.test.ts.
// Pure: no I/O.
import { gbkEncode, gbkText } from './gbk.ts';
import { FrameError, frame, verified } from './frame.ts';
import { readHeader, writeMessage, type Header } from './header.ts';
import { MESSAGE, REGISTRATION_RESULT, type Registration } from './session.ts';

export type Edition = 2013 | 2019;

/** What every message header of one terminal carries; the serial numbers its messages (§4.4.3). */
export interface TerminalHeader {
  phone: string;
  edition: Edition;
  serial: number;
  /** 2019 only: the protocol version byte (1 for the first 2019 version). */
  protocolVersion?: number;
}

/** A body without sub-packages holds at most 1,023 bytes: the length is attribute bits 0-9 (§4.4.3). */
export const MAX_BODY_BYTES = 0x03ff;

/** 0x0704 batch types (JT/T 808-2013 §8.50): 0 normal reports, 1 a blind-area back-fill. */
export const BATCH_TYPE = { normal: 0, blindArea: 1 } as const;

// --- GBK -------------------------------------------------------------------------------------

export { gbkEncode } from './gbk.ts';

/** A fixed-size field (BYTE[n]): the text in GBK, padded with 0x00 as the standard asks ("后补 0x00"). */
function fixedField(value: string, size: number, name: string): Buffer {
  const bytes = gbkEncode(value);
  if (bytes.length > size) throw new Error(`${name} "${value}" takes ${bytes.length} bytes; the field holds ${size}`);
  return Buffer.concat([bytes, Buffer.alloc(size - bytes.length)]);
}

function word(value: number, name: string): Buffer {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new Error(`${name} ${value} is not a WORD (0-65535)`);
  const out = Buffer.alloc(2);
  out.writeUInt16BE(value, 0);
  return out;
}

function byte(value: number, name: string): Buffer {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) throw new Error(`${name} ${value} is not a BYTE (0-255)`);
  return Buffer.from([value]);
}

/** Header and body as the escaped frame, flags included. */
function message(header: TerminalHeader, messageId: number, body: Buffer): Buffer {
  return frame(writeMessage({ messageId, edition: header.edition, phone: header.phone, serial: header.serial, protocolVersion: header.protocolVersion ?? null }, body));
}

// --- Session messages --------------------------------------------------------------------------

/**
 * A 0x0100 body (JT/T 808-2013 §8.5; the 2019 edition widens three fields): province and city WORD (GB/T 2260: the
 * first two digits of the division code, and the last four), manufacturer BYTE[5], model BYTE[20],
 * terminal id BYTE[7] in 2013, BYTE[11], [30], [30] in 2019, each padded with 0x00; plate colour
 * BYTE (JT/T 415; 0: no plate, the plate field holds the VIN); the plate as GBK, to the end.
 */
export function registrationBody(r: Registration, edition: Edition): Buffer {
  const [manufacturerBytes, modelBytes, idBytes] = edition === 2019 ? [11, 30, 30] : [5, 20, 7];
  return Buffer.concat([
    word(r.province, 'province'),
    word(r.city, 'city'),
    fixedField(r.manufacturer, manufacturerBytes, 'manufacturer'),
    fixedField(r.model, modelBytes, 'model'),
    fixedField(r.terminalId, idBytes, 'terminal id'),
    byte(r.plateColour, 'plate colour'),
    gbkEncode(r.plate),
  ]);
}

export function registrationFrame(header: TerminalHeader, r: Registration): Buffer {
  return message(header, MESSAGE.registration, registrationBody(r, header.edition));
}

export interface Authentication {
  /** The code from the 0x8100 answer, or provisioned. */
  code: string;
  /** 2019 only: IMEI BYTE[15]. */
  imei?: string;
  /** 2019 only: software version BYTE[20]. */
  softwareVersion?: string;
}

/**
 * A 0x0102 body. 2013 (§8.8): the code as the whole body. 2019: its length
 * BYTE, the code, IMEI BYTE[15] and software version BYTE[20], padded with 0x00.
 */
export function authenticationBody(a: Authentication, edition: Edition): Buffer {
  const code = gbkEncode(a.code);
  if (edition === 2013) return code;
  if (code.length > 0xff) throw new Error(`an authentication code of ${code.length} bytes does not fit the 2019 length BYTE`);
  return Buffer.concat([Buffer.from([code.length]), code, fixedField(a.imei ?? '', 15, 'IMEI'), fixedField(a.softwareVersion ?? '', 20, 'software version')]);
}

export function authenticationFrame(header: TerminalHeader, a: Authentication): Buffer {
  return message(header, MESSAGE.authentication, authenticationBody(a, header.edition));
}

/** 0x0002 (§8.3): the body is empty. */
export function heartbeatFrame(header: TerminalHeader): Buffer {
  return message(header, MESSAGE.heartbeat, Buffer.alloc(0));
}

/** 0x0003 logout (§8.7): the body is empty. */
export function logoutFrame(header: TerminalHeader): Buffer {
  return message(header, MESSAGE.logout, Buffer.alloc(0));
}

/** Results of a terminal general response 0x0001 (§8.1, table 4). */
export const TERMINAL_RESULT = { ok: 0, failed: 1, malformed: 2, unsupported: 3 } as const;

/** 0x0001 (§8.1): the serial and id of the platform message answered, and the result. */
export function terminalResponseFrame(header: TerminalHeader, answered: { serial: number; messageId: number }, result: number): Buffer {
  return message(header, MESSAGE.terminalResponse, Buffer.concat([word(answered.serial & 0xffff, 'serial'), word(answered.messageId, 'message id'), byte(result, 'result')]));
}

// --- Location reports --------------------------------------------------------------------------

/** A fix as a terminal reports it in 0x0200 (JT/T 808-2013 §8.18). */
export interface TerminalFix {
  /** Epoch ms; sent to the second (BCD YYMMDDhhmmss in GMT+8), the milliseconds dropped. */
  ts: number;
  lat: number;
  lon: number;
  /** km/h, sent in 1/10 km/h. */
  speedKmh: number;
  /** Degrees, sent as a whole number 0-359. */
  heading: number;
  /** Metres; negative below sea level (the codec reads the WORD as signed). Default 0. */
  altitude?: number;
  /** Status bit 0, ACC on. */
  ignition?: boolean;
  /** Status bit 1, the fix is valid. Default true. */
  positioned?: boolean;
  /** Status bits 8-9: 0 empty, 1 half loaded, 3 fully loaded. Default 0. */
  loadState?: 0 | 1 | 3;
  /** Alarm flags DWORD (table 24). Default 0. */
  alarm?: number;
  /** Further status bits (table 25), or-ed with the ones above. */
  status?: number;
  /** Additional items (table 27) in the order given: id BYTE, then the value (up to 255 bytes). */
  items?: Iterable<readonly [number, Uint8Array]>;
}

/** China Standard Time, the terminal's clock (§8.18, table 23: "GMT+8"). */
const GMT8_MS = 8 * 3_600_000;

/** Epoch ms as BCD[6] YYMMDDhhmmss in GMT+8, to the second (the inverse of location.ts bcdTime). */
export function toBcdTime(ts: number): Buffer {
  const t = new Date(Math.floor(ts / 1000) * 1000 + GMT8_MS);
  const year = t.getUTCFullYear();
  if (!Number.isFinite(ts) || year < 2000 || year > 2099) throw new Error(`time ${ts} is outside 2000-2099, which a two-digit BCD year cannot say`);
  const two = (n: number) => String(n).padStart(2, '0');
  return Buffer.from(`${two(year - 2000)}${two(t.getUTCMonth() + 1)}${two(t.getUTCDate())}${two(t.getUTCHours())}${two(t.getUTCMinutes())}${two(t.getUTCSeconds())}`, 'hex');
}

/** A 0x0200 body (or one item of a 0x0704): the 28 basic bytes (table 23), then the additional items. */
export function locationBody(fix: TerminalFix): Buffer {
  if (!(Math.abs(fix.lat) <= 90) || !(Math.abs(fix.lon) <= 180)) throw new Error(`position ${fix.lat}, ${fix.lon} is not a latitude and longitude`);
  const speed = Math.round(fix.speedKmh * 10);
  if (!(speed >= 0 && speed <= 0xffff)) throw new Error(`speed ${fix.speedKmh} km/h does not fit a WORD in 1/10 km/h`);
  const altitude = Math.round(fix.altitude ?? 0);
  if (!(altitude >= -0x8000 && altitude <= 0x7fff)) throw new Error(`altitude ${fix.altitude} m does not fit the WORD`);
  const loadState = fix.loadState ?? 0;
  // Status (table 25): bit 0 ACC, bit 1 positioned, bit 2 south, bit 3 west, bits 8-9 load state.
  let status = (fix.status ?? 0) & ~0x030f;
  if (fix.ignition) status |= 0x01;
  if (fix.positioned ?? true) status |= 0x02;
  if (fix.lat < 0) status |= 0x04;
  if (fix.lon < 0) status |= 0x08;
  status |= loadState << 8;
  const basic = Buffer.alloc(28);
  basic.writeUInt32BE((fix.alarm ?? 0) >>> 0, 0);
  basic.writeUInt32BE(status >>> 0, 4);
  basic.writeUInt32BE(Math.round(Math.abs(fix.lat) * 1e6), 8);
  basic.writeUInt32BE(Math.round(Math.abs(fix.lon) * 1e6), 12);
  basic.writeInt16BE(altitude, 16);
  basic.writeUInt16BE(speed, 18);
  basic.writeUInt16BE(((Math.round(fix.heading) % 360) + 360) % 360, 20);
  toBcdTime(fix.ts).copy(basic, 22);
  const parts: Buffer[] = [basic];
  for (const [id, value] of fix.items ?? []) {
    if (value.length > 0xff) throw new Error(`additional item 0x${id.toString(16)} of ${value.length} bytes does not fit its length BYTE`);
    parts.push(byte(id, 'additional item id'), Buffer.from([value.length]), Buffer.from(value));
  }
  return Buffer.concat(parts);
}

/** A 0x0200 of a fix, or of a body locationBody() built before (a terminal keeps its reports so). */
export function locationFrame(header: TerminalHeader, fix: TerminalFix | Buffer): Buffer {
  return message(header, MESSAGE.location, Buffer.isBuffer(fix) ? fix : locationBody(fix));
}

/** Bytes a 0x0704 body takes for these report bodies: count WORD, type BYTE, each report's length WORD and body. */
function batchBytes(bodies: readonly Buffer[]): number {
  return 3 + bodies.reduce((sum, body) => sum + 2 + body.length, 0);
}

/** How many of the leading report bodies fit one 0x0704 without sub-packages (at least one is always taken). */
export function batchCapacity(bodies: readonly Buffer[]): number {
  let bytes = 3;
  let n = 0;
  for (const body of bodies) {
    if (n > 0 && bytes + 2 + body.length > MAX_BODY_BYTES) break;
    bytes += 2 + body.length;
    n++;
  }
  return n;
}

/** A 0x0704 body: count WORD, type BYTE, then each report as its length WORD and a 0x0200 body. */
export function batchBody(type: number, reports: readonly (TerminalFix | Buffer)[]): Buffer {
  if (reports.length === 0) throw new Error('a batch upload holds at least one report');
  const bodies = reports.map((r) => (Buffer.isBuffer(r) ? r : locationBody(r)));
  const bytes = batchBytes(bodies);
  if (bytes > MAX_BODY_BYTES) throw new Error(`a batch of ${bodies.length} reports takes ${bytes} bytes; without sub-packages a body holds ${MAX_BODY_BYTES} (batchCapacity says how many fit)`);
  return Buffer.concat([word(bodies.length, 'count'), byte(type, 'batch type'), ...bodies.flatMap((body) => [word(body.length, 'report length'), body])]);
}

export function batchFrame(header: TerminalHeader, type: number, reports: readonly (TerminalFix | Buffer)[]): Buffer {
  return message(header, MESSAGE.batchLocation, batchBody(type, reports));
}

// --- Vendor items of the simulator's terminals ---------------------------------------------------

/**
 * Where the simulator's terminals (model WASTE-SIM) carry what JT/T 808 has no field for. The load
 * weight is GPS51's item 0x55: 8 bytes, unsigned big-endian, in 1/10 kg (SmallChi/JT808,
 * JT808_GPS51_Constants.cs: "载重扩展 8, 1/10千克"), so a gateway reading GPS51 terminals reads it
 * too. Cover and tipper have no published item: they go in item 0xEC of the vendor range 0xE1-0xFF
 * (table 27), one BYTE, bit 0 the cover closed, bit 1 the tipper raised. 0xE1 is avoided: GPS51,
 * whose 0x55 this borrows, sends its base stations there. The gateway's shipped layout "waste-sim"
 * (jt808/extensions.ts) reads exactly this.
 */
export const WASTE_SIM_LAYOUT = {
  model: 'WASTE-SIM',
  manufacturer: 'WSIM',
  loadKg: { item: 0x55, bytes: 8, kgPerUnit: 0.1 },
  body: { item: 0xec, bytes: 1, coverClosedBit: 0, tipperUpBit: 1 },
} as const;

/** The additional items of WASTE_SIM_LAYOUT for what a truck's sensors say (absent values, no item). */
export function wasteSimItems(sensors: { coverClosed?: boolean; tipperUp?: boolean; loadKg?: number }): [number, Buffer][] {
  const items: [number, Buffer][] = [];
  const { loadKg, body } = WASTE_SIM_LAYOUT;
  if (sensors.loadKg !== undefined) {
    const units = Math.round(sensors.loadKg / loadKg.kgPerUnit);
    if (!(units >= 0)) throw new Error(`load ${sensors.loadKg} kg is not a weight`);
    const value = Buffer.alloc(loadKg.bytes);
    value.writeBigUInt64BE(BigInt(units), 0);
    items.push([loadKg.item, value]);
  }
  if (sensors.coverClosed !== undefined || sensors.tipperUp !== undefined) {
    const bits = (sensors.coverClosed ? 1 << body.coverClosedBit : 0) | (sensors.tipperUp ? 1 << body.tipperUpBit : 0);
    items.push([body.item, Buffer.from([bits])]);
  }
  return items;
}

// --- Retransmission -----------------------------------------------------------------------------

/**
 * How long a terminal waits for the answer to each send of one message (JT/T 808-2013 §6.1, TCP messages):
 * the first timeout is terminal parameter 0x0002 (TCP response timeout), each retransmission
 * waits T(n+1) = T(n) × (n+1), and parameter 0x0003 is the number of retransmissions. A message
 * still unanswered after the last one is kept and sent again once the terminal is back.
 */
export function retransmissionTimeouts(timeoutMs: number, retransmissions: number): number[] {
  const out = [timeoutMs];
  for (let n = 1; n <= retransmissions; n++) out.push(out[n - 1]! * (n + 1));
  return out;
}

// --- What the platform sends ---------------------------------------------------------------------

export type PlatformMessage =
  | { kind: 'response'; header: Header; serial: number; messageId: number; result: number }
  | { kind: 'registration'; header: Header; serial: number; result: number; code: string | null }
  | { kind: 'text'; header: Header; flag: number; textType: number | null; text: string }
  | { kind: 'other'; header: Header; body: Buffer };

/** A 0x8001 body (§8.2, table 5): serial and id of the terminal message answered, and the result. */
export function decodePlatformResponse(body: Buffer): { serial: number; messageId: number; result: number } {
  if (body.length !== 5) throw new FrameError('wrong_length', `a platform general response holds 5 bytes; this one ${body.length}`);
  return { serial: body.readUInt16BE(0), messageId: body.readUInt16BE(2), result: body[4]! };
}

/** A 0x8100 body (§8.6): serial of the registration, result, and on success the authentication code (STRING). */
export function decodeRegistrationResponse(body: Buffer): { serial: number; result: number; code: string | null } {
  if (body.length < 3) throw new FrameError('truncated', `a registration response holds at least 3 bytes; this one ${body.length}`);
  const result = body[2]!;
  return { serial: body.readUInt16BE(0), result, code: result === REGISTRATION_RESULT.ok ? gbkText(body.subarray(3)) : null };
}

/**
 * A 0x8300 body: 2013 (§8.37) the flag BYTE then the text (GBK STRING); 2019 adds a text type
 * BYTE (1 notice, 2 service) after the flag.
 */
export function decodeText(body: Buffer, edition: Edition): { flag: number; textType: number | null; text: string } {
  const start = edition === 2019 ? 2 : 1;
  if (body.length < start) throw new FrameError('truncated', `a ${edition} text message holds at least ${start} bytes; this one ${body.length}`);
  return { flag: body[0]!, textType: edition === 2019 ? body[1]! : null, text: gbkText(body.subarray(start)) };
}

/** One frame from the platform (its content between flags, still escaped, as FrameSplitter gives it). */
export function parsePlatformMessage(content: Buffer): PlatformMessage {
  const { header, body } = readHeader(verified(content));
  switch (header.messageId) {
    case MESSAGE.platformResponse:
      return { kind: 'response', header, ...decodePlatformResponse(body) };
    case MESSAGE.registrationResponse:
      return { kind: 'registration', header, ...decodeRegistrationResponse(body) };
    case MESSAGE.text:
      return { kind: 'text', header, ...decodeText(body, header.edition) };
    default:
      return { kind: 'other', header, body };
  }
}
