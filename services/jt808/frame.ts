// JT/T 808 framing (JT/T 808-2013 §4.4, unchanged in 2019): a message is its header, body and
// check code between two 0x7e flag bytes; inside, 0x7e is sent as 0x7d 0x02 and 0x7d as 0x7d 0x01;
// the check code is the XOR of every header and body byte. Pure: no I/O.

export const FLAG = 0x7e;
const ESCAPE = 0x7d;

/** Why a frame was refused, in words a person understands. */
export class FrameError extends Error {
  constructor(
    readonly reason: 'frame_too_large' | 'bad_escape' | 'bad_check_code' | 'truncated' | 'wrong_length' | 'unknown_message',
    message: string,
  ) {
    super(message);
  }
}

/** XOR of the bytes: the check code of a message's header and body. */
export function checkCode(bytes: Uint8Array): number {
  let code = 0;
  for (const byte of bytes) code ^= byte;
  return code;
}

/** The bytes between two flags, unescaped; throws on a 0x7d not followed by 0x01 or 0x02. */
export function unescape(escaped: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(escaped.length);
  let n = 0;
  for (let i = 0; i < escaped.length; i++) {
    const byte = escaped[i]!;
    if (byte !== ESCAPE) {
      out[n++] = byte;
      continue;
    }
    const next = escaped[++i];
    if (next === 0x01) out[n++] = ESCAPE;
    else if (next === 0x02) out[n++] = FLAG;
    else throw new FrameError('bad_escape', `byte 0x7d at ${i - 1} is followed by ${next === undefined ? 'the end of the frame' : `0x${next.toString(16).padStart(2, '0')}`}, not 0x01 or 0x02`);
  }
  return out.subarray(0, n);
}

/** A whole frame for the wire: header and body, their check code, escaped, between flags. */
export function frame(message: Uint8Array): Buffer {
  const code = checkCode(message);
  let escapes = code === FLAG || code === ESCAPE ? 1 : 0;
  for (const byte of message) if (byte === FLAG || byte === ESCAPE) escapes++;
  const out = Buffer.allocUnsafe(message.length + escapes + 3);
  let n = 0;
  out[n++] = FLAG;
  const put = (byte: number): void => {
    if (byte === FLAG || byte === ESCAPE) {
      out[n++] = ESCAPE;
      out[n++] = byte === FLAG ? 0x02 : 0x01;
    } else out[n++] = byte;
  };
  for (const byte of message) put(byte);
  put(code);
  out[n++] = FLAG;
  return out;
}

/** Header and body of one frame's content (unescaped, flags removed), its check code verified. */
export function verified(content: Uint8Array): Buffer {
  const bytes = unescape(content);
  if (bytes.length < 2) throw new FrameError('truncated', `the frame holds ${bytes.length} byte(s); a header alone is 12`);
  const message = bytes.subarray(0, bytes.length - 1);
  const expected = checkCode(message);
  const got = bytes[bytes.length - 1]!;
  if (expected !== got) throw new FrameError('bad_check_code', `check code 0x${got.toString(16).padStart(2, '0')} does not match the frame's 0x${expected.toString(16).padStart(2, '0')}`);
  return message;
}

/**
 * Cuts a TCP byte stream into frame contents (between flags, still escaped). Every flag ends what
 * came before it and starts the next, so `7e A 7e 7e B 7e` and `7e A 7e B 7e` both give A and B;
 * bytes before the first flag are noise. A frame growing past maxBytes is counted once and
 * dropped, and nothing more of it is kept: a terminal that never sends a closing flag cannot make
 * the buffer grow without end.
 */
export class FrameSplitter {
  private parts: Buffer[] = [];
  private length = 0;
  private seenFlag = false;

  constructor(private readonly maxBytes: number) {}

  /** Frame contents completed by this chunk, and how many frames went past maxBytes. */
  push(chunk: Buffer): { frames: Buffer[]; oversized: number } {
    const frames: Buffer[] = [];
    let oversized = 0;
    let start = 0;
    const take = (part: Buffer): void => {
      if (!this.seenFlag || part.length === 0) return;
      const before = this.length;
      this.length += part.length;
      if (this.length <= this.maxBytes) {
        this.parts.push(Buffer.from(part));
        // A frame arriving a byte per TCP segment would otherwise be held as one small Buffer per
        // byte (about 190 bytes each): joined up now and then, it costs its own length.
        if (this.parts.length > 16) this.parts = [Buffer.concat(this.parts, this.length)];
      } else if (before <= this.maxBytes) oversized++;
    };
    for (let i = chunk.indexOf(FLAG); i !== -1; i = chunk.indexOf(FLAG, i + 1)) {
      take(chunk.subarray(start, i));
      if (this.length > 0 && this.length <= this.maxBytes) frames.push(Buffer.concat(this.parts, this.length));
      this.parts = [];
      this.length = 0;
      this.seenFlag = true;
      start = i + 1;
    }
    take(chunk.subarray(start));
    return { frames, oversized };
  }
}
