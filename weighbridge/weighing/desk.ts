// Which weighing a plate belongs to, when it comes without saying (a camera push, an operator
// typing at the prompt): the truck on the bridge if it has no plate yet, otherwise the next truck
// to drive on within `windowMs`. A camera usually reads a truck as it drives up, before it is
// weighed; the operator can always set the plate of a listed weighing directly instead.
// Pure: the caller passes the time.

export interface HeldPlate {
  plate: string;
  source: string;
  /** When it stops applying to the next truck, epoch ms. */
  until: number;
}

/** The truck on the bridge: from the weight rising above the threshold until it falls below again. */
export interface Pass {
  plate: HeldPlate | null;
  /** The weighing recorded for this pass once it held steady, if it is still open (not yet a ticket). */
  weighingId: number | null;
  weighed: boolean;
}

export type Placement = { to: 'weighing'; weighingId: number } | { to: 'pass' } | { to: 'next'; until: number };

export class PlateDesk {
  private held: HeldPlate | null = null;
  private current: Pass | null = null;

  constructor(private readonly windowMs: number) {}

  get pass(): Pass | null {
    return this.current;
  }

  /** The plate waiting for the next truck, if its window is still open. */
  waiting(now: number): HeldPlate | null {
    if (this.held && this.held.until < now) this.held = null;
    return this.held;
  }

  /** Where a plate with no weighing named goes; a weighing to set it on is the caller's to do. */
  offer(plate: string, source: string, now: number): Placement {
    const pass = this.current;
    if (pass && !pass.plate) {
      pass.plate = { plate, source, until: now + this.windowMs };
      if (pass.weighingId !== null) return { to: 'weighing', weighingId: pass.weighingId };
      if (!pass.weighed) return { to: 'pass' };
    }
    this.held = { plate, source, until: now + this.windowMs };
    return { to: 'next', until: this.held.until };
  }

  /** A truck drove on: it takes the waiting plate. */
  arrived(now: number): Pass {
    this.current = { plate: this.waiting(now), weighingId: null, weighed: false };
    this.held = null;
    return this.current;
  }

  /** The truck on the bridge was weighed; `weighingId` null when the weighing became a ticket at once. */
  weighed(weighingId: number | null): void {
    if (!this.current) return;
    this.current.weighed = true;
    this.current.weighingId = weighingId;
  }

  /** The truck left. One that was never weighed hands its plate back for its next try, in its window. */
  left(now: number): void {
    const pass = this.current;
    this.current = null;
    if (pass && !pass.weighed && pass.plate && pass.plate.until >= now && !this.waiting(now)) this.held = pass.plate;
  }

  /** A plate was set on a weighing by its id: if it is this pass's, the pass has its plate now. */
  plated(weighingId: number, plate: string, source: string, now: number): void {
    if (this.current?.weighingId === weighingId) this.current.plate = { plate, source, until: now + this.windowMs };
  }

  /** The weighing of this pass was closed elsewhere (a ticket, an expiry). */
  closed(weighingId: number): void {
    if (this.current?.weighingId === weighingId) this.current.weighingId = null;
  }
}
