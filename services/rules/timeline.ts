// One subject's recent events (a truck's fixes, a bin's readings) in event-time order, with the
// rules' state as it was before the oldest of them and as it is after the newest. An event that
// arrives out of order is slotted in and the state replayed from the base, so a late, duplicated or
// back-filled event gives the same findings as the clean stream. Events older than the window move
// into the base state (applied once more, silently) and can no longer be reordered.

/** Applies one event to a state; `live` is false when only the base state is being brought forward. */
export type Apply<E, S> = (event: E, state: S, live: boolean) => void;

export type Placement = 'newest' | 'replayed' | 'duplicate' | 'too_late';

export class Timeline<E extends { ts: number }, S> {
  /** Events judged, oldest first, all within the window of the newest. */
  readonly events: E[] = [];
  /** State before events[0]. */
  private base: S;
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
      apply(event, this.state, true);
      events.push(event);
      const horizon = event.ts - this.windowMs;
      while (events.length > 1 && (events[0]!.ts < horizon || events.length > this.maxEvents)) apply(events.shift()!, this.base, false);
      return 'newest';
    }
    if (event.ts < events[0]!.ts) return 'too_late';
    let i = events.length;
    while (i > 0 && events[i - 1]!.ts > event.ts) i--;
    if (events[i - 1]?.ts === event.ts) return 'duplicate';
    events.splice(i, 0, event);
    this.state = structuredClone(this.base);
    for (const e of events) apply(e, this.state, true);
    return 'replayed';
  }
}
