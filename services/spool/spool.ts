// The durable spool: a write-ahead log of line protocol. Every accepted point is appended here and
// made durable (one write + fdatasync per group of appends: group commit) before the device is
// acknowledged; the shipper then delivers it to InfluxDB in order and advances the checkpoint.
// So nothing acknowledged is lost on a crash, while InfluxDB is down, or across a restart; a
// re-delivery after a crash rewrites points that already exist, which InfluxDB overwrites.
//
// Layout of the directory: seg-<16 digits>.lp segment files (newline-terminated lines) and
// checkpoint.json ({segment, offset}: everything before it has been delivered).
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

export interface SpoolOptions {
  dir: string;
  quotaBytes: number;
  segmentBytes: number;
  fsync: boolean;
}

export interface SpoolPosition {
  segment: number;
  offset: number;
}

export interface SpoolBatch {
  /** Newline-terminated lines: a view of the spool's read buffer, valid until the next read(). */
  body: Buffer;
  lines: number;
  /** Position just after this batch; commit it once delivered. */
  end: SpoolPosition;
}

export class SpoolFullError extends Error {
  constructor(readonly usedBytes: number, readonly quotaBytes: number) {
    super(`spool full: ${usedBytes} of ${quotaBytes} bytes used; refusing new data until InfluxDB takes the backlog`);
  }
}

interface Waiter {
  resolve: () => void;
  reject: (error: Error) => void;
}

const SEGMENT = /^seg-(\d{16})\.lp$/;
const segmentName = (n: number): string => `seg-${String(n).padStart(16, '0')}.lp`;
const READ_CHUNK = 4 * 1024 * 1024;
/**
 * A segment is deleted only once delivered and closed, so delivered bytes of the open segment
 * count against the quota until it fills. With segments up to this share of the quota, that is at
 * most an eighth of it: a quota smaller than one segment (2 MB with 16 MiB segments) once refused
 * every device after 1.75 MB of traffic, with InfluxDB up and nothing waiting, until a restart.
 */
const SEGMENTS_PER_QUOTA = 8;

/** Emits 'data' after each group commit. */
export class Spool extends EventEmitter {
  private fd: number | null = null;
  private segment = 0;
  private segmentSize = 0;
  /** Durable size of every segment on disk, in order. */
  private readonly sizes = new Map<number, number>();
  private readPos: SpoolPosition = { segment: 0, offset: 0 };
  private pending: string[] = [];
  private pendingBytes = 0;
  private waiters: Waiter[] = [];
  private flushing: Promise<void> | null = null;
  /** One buffer for every read, so delivering a batch allocates nothing V8 must account for. */
  private readBuffer: Buffer | null = null;
  private closed = true;
  /** Bytes appended since open, counting the backlog found at open: where the newest byte lies. */
  private appended = 0;
  /** Size at which a segment is closed: spool.segmentBytes, or less when the quota is small. */
  private readonly segmentBytes: number;

  constructor(private readonly options: SpoolOptions) {
    super();
    this.segmentBytes = Math.max(1, Math.min(options.segmentBytes, Math.floor(options.quotaBytes / SEGMENTS_PER_QUOTA)));
  }

  async open(): Promise<void> {
    await fsp.mkdir(this.options.dir, { recursive: true });
    const checkpoint = await this.readCheckpoint();
    const segments = (await fsp.readdir(this.options.dir))
      .map((name) => SEGMENT.exec(name))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    for (const n of segments) {
      if (n < checkpoint.segment) {
        await fsp.rm(this.file(n), { force: true });
        continue;
      }
      this.sizes.set(n, await this.trimTornTail(n));
    }
    const first = [...this.sizes.keys()][0];
    this.readPos = first !== undefined && first > checkpoint.segment ? { segment: first, offset: 0 } : checkpoint;
    const last = [...this.sizes.keys()].at(-1) ?? checkpoint.segment;
    // Always append to a fresh segment: the previous one may end where a crash cut it.
    await this.openSegment(last + 1);
    if (this.sizes.size === 1) this.readPos = { segment: this.segment, offset: 0 };
    this.appended = this.backlogBytes();
    this.closed = false;
  }

  /** Bytes on disk, delivered or not (what the quota limits). */
  usedBytes(): number {
    let total = this.pendingBytes;
    for (const size of this.sizes.values()) total += size;
    return total;
  }

  /** Bytes not yet delivered to InfluxDB. */
  backlogBytes(): number {
    let total = this.pendingBytes;
    for (const [n, size] of this.sizes) {
      if (n > this.readPos.segment) total += size;
      else if (n === this.readPos.segment) total += size - this.readPos.offset;
    }
    return total;
  }

  /** Bytes appended so far (with the backlog found at open); a position deliveredBytes() reaches. */
  appendedBytes(): number {
    return this.appended;
  }

  /** Of appendedBytes(), those delivered to InfluxDB. */
  deliveredBytes(): number {
    return this.appended - this.backlogBytes();
  }

  isFull(extraBytes = 0): boolean {
    return this.usedBytes() + extraBytes > this.options.quotaBytes;
  }

  /**
   * Appends newline-terminated lines; resolves once they are durable. Rejects with SpoolFullError,
   * without writing anything, when the quota would be exceeded.
   */
  append(lines: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error('spool is closed'));
    const bytes = Buffer.byteLength(lines, 'utf8');
    if (this.isFull(bytes)) return Promise.reject(new SpoolFullError(this.usedBytes(), this.options.quotaBytes));
    this.pending.push(lines);
    this.pendingBytes += bytes;
    this.appended += bytes;
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (!this.flushing) this.flushing = this.flushLoop();
    });
  }

  /** Reads up to maxLines undelivered lines from the read position; null when caught up. */
  async read(maxLines: number): Promise<SpoolBatch | null> {
    let { segment, offset } = this.readPos;
    for (;;) {
      const size = this.sizes.get(segment);
      if (size === undefined) return null;
      if (offset < size) break;
      if (segment >= this.segment) return null;
      const next = [...this.sizes.keys()].find((n) => n > segment);
      if (next === undefined) return null;
      segment = next;
      offset = 0;
    }
    const size = this.sizes.get(segment)!;
    const length = Math.min(READ_CHUNK, size - offset);
    const buffer = (this.readBuffer ??= Buffer.allocUnsafe(READ_CHUNK));
    const handle = await fsp.open(this.file(segment), 'r');
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(buffer, 0, length, offset));
    } finally {
      await handle.close();
    }
    let cut = 0;
    let lines = 0;
    for (let i = 0; i < bytesRead && lines < maxLines; i++) {
      if (buffer[i] === 0x0a) {
        lines++;
        cut = i + 1;
      }
    }
    if (lines === 0) {
      throw new Error(`spool segment ${this.file(segment)} has a line longer than ${READ_CHUNK} bytes at offset ${offset}`);
    }
    return { body: buffer.subarray(0, cut), lines, end: { segment, offset: offset + cut } };
  }

  /** Marks everything before `position` delivered, persists it, and deletes finished segments. */
  async commit(position: SpoolPosition): Promise<void> {
    // A segment read to its end and closed for writing is finished: move on so it can be deleted.
    while (position.segment < this.segment && position.offset >= (this.sizes.get(position.segment) ?? 0)) {
      const next = [...this.sizes.keys()].find((n) => n > position.segment);
      if (next === undefined) break;
      position = { segment: next, offset: 0 };
    }
    this.readPos = position;
    const tmp = path.join(this.options.dir, 'checkpoint.json.tmp');
    await fsp.writeFile(tmp, JSON.stringify(position));
    await fsp.rename(tmp, path.join(this.options.dir, 'checkpoint.json'));
    for (const n of [...this.sizes.keys()]) {
      if (n < position.segment) {
        this.sizes.delete(n);
        await fsp.rm(this.file(n), { force: true });
      }
    }
  }

  /** Waits for the pending group commit, then closes the segment. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flushing;
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private async flushLoop(): Promise<void> {
    // Yield once so that every append made in this turn of the event loop joins the group.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.pending.length > 0) {
      const lines = this.pending;
      const waiters = this.waiters;
      const bytes = this.pendingBytes;
      this.pending = [];
      this.waiters = [];
      try {
        await this.writeDurably(lines, bytes);
        this.pendingBytes -= bytes;
        for (const waiter of waiters) waiter.resolve();
        this.emit('data');
      } catch (error) {
        this.pendingBytes -= bytes;
        this.appended -= bytes;
        for (const waiter of waiters) waiter.reject(error as Error);
      }
    }
    this.flushing = null;
  }

  private async writeDurably(lines: string[], bytes: number): Promise<void> {
    const fd = this.fd!;
    // Written as a string: node copies it into memory of its own for the write, where a Buffer would
    // be an ArrayBuffer alive, and accounted by V8, until the write and its fsync are done.
    const text = lines.join('');
    let written = await new Promise<number>((resolve, reject) => fs.write(fd, text, null, 'utf8', (error, count) => (error ? reject(error) : resolve(count))));
    if (written < bytes) {
      // A short write (write(2) may write less than asked): the rest goes from a buffer.
      const rest = Buffer.from(text, 'utf8');
      while (written < bytes) {
        written += await new Promise<number>((resolve, reject) =>
          fs.write(fd, rest, written, bytes - written, null, (error, count) => (error ? reject(error) : resolve(count))),
        );
      }
    }
    if (this.options.fsync) {
      await new Promise<void>((resolve, reject) => fs.fdatasync(fd, (error) => (error ? reject(error) : resolve())));
    }
    this.segmentSize += bytes;
    this.sizes.set(this.segment, this.segmentSize);
    if (this.segmentSize >= this.segmentBytes) {
      fs.closeSync(fd);
      await this.openSegment(this.segment + 1);
    }
  }

  private async openSegment(n: number): Promise<void> {
    this.fd = fs.openSync(this.file(n), 'a');
    this.segment = n;
    this.segmentSize = fs.fstatSync(this.fd).size;
    this.sizes.set(n, this.segmentSize);
    if (this.options.fsync) await fsp.open(this.options.dir, 'r').then(async (dir) => {
      // Make the new file's directory entry durable too (fsync(2): "an fsync on the directory").
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    });
  }

  /** A crash can leave half a line at the end of a segment; drop it (it was never acknowledged). */
  private async trimTornTail(n: number): Promise<number> {
    const file = this.file(n);
    const { size } = await fsp.stat(file);
    if (size === 0) return 0;
    const handle = await fsp.open(file, 'r+');
    try {
      const tail = Math.min(size, READ_CHUNK);
      const buffer = Buffer.alloc(tail);
      await handle.read(buffer, 0, tail, size - tail);
      const lastNewline = buffer.lastIndexOf(0x0a);
      const keep = lastNewline === -1 ? size - tail : size - tail + lastNewline + 1;
      if (keep !== size) await handle.truncate(keep);
      return keep;
    } finally {
      await handle.close();
    }
  }

  private async readCheckpoint(): Promise<SpoolPosition> {
    try {
      const parsed = JSON.parse(await fsp.readFile(path.join(this.options.dir, 'checkpoint.json'), 'utf8')) as SpoolPosition;
      if (Number.isInteger(parsed.segment) && Number.isInteger(parsed.offset)) return parsed;
    } catch {
      // No checkpoint yet: deliver from the first segment.
    }
    return { segment: 0, offset: 0 };
  }

  private file(n: number): string {
    return path.join(this.options.dir, segmentName(n));
  }
}
