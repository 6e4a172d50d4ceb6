// Putting sub-packaged messages back together (JT/T 808-2013 §4.4.3: attribute bit 13; each
// package carries the total count and its number from 1, and the packages of one message have
// consecutive serial numbers, so the first package's serial is serial - number + 1). Bounded per
// connection: at most MAX_PARTIALS messages under way, each charged PARTIAL_OVERHEAD_BYTES besides
// its bodies against maxBytes (so empty packages are not free), parts kept in a Map (a count of
// 65,535 allocates nothing), and a message not completed within timeoutMs given up.
import type { Header } from './header.ts';

/** Messages one connection may have under way at once; a terminal sends one sub-packaged message at a time. */
export const MAX_PARTIALS = 8;
/** What one message under way is charged against maxBytes besides its bodies. */
const PARTIAL_OVERHEAD_BYTES = 512;

interface Partial {
  header: Header;
  count: number;
  parts: Map<number, Buffer>;
  bytes: number;
  startedAt: number;
  /** Serials of the packages received, to answer each once the whole message is handled. */
  serials: Set<number>;
}

export type Reassembled = { header: Header; body: Buffer; serials: number[] };

/** A package that does not fit the bounds; the message it belonged to was dropped. */
export class ReassemblyError extends Error {}

const hex4 = (id: number): string => `0x${id.toString(16).padStart(4, '0')}`;

export class Reassembly {
  private readonly partials = new Map<string, Partial>();
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Adds one package. Returns the whole message once its last package is in, null while some are
   * missing; throws a ReassemblyError (with the sentence to report) when the package does not fit
   * the bounds, dropping the incomplete message.
   */
  add(header: Header, body: Buffer, now: number): Reassembled | null {
    const { count, index } = header.subpackage!;
    if (body.length === 0) throw new ReassemblyError(`sub-package ${index} of ${count} of message ${hex4(header.messageId)} is empty`);
    const first = (header.serial - index + 1) & 0xffff;
    const key = `${header.messageId}:${first}:${count}`;
    let partial = this.partials.get(key);
    if (!partial) {
      if (this.partials.size >= MAX_PARTIALS) throw new ReassemblyError(`${MAX_PARTIALS} sub-packaged messages are under way on this connection already; package ${index} of ${count} of message ${hex4(header.messageId)} was dropped`);
      if (this.bytes + PARTIAL_OVERHEAD_BYTES > this.maxBytes) throw this.tooLarge(header);
      partial = { header, count, parts: new Map(), bytes: PARTIAL_OVERHEAD_BYTES, startedAt: now, serials: new Set() };
      this.partials.set(key, partial);
      this.bytes += PARTIAL_OVERHEAD_BYTES;
    }
    // A package sent again (the terminal did not get our answer in time) counts once.
    partial.serials.add(header.serial);
    if (partial.parts.has(index)) return null;
    if (this.bytes + body.length > this.maxBytes) {
      this.drop(key);
      throw this.tooLarge(header);
    }
    partial.parts.set(index, Buffer.from(body));
    partial.bytes += body.length;
    this.bytes += body.length;
    if (partial.parts.size < count) return null;
    this.drop(key);
    const parts = Array.from({ length: count }, (_, i) => partial.parts.get(i + 1)!);
    const whole = Buffer.concat(parts);
    return { header: { ...partial.header, subpackage: null, bodyLength: whole.length }, body: whole, serials: [...partial.serials] };
  }

  /** Gives up the messages older than timeoutMs (all of them with `all`, when the connection ends); returns a sentence for each. */
  expire(now: number, all = false): string[] {
    const given: string[] = [];
    for (const [key, partial] of this.partials) {
      if (!all && now - partial.startedAt < this.timeoutMs) continue;
      given.push(`message ${hex4(partial.header.messageId)} arrived as ${partial.parts.size} of its ${partial.count} sub-packages${all ? ' before the connection ended' : ` within ${this.timeoutMs / 1000} s`}; the rest never came and it was dropped`);
      this.drop(key);
    }
    return given;
  }

  private tooLarge(header: Header): ReassemblyError {
    return new ReassemblyError(`sub-packages of message ${hex4(header.messageId)} would hold more than ${this.maxBytes} bytes on this connection (jt808.maxReassemblyBytes); the message was dropped`);
  }

  private drop(key: string): void {
    const partial = this.partials.get(key);
    if (!partial) return;
    this.bytes -= partial.bytes;
    this.partials.delete(key);
  }
}
