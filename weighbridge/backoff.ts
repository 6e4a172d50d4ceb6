// Waits between reconnection attempts (the indicator line, the broker): doubling from `minMs` to
// `maxMs`, back to `minMs` once a connection held.

export interface BackoffOptions {
  minMs: number;
  maxMs: number;
}

export class Backoff {
  private nextMs: number;

  constructor(private readonly options: BackoffOptions) {
    this.nextMs = options.minMs;
  }

  /** The wait before the next attempt; each call doubles the one after. */
  next(): number {
    const wait = this.nextMs;
    this.nextMs = Math.min(this.nextMs * 2, this.options.maxMs);
    return wait;
  }

  reset(): void {
    this.nextMs = this.options.minMs;
  }
}
