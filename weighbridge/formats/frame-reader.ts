// Finds an indicator's frames in the bytes as they come off the line: reads split anywhere, noise
// between frames, truncated or overlong frames and corrupted bytes are skipped and counted by
// reason, never thrown. At most one frame's length is held between reads.
import { REJECT_REASONS, type FrameFormat, type Reading, type RejectReason } from './format.ts';

export interface FrameStats {
  /** Frames decoded into a reading. */
  frames: number;
  /** Frames skipped, per reason. */
  rejected: Record<RejectReason, number>;
  /** Bytes outside any frame (noise, a frame's tail after a reconnect). */
  garbageBytes: number;
}

export class FrameReader {
  readonly stats: FrameStats = {
    frames: 0,
    rejected: Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>,
    garbageBytes: 0,
  };
  private pending: Buffer = Buffer.alloc(0);

  constructor(readonly format: FrameFormat) {}

  /** Takes the next bytes off the line; returns the readings of the frames they complete. */
  push(chunk: Buffer): Reading[] {
    const { length, endOffset, endByte, byteMask } = this.format;
    const data = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    const readings: Reading[] = [];
    let at = 0;
    for (;;) {
      const start = this.findStart(data, at);
      if (start < 0) {
        this.stats.garbageBytes += data.length - at;
        at = data.length;
        break;
      }
      this.stats.garbageBytes += start - at;
      if (data.length - start < length) {
        at = start;
        break;
      }
      if ((data[start + endOffset]! & byteMask) !== endByte) {
        // Not a whole frame: look for the next start byte inside it, where the real frame may begin.
        this.stats.rejected.bad_length++;
        at = start + 1;
        continue;
      }
      const decoded = this.format.decode(data.subarray(start, start + length));
      if (decoded.ok) {
        this.stats.frames++;
        readings.push(decoded.reading);
        at = start + length;
      } else {
        this.stats.rejected[decoded.reason]++;
        // A frame one byte short whose check fails has taken the next frame's start byte: go back to it.
        const inner = this.findStart(data, start + 1);
        at = inner > 0 && inner < start + length ? inner : start + length;
      }
    }
    // A copy, so that the chunk it came from is not kept alive; shorter than one frame.
    this.pending = Buffer.from(data.subarray(at));
    return readings;
  }

  /** Where the next start byte is, from `from`, under the format's byte mask; -1 if none. */
  private findStart(data: Buffer, from: number): number {
    const { startByte, byteMask } = this.format;
    if (byteMask === 0xff) return data.indexOf(startByte, from);
    for (let i = from; i < data.length; i++) if ((data[i]! & byteMask) === startByte) return i;
    return -1;
  }

  /** Forgets a partial frame, e.g. when the line was reconnected and its tail will not come. */
  reset(): void {
    if (this.pending.length > 0) this.stats.garbageBytes += this.pending.length;
    this.pending = Buffer.alloc(0);
  }
}
