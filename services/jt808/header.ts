// The JT/T 808 message header. 2011/2013 (JT/T 808-2013 §4.4.3): message id WORD, body attributes
// WORD, terminal phone number BCD[6], serial number WORD, then, for a sub-package, the package
// count and number (WORD each). 2019 (JT/T 808-2019 §4.4.3): bit 14 of the attributes set, a
// protocol version BYTE after them, and the phone number as BCD[10]. WORDs are big-endian.
import { FrameError } from './frame.ts';

export interface Header {
  messageId: number;
  /** 2019 when the version flag (attribute bit 14) is set; else 2013 (2011 frames read the same). */
  edition: 2013 | 2019;
  /** Protocol version byte of a 2019 header (1 for the first 2019 version). */
  protocolVersion: number | null;
  /** The terminal's phone (SIM) number, leading zeros of the BCD field removed. */
  phone: string;
  serial: number;
  bodyLength: number;
  /** Attribute bits 10-12: 0 none; bit 10 means RSA-encrypted, which this gateway does not take. */
  encryption: number;
  subpackage: { count: number; index: number } | null;
}

/** BCD bytes as their decimal digits. */
export function fromBcd(bytes: Uint8Array): string {
  let digits = '';
  for (const byte of bytes) digits += (byte >> 4).toString(16) + (byte & 0x0f).toString(16);
  return digits;
}

/** Decimal digits as BCD bytes, left-padded with zeros to `size` bytes. */
export function toBcd(digits: string, size: number): Buffer {
  const padded = digits.padStart(size * 2, '0').slice(-size * 2);
  return Buffer.from(padded, 'hex');
}

/** Splits a message (header and body, check code removed) into its header and body. */
export function readHeader(message: Buffer): { header: Header; body: Buffer } {
  if (message.length < 12) throw new FrameError('truncated', `the message holds ${message.length} bytes; the shortest header is 12`);
  const messageId = message.readUInt16BE(0);
  const attributes = message.readUInt16BE(2);
  const edition = attributes & 0x4000 ? 2019 : 2013;
  let offset = 4;
  let protocolVersion: number | null = null;
  let phoneBytes = 6;
  if (edition === 2019) {
    protocolVersion = message[offset++]!;
    phoneBytes = 10;
  }
  const subpackaged = (attributes & 0x2000) !== 0;
  const headerLength = offset + phoneBytes + 2 + (subpackaged ? 4 : 0);
  if (message.length < headerLength) throw new FrameError('truncated', `the message holds ${message.length} bytes; its header alone is ${headerLength}`);
  const phoneDigits = fromBcd(message.subarray(offset, offset + phoneBytes));
  if (!/^\d+$/.test(phoneDigits)) throw new FrameError('wrong_length', `the terminal phone number ${phoneDigits} is not BCD digits`);
  offset += phoneBytes;
  const serial = message.readUInt16BE(offset);
  offset += 2;
  const subpackage = subpackaged ? { count: message.readUInt16BE(offset), index: message.readUInt16BE(offset + 2) } : null;
  if (subpackage) {
    // Packages are numbered from 1 (§4.4.3, table 2): a number 0 or past the count is no package
    // the gateway could put back in place.
    if (subpackage.count === 0 || subpackage.index === 0 || subpackage.index > subpackage.count) {
      throw new FrameError('wrong_length', `sub-package ${subpackage.index} of ${subpackage.count} does not exist (packages are numbered from 1 to their count)`);
    }
    offset += 4;
  }
  const bodyLength = attributes & 0x03ff;
  const body = message.subarray(offset);
  if (body.length !== bodyLength) throw new FrameError('wrong_length', `the header announces a body of ${bodyLength} bytes; the frame holds ${body.length}`);
  return {
    header: { messageId, edition, protocolVersion, phone: phoneDigits.replace(/^0+(?=\d)/, ''), serial, bodyLength, encryption: (attributes >> 10) & 0x07, subpackage },
    body,
  };
}

/** A message (header and body) in the edition the terminal speaks, for frame(). */
export function writeMessage(header: Pick<Header, 'messageId' | 'edition' | 'phone' | 'serial'> & { protocolVersion?: number | null }, body: Buffer): Buffer {
  if (body.length > 0x03ff) throw new Error(`a body of ${body.length} bytes needs sub-packages, which the gateway does not send`);
  const attributes = body.length | (header.edition === 2019 ? 0x4000 : 0);
  const start = Buffer.alloc(4);
  start.writeUInt16BE(header.messageId, 0);
  start.writeUInt16BE(attributes, 2);
  const version = header.edition === 2019 ? Buffer.from([header.protocolVersion ?? 1]) : Buffer.alloc(0);
  const serial = Buffer.alloc(2);
  serial.writeUInt16BE(header.serial & 0xffff, 0);
  return Buffer.concat([start, version, toBcd(header.phone, header.edition === 2019 ? 10 : 6), serial, body]);
}
