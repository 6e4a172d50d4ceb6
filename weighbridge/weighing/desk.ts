// Which weighing a plate belongs to, when it comes without saying (a camera push, an operator
// typing at the prompt): the truck on the bridge if it has no plate yet, otherwise the next truck
// to drive on within `windowMs`. A camera usually reads a truck as it drives up, before it is
// weighed; the operator can always set the plate of a listed weighing directly instead.
//
// A plate given to a truck that is not its own pairs that truck with the other truck's weighing,
// the worst failure, so:
// - the same plate again (a camera repeating its push, reading the truck again as it drives off,
//   an operator clicking twice) changes nothing while it is the plate of the truck on the bridge,
//   of a waiting plate, or of a truck that left less than `sameTruckMs` ago;
// - plates waiting for trucks go to them first in, first out (a queue at the bridge), at most
//   MAX_WAITING, each for `windowMs`;
// - a truck that leaves unweighed takes its plate with it: the next truck may be another one.
// Pure: the caller passes the time.

export interface HeldPlate {
  plate: string;
  source: string;
  /** When it stops applying, epoch ms. */
  until: number;
}

/** The truck on the bridge: from the weight rising above the threshold until it falls below again. */
export interface Pass {
  plate: HeldPlate | null;
  /** The weighing recorded for this pass once it held steady, if it is still open (not yet a ticket). */
  weighingId: number | null;
  weighed: boolean;
}

export type Placement =
  | { to: 'weighing'; weighingId: number }
  | { to: 'pass' }
  | { to: 'next'; until: number }
  /** The same plate again: nothing changed. */
  | { to: 'ignored'; reason: string }
  /** MAX_WAITING plates wait already: this one is not kept. */
  | { to: 'refused'; reason: string };

/** More plates than this waiting for trucks is a mistake, not a queue at the bridge. */
export const MAX_WAITING = 8;

export class PlateDesk {
  private held: HeldPlate[] = [];
  /** Plates of trucks that left the bridge, each until `sameTruckMs` after it left. */
  private gone: HeldPlate[] = [];
  private current: Pass | null = null;

  /** `sameTruckMs`: a truck's own plate coming back sooner than this is a repeat (the agent passes pairing.minPairIntervalS). */
  constructor(
    private readonly windowMs: number,
    private readonly sameTruckMs = windowMs,
  ) {}

  get pass(): Pass | null {
    return this.current;
  }

  /** The plate the next truck will take, if any is still in its window. */
  waiting(now: number): HeldPlate | null {
    return this.queued(now)[0] ?? null;
  }

  /** The plates waiting for trucks, the next truck's first. */
  queued(now: number): readonly HeldPlate[] {
    this.held = this.held.filter((h) => h.until >= now);
    return this.held;
  }

  /** Where a plate with no weighing named goes; a weighing to set it on is the caller's to do. */
  offer(plate: string, source: string, now: number): Placement {
    const repeat = this.repeated(plate, now);
    if (repeat) return { to: 'ignored', reason: repeat };
    const pass = this.current;
    if (pass && !pass.plate) {
      // The truck on the bridge's, even when its weighing is not saved yet or was voided: never the next truck's.
      pass.plate = { plate, source, until: now + this.windowMs };
      return pass.weighingId !== null ? { to: 'weighing', weighingId: pass.weighingId } : { to: 'pass' };
    }
    if (this.queued(now).length >= MAX_WAITING) {
      return { to: 'refused', reason: `已有 ${MAX_WAITING} 个车牌在等车 / ${MAX_WAITING} plates are waiting for trucks already: set this one on its weighing once weighed` };
    }
    const held = { plate, source, until: now + this.windowMs };
    this.held.push(held);
    return { to: 'next', until: held.until };
  }

  /** Takes a waiting plate back (the operator typed it wrong); false when it was not waiting. */
  withdraw(plate: string): boolean {
    const before = this.held.length;
    this.held = this.held.filter((h) => h.plate !== plate);
    return this.held.length < before;
  }

  /** A truck drove on: it takes the first waiting plate. One still on the bridge (no empty bridge between) has left. */
  arrived(now: number): Pass {
    if (this.current) this.left(now);
    this.queued(now); // drops the lapsed ones
    this.current = { plate: this.held.shift() ?? null, weighingId: null, weighed: false };
    return this.current;
  }

  /** The truck on the bridge was weighed; `weighingId` null when the weighing became a ticket at once. */
  weighed(weighingId: number | null): void {
    if (!this.current) return;
    this.current.weighed = true;
    this.current.weighingId = weighingId;
  }

  /**
   * The truck left. Its plate is remembered as a repeat for `sameTruckMs`. One that was never
   * weighed does not hand its plate on (the next truck may not be the same): it is returned, dropped.
   */
  left(now: number): HeldPlate | null {
    const pass = this.current;
    this.current = null;
    if (!pass?.plate) return null;
    this.gone = this.gone.filter((g) => g.until > now);
    this.gone.push({ ...pass.plate, until: now + this.sameTruckMs });
    return pass.weighed ? null : pass.plate;
  }

  /** A plate was set on a weighing by its id: if it is this pass's, the pass has its plate now. */
  plated(weighingId: number, plate: string, source: string, now: number): void {
    if (this.current?.weighingId === weighingId) this.current.plate = { plate, source, until: now + this.windowMs };
  }

  /** The weighing of this pass was closed elsewhere (a ticket, an expiry, a replacement, a void). */
  closed(weighingId: number): void {
    if (this.current?.weighingId === weighingId) this.current.weighingId = null;
  }

  /** Why `plate` is a repeat of one the desk has already, or null. */
  private repeated(plate: string, now: number): string | null {
    if (this.current?.plate?.plate === plate) return `${plate} 已是磅上车辆的车牌 / is the plate of the truck on the bridge already`;
    if (this.queued(now).some((h) => h.plate === plate)) return `${plate} 已在等下一辆车 / is waiting for the next truck already`;
    this.gone = this.gone.filter((g) => g.until > now);
    if (this.gone.some((g) => g.plate === plate)) return `${plate} 是刚下磅的车辆 / is the truck that just left the bridge: a repeated read`;
    return null;
  }
}
