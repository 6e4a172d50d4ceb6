// The messages of one connection (MQTT) or channel (AMQP) waiting for their acknowledgement, in
// the order they came. Both protocols acknowledge in that order: MQTT's PUBACKs must go in order
// ([MQTT-4.6.0-2]), and an AMQP basic.ack with `multiple` acknowledges every delivery up to its tag.
// A message is marked done once durable; the run of done messages at the head is taken together.

export interface AckEntry {
  done: boolean;
}

export class AckLine<T> {
  private entries: (AckEntry & { item: T })[] = [];
  private head = 0;

  /** Adds a message at the end of the line; mark the entry done once it is durable. */
  add(item: T): AckEntry {
    const entry = { item, done: false };
    this.entries.push(entry);
    return entry;
  }

  /** Messages in the line not yet taken. */
  get waiting(): number {
    return this.entries.length - this.head;
  }

  /** Takes the run of done messages at the head of the line, oldest first. */
  takeDone(): T[] {
    const start = this.head;
    while (this.head < this.entries.length && this.entries[this.head]!.done) this.head++;
    const taken = this.entries.slice(start, this.head).map((e) => e.item);
    // What was taken is dropped now and then, not at every call: a splice per call cost O(n) each.
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    return taken;
  }
}
