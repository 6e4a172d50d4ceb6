// Request limits that every API process counts alike, kept in the registry database (migration
// 8's api_rate_limits): on PostgreSQL, with several API processes behind a load balancer, a client
// has one allowance, not one per process it happens to reach. Fixed windows, one row per key,
// brought up to date and read back in one statement (INSERT … ON CONFLICT … RETURNING, which
// PostgreSQL and SQLite 3.35+ both take). A single process on SQLite counts in memory instead.
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { RegistryDb } from '../registry/db.ts';

/** Rows of windows that ended are removed at most this often, by whichever process notices. */
const SWEEP_EVERY_MS = 60_000;

export class SharedWindows {
  private lastSweep = 0;

  constructor(
    private readonly db: RegistryDb,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Counts one request of `key`; its count in the current window and when that window ends. */
  hit(key: string, windowMs: number): { count: number; until: number } {
    const now = this.clock();
    this.sweep(now, windowMs);
    const row = this.db
      .statement(
        `INSERT INTO api_rate_limits (client, window_start, hits) VALUES (@key, @now, 1)
         ON CONFLICT (client) DO UPDATE SET
           hits = CASE WHEN api_rate_limits.window_start + @window <= @now THEN 1 ELSE api_rate_limits.hits + 1 END,
           window_start = CASE WHEN api_rate_limits.window_start + @window <= @now THEN @now ELSE api_rate_limits.window_start END
         RETURNING hits, window_start`,
      )
      .get({ key, now, window: windowMs }) as { hits: number; window_start: number };
    return { count: row.hits, until: row.window_start + windowMs };
  }

  /** The count of `key` in its current window, without counting; 0 once the window is over. */
  peek(key: string, windowMs: number): { count: number; until: number } {
    const now = this.clock();
    const row = this.db.statement('SELECT hits, window_start FROM api_rate_limits WHERE client = ?').get(key) as { hits: number; window_start: number } | undefined;
    if (!row || row.window_start + windowMs <= now) return { count: 0, until: now };
    return { count: row.hits, until: row.window_start + windowMs };
  }

  private sweep(now: number, windowMs: number): void {
    if (now - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = now;
    this.db.statement('DELETE FROM api_rate_limits WHERE window_start < ?').run(now - Math.max(windowMs, SWEEP_EVERY_MS));
  }
}

type Callback = (error: Error | null, result?: { current: number; ttl: number }) => void;

/** A window's count as the plugin takes it, or the error reading it gave. */
function answer(callback: Callback, count: () => { count: number; until: number }): void {
  try {
    const { count: current, until } = count();
    callback(null, { current, ttl: Math.max(0, until - Date.now()) });
  } catch (error) {
    callback(error as Error);
  }
}

/** The store interface of @fastify/rate-limit (its README, "Custom stores"), over SharedWindows. */
export class SharedRateLimitStore implements FastifyRateLimitStore {
  /** The store as the plugin's `store` option takes it: a class it constructs. */
  static over(windows: SharedWindows): FastifyRateLimitStoreCtor {
    return class extends SharedRateLimitStore {
      constructor() {
        super(windows);
      }
    };
  }

  constructor(
    private readonly windows: SharedWindows,
    private readonly prefix = 'rate:',
  ) {}

  incr(key: string, callback: Callback, timeWindow: number): void {
    answer(callback, () => this.windows.hit(this.prefix + key, timeWindow));
  }

  read(key: string, callback: Callback, timeWindow: number): void {
    answer(callback, () => this.windows.peek(this.prefix + key, timeWindow));
  }

  /** A route with limits of its own counts apart from the others. */
  child(routeOptions: { method: string | string[]; url: string }): SharedRateLimitStore {
    return new SharedRateLimitStore(this.windows, `${this.prefix}${String(routeOptions.method)} ${routeOptions.url}:`);
  }
}
