// 托利多 METTLER TOLEDO standard continuous output, which most Toledo terminals (8142, Jaguar,
// IND series) and many Chinese indicators (as "托利多格式") send.
//
// METTLER TOLEDO WILDCAT Scale Technical Manual (12/00), Appendix 2 "Continuous Mode Output",
// Table 6-8 and the status byte tables 6-9…6-11 (manual pages 6-4, 6-5); the same frame is in the
// IND445 user manual (22013194B, §5.2.2) and Rockwell's 1771 Toledo scale interface module guide
// (Appendix D). 17 bytes, and an 18th when the checksum is enabled:
//
//   1       STX (02h)
//   2-4     status words SWA, SWB, SWC
//   5-10    displayed weight (gross or net), six digits, no sign, no decimal point
//   11-16   tare weight, six digits
//   17      CR (0Dh)
//   18      checksum: the 2's complement of the seven low-order bits of the binary sum of every
//           character before it, STX and CR included
//
//   SWA bits 0-2: where the decimal point or dummy zeros go: 000 XXXX00, 001 XXXXX0, 010 XXXXXX,
//                 011 XXXXX.X, 100 XXXX.XX, 101 XXX.XXX, 110 XX.XXXX, 111 X.XXXXX
//   SWB bit 0 net, bit 1 negative, bit 2 out of range, bit 3 motion, bit 4 kg (0: lb),
//       bit 6 power-up not zeroed
//   SWC bit 4 weight display expanded ×10
//   Bit 7 of each byte is the parity bit (a 7E1 line read as 8N1), so it is masked off everywhere:
//   in STX and CR as the reader looks for frames (byteMask), in the fields, and in the checksum,
//   where it cancels (128 is 0 in the seven low bits). The bits the manuals call
//   constant are not checked: they differ between vendors (bit 5 of SWB is 1 at Toledo, 0 in
//   Fairbanks' "Toledo data format"), and the checksum guards the frame.
import { STX, CR, digit, type Decoded, type FrameFormat } from './format.ts';

/** SWA bits 0-2 → the power of ten the six digits are scaled by. */
const SCALE_EXPONENT = [2, 1, 0, -1, -2, -3, -4, -5] as const;

/** The checksum byte for the 17 bytes before it. */
export function toledoChecksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += bytes[i]!;
  return -sum & 0x7f;
}

function sixDigits(frame: Uint8Array, from: number): number {
  let value = 0;
  let seen = false;
  for (let i = from; i < from + 6; i++) {
    const byte = frame[i]! & 0x7f;
    // Leading zeros may be blanked as spaces by terminals set to blank them.
    if (byte === 0x20 && !seen) continue;
    const d = digit(byte);
    if (d < 0) return -1;
    seen = true;
    value = value * 10 + d;
  }
  return seen ? value : -1;
}

function decode(frame: Uint8Array, checksum: boolean): Decoded {
  if (checksum && (frame[17]! & 0x7f) !== toledoChecksum(frame)) return { ok: false, reason: 'bad_check' };
  const swa = frame[1]! & 0x7f;
  const swb = frame[2]! & 0x7f;
  const swc = frame[3]! & 0x7f;
  const value = sixDigits(frame, 4);
  if (value < 0 || sixDigits(frame, 10) < 0) return { ok: false, reason: 'bad_content' };
  if (swb & 0x04) return { ok: false, reason: 'out_of_range' };
  if (swb & 0x01) return { ok: false, reason: 'net_displayed' };
  if (!(swb & 0x10)) return { ok: false, reason: 'unit_lb' };
  if (swb & 0x40) return { ok: false, reason: 'not_zeroed' };
  if (swc & 0x10) return { ok: false, reason: 'expanded' };
  const exponent = SCALE_EXPONENT[swa & 0x07]!;
  // Divide rather than multiply by 0.01, which would leave binary fractions (1234.5600000000002).
  const magnitude = exponent >= 0 ? value * 10 ** exponent : value / 10 ** -exponent;
  const weight = swb & 0x02 && magnitude !== 0 ? -magnitude : magnitude;
  return { ok: true, reading: { weight, motion: (swb & 0x08) !== 0 } };
}

export const toledo: FrameFormat = {
  name: 'toledo',
  length: 18,
  startByte: STX,
  endOffset: 16,
  endByte: CR,
  byteMask: 0x7f,
  decode: (frame) => decode(frame, true),
};

/** The same frame with the checksum turned off in the terminal's setup (17 bytes, ending in CR). */
export const toledoNoChecksum: FrameFormat = {
  name: 'toledo-no-checksum',
  length: 17,
  startByte: STX,
  endOffset: 16,
  endByte: CR,
  byteMask: 0x7f,
  decode: (frame) => decode(frame, false),
};
