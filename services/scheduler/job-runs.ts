// Runs of scheduled jobs, claimed in the registry (migration 8's job_runs): a run of a job for a
// slot (the hour it was scheduled for) is made by one process only, whichever claims it first. The
// lease (lease.ts) keeps one scheduler active; this keeps a run from being made twice when a
// standby takes over within the hour the one before it ran, or during the moment two believe
// they hold the lease.
import os from 'node:os';
import type { RegistryDb } from '../registry/db.ts';

export interface JobRun {
  job: string;
  slot: string;
  runner: string;
  started_at: number;
}

export class JobRuns {
  /** This process, as recorded with the runs it claims. */
  readonly runner: string;

  constructor(private readonly db: RegistryDb) {
    this.runner = `${process.pid}@${os.hostname()}`;
  }

  /** Claims run `slot` of `job`; false when it was claimed already, by any process. */
  claim(job: string, slot: string, now = Date.now()): boolean {
    return this.db.statement('INSERT INTO job_runs (job, slot, runner, started_at) VALUES (?, ?, ?, ?) ON CONFLICT (job, slot) DO NOTHING').run(job, slot, this.runner, now).changes === 1;
  }

  /** The runs of a job, oldest first. */
  runs(job: string): JobRun[] {
    return this.db.statement('SELECT job, slot, runner, started_at FROM job_runs WHERE job = ? ORDER BY slot').all(job) as JobRun[];
  }
}
