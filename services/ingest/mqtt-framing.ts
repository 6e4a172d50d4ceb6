// Splits the bytes a broker sends at MQTT packet boundaries ([MQTT 3.1.1] §2.2: a type byte, then
// the Remaining Length in 1 to 4 bytes, 7 bits each, low group first) and passes them on to the
// MQTT parser, except a PUBLISH larger than a limit: the parser would buffer all of it (up to
// 256 MB by the spec) before handing it over. Of such a packet only the topic and the packet id
// (§3.3.2) are read, so that it can be acknowledged and reported, and the rest is skipped as it
// comes. Left unacknowledged it would come back on every connection and hold everything behind it.
// Bytes pass through as views of the chunks read, so the cost is a few comparisons per chunk.

export interface OversizedPublish {
  topic: string;
  qos: number;
  /** Present for QoS 1 and 2 ([MQTT 3.1.1] §3.3.2.2). */
  messageId: number | null;
  /** The packet's Remaining Length. */
  bytes: number;
}

export class MalformedPacketError extends Error {}

const PUBLISH = 3;

export class PacketFraming {
  private state: 'header' | 'body' | 'publish-head' | 'skip' = 'header';
  /** Bytes of a fixed header cut off by the end of a chunk, read again with the next one. */
  private header: Buffer | null = null;
  private remaining = 0;
  /** An oversized PUBLISH: its type byte, and the start of its variable header while it is read. */
  private oversized = { typeByte: 0, bytes: 0, head: [] as Buffer[], headBytes: 0 };

  constructor(
    private readonly maxPacketBytes: number,
    private readonly pass: (bytes: Buffer) => void,
    private readonly onOversized: (publish: OversizedPublish) => void,
  ) {}

  /** Follows the packets through the next chunk; throws MalformedPacketError at a packet that cannot be framed. */
  feed(input: Buffer): void {
    const chunk = this.header ? Buffer.concat([this.header, input]) : input;
    this.header = null;
    let from = 0;
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'body' || this.state === 'skip') {
        const take = Math.min(this.remaining, chunk.length - i);
        i += take;
        this.remaining -= take;
        // Skipped bytes are never passed on.
        if (this.state === 'skip') from = i;
        if (this.remaining === 0) this.state = 'header';
        continue;
      }
      if (this.state === 'publish-head') {
        i = this.readPublishHead(chunk, i);
        from = i;
        continue;
      }
      const start = i;
      let length = 0;
      let multiplier = 1;
      let j = i + 1;
      let complete = false;
      for (let lengthBytes = 1; j < chunk.length; lengthBytes++) {
        const byte = chunk[j++]!;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
        if (lengthBytes === 4) throw new MalformedPacketError('malformed Remaining Length (more than 4 bytes)');
      }
      if (!complete) {
        if (start > from) this.pass(chunk.subarray(from, start));
        this.header = Buffer.from(chunk.subarray(start));
        return;
      }
      if (length <= this.maxPacketBytes) {
        i = j;
        this.remaining = length;
        this.state = length > 0 ? 'body' : 'header';
        continue;
      }
      const typeByte = chunk[start]!;
      if (typeByte >> 4 !== PUBLISH) throw new MalformedPacketError(`a packet of type ${typeByte >> 4} and ${length} bytes, over the limit of ${this.maxPacketBytes}`);
      if (start > from) this.pass(chunk.subarray(from, start));
      this.oversized = { typeByte, bytes: length, head: [], headBytes: 0 };
      this.remaining = length;
      this.state = 'publish-head';
      i = j;
      from = j;
    }
    if (from < chunk.length) this.pass(from === 0 ? chunk : chunk.subarray(from));
  }

  /** Collects an oversized PUBLISH's topic and packet id; returns where reading goes on. */
  private readPublishHead(chunk: Buffer, at: number): number {
    const o = this.oversized;
    const qos = (o.typeByte >> 1) & 0x03;
    const take = Math.min(this.remaining, chunk.length - at);
    o.head.push(chunk.subarray(at, at + take));
    o.headBytes += take;
    const head = o.head.length === 1 ? o.head[0]! : Buffer.concat(o.head);
    o.head = [head];
    const needed = head.length >= 2 ? 2 + head.readUInt16BE(0) + (qos > 0 ? 2 : 0) : Infinity;
    if (needed !== Infinity && needed > o.bytes) throw new MalformedPacketError('a PUBLISH whose topic is longer than the packet');
    if (head.length < needed) {
      this.remaining -= take;
      return at + take;
    }
    // Everything past the head is payload, skipped as it comes.
    const used = needed - (head.length - take);
    this.remaining -= used;
    const topicLength = head.readUInt16BE(0);
    this.onOversized({
      topic: head.toString('utf8', 2, 2 + topicLength),
      qos,
      messageId: qos > 0 ? head.readUInt16BE(2 + topicLength) : null,
      bytes: o.bytes,
    });
    this.oversized.head = [];
    this.state = this.remaining > 0 ? 'skip' : 'header';
    return at + used;
  }
}
