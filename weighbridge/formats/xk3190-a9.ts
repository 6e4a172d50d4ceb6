// 耀华 XK3190-A9 / A9+ continuous output (连续方式, parameter tF = 0).
//
// XK3190-A9+ User Manual (Shanghai Yaohua Weighing System), chapter "Connection between serial
// communication interface and indicator", (1) Continuous method (Tf=0), manual page 9: every frame
// is 12 bytes of ASCII, the current weight (gross or net, as displayed):
//
//   byte 1      02 (XON)  start
//   byte 2      '+' or '-'  sign
//   bytes 3-8   weight, six digits, high digit first
//   byte 9      decimal places counted from the right, '0'…'4'
//   byte 10     XOR check, high 4 bits
//   byte 11     XOR check, low 4 bits
//   byte 12     03 (XOFF) end
//   XOR = byte 2 ⊕ byte 3 ⊕ … ⊕ byte 9
//
// How a nibble becomes a byte is not spelt out on that page; the sibling Yaohua manuals with the
// same 12-byte frame (XK3190-A23P manual p. 23, XK3190-A26 manual p. 12, "Continuous communication
// format 0") say: a nibble ≤ 9 is sent as nibble + 30h ('0'…'9'), a nibble > 9 as nibble + 37h
// ('A'…'F'). A published example (+20.00: 02 2B 30 30 32 30 30 30 32 31 42 03, check 1Bh sent as
// '1' 'B') agrees. Some indicators are said to send nibble + 30h for every nibble (':'…'?' for
// A…F); a public parser accepts both, and so does this one: the two spellings never collide, so
// accepting both weakens the check by nothing.
import { STX, ETX, digit, type Decoded, type FrameFormat } from './format.ts';

const SIGN_PLUS = 0x2b;
const SIGN_MINUS = 0x2d;

/** The manual's spelling of a nibble: '0'…'9', then 'A'…'F'. */
export function nibbleChar(nibble: number): number {
  return nibble <= 9 ? 0x30 + nibble : 0x37 + nibble;
}

function nibbleMatches(byte: number | undefined, nibble: number): boolean {
  return byte === nibbleChar(nibble) || byte === 0x30 + nibble;
}

/** XOR of bytes 2…9 (0-based 1…8), the ones between STX and the check. */
export function xk3190Check(frame: Uint8Array): number {
  let xor = 0;
  for (let i = 1; i <= 8; i++) xor ^= frame[i]!;
  return xor;
}

export const xk3190A9: FrameFormat = {
  name: 'xk3190-a9',
  length: 12,
  startByte: STX,
  endOffset: 11,
  endByte: ETX,
  // The manual's frame is 8N1 with all eight bits checked by the XOR: no parity bit to mask.
  byteMask: 0xff,
  decode(frame: Uint8Array): Decoded {
    const check = xk3190Check(frame);
    if (!nibbleMatches(frame[9], check >> 4) || !nibbleMatches(frame[10], check & 0x0f)) return { ok: false, reason: 'bad_check' };
    const sign = frame[1];
    if (sign !== SIGN_PLUS && sign !== SIGN_MINUS) return { ok: false, reason: 'bad_content' };
    let value = 0;
    for (let i = 2; i <= 7; i++) {
      const d = digit(frame[i]);
      if (d < 0) return { ok: false, reason: 'bad_content' };
      value = value * 10 + d;
    }
    const decimals = digit(frame[8]);
    if (decimals < 0 || decimals > 4) return { ok: false, reason: 'bad_content' };
    const weight = value / 10 ** decimals;
    return { ok: true, reading: { weight: sign === SIGN_MINUS && weight !== 0 ? -weight : weight } };
  },
};
