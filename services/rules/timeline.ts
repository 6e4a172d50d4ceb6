// One subject's recent events (a truck's fixes, a bin's readings) in event-time order, with the
// rules' state after the newest of them. An event that arrives out of order is slotted in and the
// state replayed, so a late, duplicated or back-filled event gives the same findings as the clean
// stream. The replay starts from a copy of the state kept every CHECKPOINT_EVERY events (the
// checkpoint before the late event), so each event is applied once on the way in, and a late one
// costs at most a few dozen applications when it is only a little late, and never more than the
// events kept (maxEvents and one checkpoint interval), however old it is within the window. A
// batch is replayed once, whatever its order: readings sent newest first (a terminal emptying its
// blind-area store that way) once made every reading a replay from the base, without bound.
// Checkpoints whose events have all left the window, or that hold more than maxEvents, become the
// base, and those events can no longer be reordered.

/** Applies one event to a state. */
export type Apply<E, S> = (event: E, state: S) => void;

export type Placement = 'newest' | 'replayed' | 'duplicate' | 'too_late';

/** Events between two copies of the state: a copy costs about as much as applying a few events. */
const CHECKPOINT_EVERY = 32;

interface Checkpoint<E, S> {
  /** The newest event the state includes. */
  after: E;
  state: S;
}

export class Timeline<E extends { ts: number }, S> {
  /** Events judged, oldest first: the window of the newest, and up to CHECKPOINT_EVERY before it. */
  readonly events: E[] = [];
  /** State before events[0]; never changed in place. */
  private base: S;
  /** The newest event folded into the base. */
  private baseTs = Number.NEGATIVE_INFINITY;
  /** Copies of the state after every CHECKPOINT_EVERY-th event, oldest first; never changed in place. */
  private checkpoints: Checkpoint<E, S>[] = [];
  private sinceCheckpoint = 0;
  /** State after the last of events. */
  state: S;

  constructor(
    initial: () => S,
    private readonly windowMs: number,
    private readonly maxEvents: number,
  ) {
    this.base = initial();
    this.state = initial();
  }

  get newest(): E | undefined {
    return this.events.at(-1);
  }

  add(event: E, apply: Apply<E, S>): Placement {
    return this.addAll([event], apply)[0]!;
  }

  /**
   * Places events given oldest first (one message's batch, sorted). Those newer than every event
   * kept are applied at once; the others are slotted in, and the state is replayed once, from the
   * checkpoint before the oldest of them, after the whole batch is in. So a batch costs at most
   * its own length plus the events kept (maxEvents and one checkpoint interval) in applications,
   * whatever the order it came in or how it falls among the events kept.
   */
  addAll(batch: readonly E[], apply: Apply<E, S>): Placement[] {
    const { events } = this;
    const placements: Placement[] = [];
    /** The oldest event slotted in among older ones: the state is replayed from before it. */
    let replayFrom: E | null = null;
    for (const event of batch) {
      const newest = events.at(-1);
      // With no event kept (all folded into the base), only one newer than the base is newest.
      if (newest ? event.ts > newest.ts : event.ts > this.baseTs) {
        events.push(event);
        if (!replayFrom) {
          apply(event, this.state);
          this.checkpoint(event);
        }
        placements.push('newest');
        continue;
      }
      if (!newest || event.ts <= this.baseTs || event.ts < newest.ts - this.windowMs) {
        placements.push('too_late');
        continue;
      }
      const i = this.firstAfter(event.ts);
      if (events[i - 1]?.ts === event.ts) {
        placements.push('duplicate');
        continue;
      }
      events.splice(i, 0, event);
      if (!replayFrom || event.ts < replayFrom.ts) replayFrom = event;
      placements.push('replayed');
    }
    if (replayFrom) this.replayFrom(replayFrom.ts, apply);
    const newest = events.at(-1);
    if (newest) this.forget(newest.ts - this.windowMs);
    return placements;
  }

  /** Index of the first event later than ts (binary search: events are sorted by ts). */
  private firstAfter(ts: number): number {
    let low = 0;
    let high = this.events.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.events[mid]!.ts > ts) high = mid;
      else low = mid + 1;
    }
    return low;
  }

  /** Rebuilds the state from the checkpoint before ts through the newest event. */
  private replayFrom(ts: number, apply: Apply<E, S>): void {
    const { events } = this;
    let k = this.checkpoints.length;
    while (k > 0 && this.checkpoints[k - 1]!.after.ts >= ts) k--;
    const from = this.checkpoints[k - 1];
    this.checkpoints.length = k;
    this.sinceCheckpoint = 0;
    this.state = structuredClone(from ? from.state : this.base);
    for (let j = from ? this.firstAfter(from.after.ts) : 0; j < events.length; j++) {
      apply(events[j]!, this.state);
      this.checkpoint(events[j]!);
    }
  }

  private checkpoint(event: E): void {
    if (++this.sinceCheckpoint < CHECKPOINT_EVERY) return;
    this.sinceCheckpoint = 0;
    this.checkpoints.push({ after: event, state: structuredClone(this.state) });
  }

  /** Makes the oldest checkpoints the base while their events are all older than the horizon, or too many events are kept. */
  private forget(horizon: number): void {
    const { events } = this;
    for (let first = this.checkpoints[0]; first && (first.after.ts < horizon || events.length > this.maxEvents); first = this.checkpoints[0]) {
      events.splice(0, events.indexOf(first.after) + 1);
      this.base = first.state;
      this.baseTs = first.after.ts;
      this.checkpoints.shift();
    }
  }
}
