// Indicator frames built from the manuals' descriptions (weighbridge/formats/*.ts cite them), for
// the tests to write onto a line.
import { nibbleChar, xk3190Check } from '../../weighbridge/formats/xk3190-a9.ts';
import { toledoChecksum } from '../../weighbridge/formats/toledo.ts';

/** An XK3190-A9 continuous frame (tF=0): STX, sign, six digits, decimals, XOR as two nibbles, ETX. */
export function xk3190Frame(weight: number, decimals = 0): Buffer {
  const scaled = Math.round(Math.abs(weight) * 10 ** decimals);
  const body = `${weight < 0 ? '-' : '+'}${String(scaled).padStart(6, '0')}${decimals}`;
  const frame = Buffer.from(`\x02${body}??\x03`, 'latin1');
  const check = xk3190Check(frame);
  frame[9] = nibbleChar(check >> 4);
  frame[10] = nibbleChar(check & 0x0f);
  return frame;
}

export interface ToledoStatus {
  motion?: boolean;
  net?: boolean;
  outOfRange?: boolean;
  lb?: boolean;
  /** SWA bits 0-2 (2: no decimal point, no dummy zero). */
  decimalCode?: number;
  /** Six digits as sent; by default the weight's magnitude. */
  digits?: string;
}

/** A Toledo continuous frame: STX, SWA, SWB, SWC, six digits of weight and of tare, CR, checksum. */
export function toledoFrame(weight: number, status: ToledoStatus = {}, tare = 0, withChecksum = true): Buffer {
  // SWA: bit 5 always 1, increment ×1 (bit 3), decimal code in bits 0-2 (Wildcat table 6-9).
  const swa = 0x20 | 0x08 | (status.decimalCode ?? 2);
  // SWB: bit 5 always 1 (table 6-10), kg unless lb.
  const swb = 0x20 | (status.net ? 0x01 : 0) | (weight < 0 ? 0x02 : 0) | (status.outOfRange ? 0x04 : 0) | (status.motion ? 0x08 : 0) | (status.lb ? 0 : 0x10);
  const swc = 0x20;
  const digits = status.digits ?? String(Math.abs(weight)).padStart(6, '0');
  const frame = Buffer.from(`\x02${String.fromCharCode(swa, swb, swc)}${digits}${String(tare).padStart(6, '0')}\r${withChecksum ? '?' : ''}`, 'latin1');
  if (withChecksum) frame[17] = toledoChecksum(frame);
  return frame;
}

/** Readings of one truck on the bridge: rolling on, settling with jitter, steady, rolling off. */
export function truckPass(steadyKg: number, options: { steadyCount?: number; jitterKg?: number; rollOn?: number[] } = {}): number[] {
  const rollOn = options.rollOn ?? [0, 2_000, 7_500, steadyKg * 0.6, steadyKg * 1.04, steadyKg * 0.97];
  const jitter = options.jitterKg ?? 20;
  const steady = Array.from({ length: options.steadyCount ?? 12 }, (_, i) => steadyKg + (i % 3 === 0 ? 0 : i % 3 === 1 ? jitter : -jitter));
  return [...rollOn, ...steady, steadyKg * 0.5, 1_000, 0, 0, 0];
}
