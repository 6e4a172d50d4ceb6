// What limits the work logins can cause besides the verifier's queue: failed attempts counted per
// key (a username, a remote address) back off exponentially, and remote addresses are reduced to
// the unit one party holds.
import net from 'node:net';

export interface BackoffPolicy {
  /** Failures in a row a key may have; after the last of them it waits. */
  freeFailures: number;
  /** The first wait; each further failure doubles it. */
  baseMs: number;
  /** The longest wait; a key is forgotten once this long has passed since its wait ended. */
  maxMs: number;
  /** Keys remembered at most; the least recently failed go first. */
  maxKeys: number;
}

interface Failures {
  count: number;
  /** When the key may try again (the time of its last failure if it need not wait). */
  until: number;
}

/** Counts failures per key; from its `freeFailures`-th on, each makes the key wait baseMs, 2·baseMs, ... up to maxMs. */
export class FailureBackoff {
  /** In order of last failure, oldest first (a failure re-inserts its key). */
  private readonly entries = new Map<string, Failures>();

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Milliseconds until `key` may try again; 0 if it may now. */
  waitFor(key: string): number {
    const entry = this.entries.get(key);
    return entry ? Math.max(0, entry.until - this.clock()) : 0;
  }

  /** Failures of `key` in a row, not yet forgotten. */
  failures(key: string): number {
    const entry = this.entries.get(key);
    return entry && !this.forgotten(entry, this.clock()) ? entry.count : 0;
  }

  fail(key: string): void {
    const now = this.clock();
    const previous = this.entries.get(key);
    const count = previous && !this.forgotten(previous, now) ? previous.count + 1 : 1;
    const excess = count - this.policy.freeFailures;
    const until = excess >= 0 ? now + Math.min(this.policy.baseMs * 2 ** Math.min(excess, 30), this.policy.maxMs) : now;
    this.entries.delete(key);
    this.entries.set(key, { count, until });
    this.trim(now);
  }

  /** A success ends the key's count. */
  forget(key: string): void {
    this.entries.delete(key);
  }

  /** Keys remembered now. */
  size(): number {
    return this.entries.size;
  }

  private forgotten(entry: Failures, now: number): boolean {
    return now >= entry.until + this.policy.maxMs;
  }

  /** Drops forgotten keys and those past maxKeys, oldest first, until the oldest left is neither. */
  private trim(now: number): void {
    for (const [key, entry] of this.entries) {
      if (!this.forgotten(entry, now) && this.entries.size <= this.policy.maxKeys) break;
      this.entries.delete(key);
    }
  }
}

/**
 * The part of a remote address that one party holds: an IPv4 address (also when written as
 * IPv4-mapped IPv6), or the /64 prefix of an IPv6 address, since one subscriber line or host is
 * usually given a whole /64 (RFC 6177) and could otherwise change addresses at will.
 */
export function addressSource(address: string | undefined): string {
  if (!address) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!net.isIPv6(address)) return address;
  const [head = '', tail = ''] = address.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups] : headGroups;
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}
