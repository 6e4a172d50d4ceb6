// Exactly one active scheduler across the processes of the service (docs/deployment.md). The
// scheduled work (the separation-rate job, webhook delivery, the open-alert counts) runs in the
// process that holds the lease; the others stand by and try again every leaseCheckMs.
//  - SQLite: one process owns the file, so it holds the lease from the start.
//  - PostgreSQL: a session-level advisory lock (PostgreSQL docs, "Advisory Locks") held on a
//    connection of its own. A process that dies, SIGKILL included, loses its connection and with
//    it the lock, at once on one machine and within the TCP keepalive elsewhere; the holder checks
//    its connection at every leaseCheckMs and stops its work as soon as it cannot.
import type { Logger } from 'pino';
import pg from 'pg';
import { isPostgresLocation } from '../registry/db.ts';
import { describePostgresUrl } from '../registry/postgres-backend.ts';

/** The lock's key: any 64-bit number no other advisory lock of the database uses. */
const LOCK_KEY = "hashtext('waste-telemetry scheduler')";

export interface LeaseEvents {
  /** This process holds the lease now: start the scheduled work. */
  onAcquired(): void;
  /** It lost the lease (its connection broke) or is stopping: stop the scheduled work now. */
  onLost(): Promise<void> | void;
}

export class SchedulerLease {
  private client: pg.Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  private held = false;
  private stopped = true;
  private checking: Promise<void> | null = null;

  constructor(
    private readonly location: string,
    private readonly options: { leaseCheckMs: number; connectTimeoutMs: number },
    private readonly events: LeaseEvents,
    private readonly log: Logger,
  ) {}

  get holds(): boolean {
    return this.held;
  }

  start(): void {
    this.stopped = false;
    if (!isPostgresLocation(this.location)) {
      this.acquired();
      return;
    }
    const tick = () => {
      this.checking ??= this.check().finally(() => (this.checking = null));
      this.timer = setTimeout(tick, this.options.leaseCheckMs);
      this.timer.unref();
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.checking;
    await this.lose('stopping');
    await this.client?.end().catch(() => {});
    this.client = null;
  }

  private acquired(): void {
    this.held = true;
    this.log.info({ database: isPostgresLocation(this.location) ? describePostgresUrl(this.location) : this.location }, 'this process is the active scheduler');
    this.events.onAcquired();
  }

  private async lose(reason: string): Promise<void> {
    if (!this.held) return;
    this.held = false;
    this.log.warn({ reason }, 'this process is no longer the active scheduler; its scheduled work stops');
    await this.events.onLost();
  }

  /** Holder: is the connection (and so the lock) still there? Standby: try to take the lock. */
  private async check(): Promise<void> {
    try {
      const client = await this.connection();
      if (this.held) {
        await client.query('SELECT 1');
        return;
      }
      const { rows } = await client.query<{ locked: boolean }>(`SELECT pg_try_advisory_lock(${LOCK_KEY}) AS locked`);
      if (rows[0]?.locked && !this.stopped) this.acquired();
    } catch (error) {
      this.client?.end().catch(() => {});
      this.client = null;
      await this.lose(`the connection to PostgreSQL failed: ${(error as Error).message}`);
    }
  }

  private async connection(): Promise<pg.Client> {
    if (this.client) return this.client;
    // A check that gets no answer (the network to PostgreSQL cut, not reset) fails after a few
    // check intervals instead of hanging, and the work stops: the lock may be another's by then.
    const client = new pg.Client({
      connectionString: this.location,
      connectionTimeoutMillis: this.options.connectTimeoutMs,
      query_timeout: Math.max(3 * this.options.leaseCheckMs, 2000),
      application_name: 'waste-telemetry (scheduler lease)',
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    // A broken connection has lost the lock with it: the next check notices and stops the work.
    client.on('error', () => {
      if (this.client === client) this.client = null;
      void this.lose('the connection holding the lease broke');
    });
    await client.connect();
    this.client = client;
    return client;
  }
}
