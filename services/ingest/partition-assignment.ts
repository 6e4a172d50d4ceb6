// Which of the RabbitMQ cluster's device partitions this ingest worker consumes. Every worker
// writes a heartbeat to the registry (migration 9's ingest_workers); those heard from within
// LEASE_MS share the partitions by rendezvous hashing: partition p goes to the worker with the
// highest hash(worker, p). Every worker computes the same answer from the same list, and a worker
// joining or leaving moves only the partitions it gains or held (about P/N), while devices keep
// their partitions (the exchange maps devices to partitions, not to workers).
//
// Two workers can briefly both believe they own a partition (one has not yet seen the other's
// heartbeat): the queues' single active consumer lets only one of them receive, so a device is
// still judged by one worker at a time.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { RegistryDb } from '../registry/db.ts';

export const HEARTBEAT_MS = 1000;
/** A worker not heard from for this long has left; its partitions go to the others. */
export const LEASE_MS = 5000;

/** The partitions `workerId` owns among `workers` (rendezvous hashing). */
export function ownedPartitions(workerId: string, workers: readonly string[], partitions: number): Set<number> {
  const owned = new Set<number>();
  for (let p = 0; p < partitions; p++) {
    let best: string | null = null;
    let bestScore = -1n;
    for (const worker of workers) {
      const score = createHash('sha256').update(`${worker}\n${p}`).digest().readBigUInt64BE(0);
      if (score > bestScore || (score === bestScore && worker < best!)) {
        best = worker;
        bestScore = score;
      }
    }
    if (best === workerId) owned.add(p);
  }
  return owned;
}

export class PartitionAssignment {
  private timer: NodeJS.Timeout | null = null;
  private owned = new Set<number>();
  private workers: string[] = [];

  constructor(
    private readonly db: RegistryDb,
    readonly workerId: string,
    private readonly partitions: number,
    /** Told the partitions this worker owns whenever they change. */
    private readonly onChange: (owned: Set<number>) => void,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Writes the first heartbeat and computes the first assignment. */
  start(): void {
    const now = this.clock();
    this.db.statement('INSERT INTO ingest_workers (worker_id, heartbeat_at, started_at) VALUES (?, ?, ?) ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at').run(this.workerId, now, now);
    this.beat();
    this.timer = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.timer.unref();
  }

  /** Leaves: the others take this worker's partitions at their next heartbeat. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    try {
      this.db.statement('DELETE FROM ingest_workers WHERE worker_id = ?').run(this.workerId);
    } catch (error) {
      this.log.warn({ error: (error as Error).message }, 'could not remove this worker from ingest_workers; the others take its partitions once its heartbeat is old');
    }
  }

  /** The workers heard from at the last heartbeat, this one included. */
  liveWorkers(): readonly string[] {
    return this.workers;
  }

  private beat(): void {
    const now = this.clock();
    let workers: string[];
    try {
      this.db.statement('UPDATE ingest_workers SET heartbeat_at = ? WHERE worker_id = ?').run(now, this.workerId);
      workers = (this.db.statement('SELECT worker_id FROM ingest_workers WHERE heartbeat_at > ? ORDER BY worker_id').all(now - LEASE_MS) as { worker_id: string }[]).map((r) => r.worker_id);
      // Rows of workers long gone (killed) are removed by whoever sees them.
      this.db.statement('DELETE FROM ingest_workers WHERE heartbeat_at < ?').run(now - 60 * LEASE_MS);
    } catch (error) {
      // The registry does not answer: keep the partitions this worker has (the queues' single
      // active consumer still keeps each with one worker) until it does.
      this.log.warn({ error: (error as Error).message }, 'no heartbeat written: the registry does not answer; keeping the partitions this worker has');
      return;
    }
    if (!workers.includes(this.workerId)) workers.push(this.workerId);
    this.workers = workers;
    const owned = ownedPartitions(this.workerId, workers, this.partitions);
    if (owned.size === this.owned.size && [...owned].every((p) => this.owned.has(p))) return;
    const gained = [...owned].filter((p) => !this.owned.has(p)).length;
    const lost = [...this.owned].filter((p) => !owned.has(p)).length;
    this.owned = owned;
    this.log.info({ workers: workers.length, partitions: owned.size, gained, lost }, `this worker now consumes ${owned.size} of ${this.partitions} partitions (${workers.length} workers)`);
    this.onChange(new Set(owned));
  }
}
