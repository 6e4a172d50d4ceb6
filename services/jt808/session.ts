// Session messages of JT/T 808: terminal registration 0x0100 and its answer 0x8100, authentication
// 0x0102, terminal and platform general responses 0x0001 / 0x8001 (JT/T 808-2013 §8.1-8.5, §8.8;
// the 2019 edition's longer fields per JT/T 808-2019 §8.5 and §8.8). Strings are GBK.
import { FrameError } from './frame.ts';
import { gbkText } from './gbk.ts';

export const MESSAGE = {
  terminalResponse: 0x0001,
  heartbeat: 0x0002,
  logout: 0x0003,
  registration: 0x0100,
  authentication: 0x0102,
  location: 0x0200,
  batchLocation: 0x0704,
  platformResponse: 0x8001,
  registrationResponse: 0x8100,
  text: 0x8300,
} as const;

/** Result of a platform general response (0x8001, table 5). */
export const RESULT = { ok: 0, failed: 1, malformed: 2, unsupported: 3, alarmAcknowledged: 4 } as const;

/** Result of a registration response (0x8100, table 9). */
export const REGISTRATION_RESULT = { ok: 0, vehicleRegistered: 1, noSuchVehicle: 2, terminalRegistered: 3, noSuchTerminal: 4 } as const;



export interface Registration {
  province: number;
  city: number;
  manufacturer: string;
  model: string;
  terminalId: string;
  plateColour: number;
  /** The plate (or the VIN when plateColour is 0), GBK. */
  plate: string;
}

/**
 * Decodes a 0x0100 body: 2013 manufacturer BYTE[5], model BYTE[20], id BYTE[7]; 2019 BYTE[11],
 * [30], [30]. A 2011 terminal's header reads like a 2013 one, but its model is BYTE[8]
 * (JT/T 808-2011 §8.5): a body too short for the 2013 fields (37 bytes and the plate) is read so.
 */
export function decodeRegistration(body: Buffer, edition: 2013 | 2019): Registration {
  const [manufacturerBytes, modelBytes, idBytes] = edition === 2019 ? [11, 30, 30] : body.length < 37 ? [5, 8, 7] : [5, 20, 7];
  const fixed = 4 + manufacturerBytes + modelBytes + idBytes + 1;
  if (body.length < fixed) throw new FrameError('truncated', `a ${edition} registration holds at least ${fixed} bytes; this one ${body.length}`);
  let offset = 4;
  const field = (size: number) => gbkText(body.subarray(offset, (offset += size)));
  const manufacturer = field(manufacturerBytes);
  const model = field(modelBytes);
  const terminalId = field(idBytes);
  return { province: body.readUInt16BE(0), city: body.readUInt16BE(2), manufacturer, model, terminalId, plateColour: body[offset]!, plate: gbkText(body.subarray(offset + 1)) };
}

/** Decodes a 0x0102 body: 2013 the code alone; 2019 its length BYTE, the code, IMEI BYTE[15], software version BYTE[20]. */
export function decodeAuthentication(body: Buffer, edition: 2013 | 2019): { code: string; imei?: string } {
  if (edition === 2013) return { code: gbkText(body) };
  const length = body[0];
  if (length === undefined || body.length < 1 + length) throw new FrameError('truncated', 'the authentication code is shorter than its length byte says');
  const imei = body.length >= 1 + length + 15 ? gbkText(body.subarray(1 + length, 1 + length + 15)) : undefined;
  return { code: gbkText(body.subarray(1, 1 + length)), ...(imei ? { imei } : {}) };
}

/** A 0x8001 body: the serial and id of the message answered, and the result. */
export function platformResponse(serial: number, messageId: number, result: number): Buffer {
  const body = Buffer.alloc(5);
  body.writeUInt16BE(serial & 0xffff, 0);
  body.writeUInt16BE(messageId, 2);
  body[4] = result;
  return body;
}

/** A 0x8100 body: the registration's serial, the result, and the authentication code when accepted. */
export function registrationResponse(serial: number, result: number, code?: string): Buffer {
  const head = Buffer.alloc(3);
  head.writeUInt16BE(serial & 0xffff, 0);
  head[2] = result;
  return result === REGISTRATION_RESULT.ok && code ? Buffer.concat([head, Buffer.from(code, 'latin1')]) : head;
}

/** Decodes a 0x0001 body: the serial and id the terminal answers, and its result. */
export function decodeTerminalResponse(body: Buffer): { serial: number; messageId: number; result: number } {
  if (body.length !== 5) throw new FrameError('wrong_length', `a terminal general response holds 5 bytes; this one ${body.length}`);
  return { serial: body.readUInt16BE(0), messageId: body.readUInt16BE(2), result: body[4]! };
}
