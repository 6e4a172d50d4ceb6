// Putting sub-packaged messages back together (JT/T 808-2013 §4.4.3: attribute bit 13; each
// package carries the total count and its number from 1, and the packages of one message have
// consecutive serial numbers, so the first package's serial is serial - number + 1). Bounded: one
// connection holds at most maxBytes of incomplete messages, and a message not completed within
// timeoutMs is given up.
import type { Header } from './header.ts';

interface Partial {
  header: Header;
  parts: (Buffer | undefined)[];
  received: number;
  bytes: number;
  startedAt: number;
  /** Serials of the packages received, to answer each once the whole message is handled. */
  serials: number[];
}

export type Reassembled = { header: Header; body: Buffer; serials: number[] };

export class Reassembly {
  private readonly partials = new Map<string, Partial>();
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Adds one package. Returns the whole message once its last package is in, null while some are
   * missing; throws a RangeError (with the sentence to report) when the package does not fit the
   * bounds, dropping the incomplete message.
   */
  add(header: Header, body: Buffer, now: number): Reassembled | null {
    const { count, index } = header.subpackage!;
    const first = (header.serial - index + 1) & 0xffff;
    const key = `${header.messageId}:${first}:${count}`;
    let partial = this.partials.get(key);
    if (!partial) {
      partial = { header, parts: new Array<Buffer | undefined>(count), received: 0, bytes: 0, startedAt: now, serials: [] };
      this.partials.set(key, partial);
    }
    if (partial.parts[index - 1] !== undefined) {
      // A package sent again (the terminal did not get our answer in time): same content, once.
      partial.serials.push(header.serial);
      return null;
    }
    if (this.bytes + body.length > this.maxBytes) {
      this.drop(key);
      throw new RangeError(`sub-packages of message 0x${header.messageId.toString(16).padStart(4, '0')} would hold more than ${this.maxBytes} bytes on this connection (jt808.maxReassemblyBytes); the message was dropped`);
    }
    partial.parts[index - 1] = Buffer.from(body);
    partial.received++;
    partial.bytes += body.length;
    partial.serials.push(header.serial);
    this.bytes += body.length;
    if (partial.received < count) return null;
    this.drop(key);
    return { header: { ...partial.header, subpackage: null, bodyLength: partial.bytes }, body: Buffer.concat(partial.parts as Buffer[]), serials: partial.serials };
  }

  /** Gives up the messages older than timeoutMs; returns a sentence for each. */
  expire(now: number): string[] {
    const given: string[] = [];
    for (const [key, partial] of this.partials) {
      if (now - partial.startedAt < this.timeoutMs) continue;
      given.push(`message 0x${partial.header.messageId.toString(16).padStart(4, '0')} arrived as ${partial.received} of its ${partial.parts.length} sub-packages within ${this.timeoutMs / 1000} s; the rest never came and it was dropped`);
      this.drop(key);
    }
    return given;
  }

  private drop(key: string): void {
    const partial = this.partials.get(key);
    if (!partial) return;
    this.bytes -= partial.bytes;
    this.partials.delete(key);
  }
}
