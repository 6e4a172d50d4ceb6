// What an indicator format is to the agent: a fixed-length frame between a start byte and a
// closing byte at a fixed place, and a decoder for one whole frame. Each format's own file cites
// its manual; frame.ts finds frames in the byte stream.

/** A weight as the indicator displays it, in its display unit (kg or t, see config `indicator.unit`). */
export interface Reading {
  weight: number;
  /** The indicator's own motion flag, where its format has one (Toledo SWB bit 3); undefined otherwise. */
  motion?: boolean;
}

/** Why a frame was skipped; counted per reason in the agent's status. */
export const REJECT_REASONS = [
  /** The byte where the frame must end (ETX, CR) was something else: a truncated or overlong frame. */
  'bad_length',
  /** The frame's check code does not match its content: a corrupted byte. */
  'bad_check',
  /** The check matched but a field is not what the manual allows (a letter among the digits). */
  'bad_content',
  /** The indicator says it is over or under its range. */
  'out_of_range',
  /** The indicator displays net weight (a tare is set on it), not what lies on the bridge. */
  'net_displayed',
  /** The indicator displays pounds. */
  'unit_lb',
  /** The indicator has not captured zero since power-up. */
  'not_zeroed',
  /** The indicator shows the weight expanded ×10 (a test mode). */
  'expanded',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export type Decoded = { ok: true; reading: Reading } | { ok: false; reason: RejectReason };

export interface FrameFormat {
  readonly name: string;
  /** Bytes in one frame, start byte included. */
  readonly length: number;
  readonly startByte: number;
  /** Where the closing byte stands (from the start byte, 0-based) and what it is. */
  readonly endOffset: number;
  readonly endByte: number;
  /**
   * The bits of each byte that carry data, start and end bytes included: 0x7f where bit 7 may be a
   * parity bit (a 7E1 line read as 8N1 sets it on half the bytes), 0xff otherwise.
   */
  readonly byteMask: number;
  /** Decodes one frame of `length` bytes that starts with `startByte` and has `endByte` at `endOffset`. */
  decode(frame: Uint8Array): Decoded;
}

export const STX = 0x02;
export const ETX = 0x03;
export const CR = 0x0d;

/** ASCII '0'…'9' to its value; -1 for anything else. */
export function digit(byte: number | undefined): number {
  return byte !== undefined && byte >= 0x30 && byte <= 0x39 ? byte - 0x30 : -1;
}
