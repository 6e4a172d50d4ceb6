// One subject's recent events (a truck's fixes, a bin's readings) in event-time order, with the
// rules' state after the newest of them. An event that arrives out of order is slotted in and the
// state replayed, so a late, duplicated or back-filled event gives the same findings as the clean
// stream. The replay starts from a copy of the state kept every CHECKPOINT_EVERY events (the
// checkpoint before the late event), so each event is applied once on the way in, and a late one
// costs at most a few dozen applications. Checkpoints whose events have all left the window become
// the base, and those events can no longer be reordered.

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
    const { events } = this;
    const newest = events.at(-1);
    if (!newest || event.ts > newest.ts) {
      apply(event, this.state);
      events.push(event);
      this.checkpoint(event);
      this.forget(event.ts - this.windowMs);
      return 'newest';
    }
    if (event.ts <= this.baseTs || event.ts < newest.ts - this.windowMs) return 'too_late';
    let i = events.length;
    while (i > 0 && events[i - 1]!.ts > event.ts) i--;
    if (events[i - 1]?.ts === event.ts) return 'duplicate';
    events.splice(i, 0, event);
    let k = this.checkpoints.length;
    while (k > 0 && this.checkpoints[k - 1]!.after.ts > event.ts) k--;
    const from = this.checkpoints[k - 1];
    this.checkpoints.length = k;
    this.sinceCheckpoint = 0;
    this.state = structuredClone(from ? from.state : this.base);
    for (let j = from ? events.indexOf(from.after) + 1 : 0; j < events.length; j++) {
      apply(events[j]!, this.state);
      this.checkpoint(events[j]!);
    }
    return 'replayed';
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
