// Transactions written as steps (steps.ts) and run without holding the thread
// (RegistryDb.runAsync, postgres-session.ts), on a real PostgreSQL: the event loop turns while one
// waits, writes go with the next statement or the COMMIT and fail the whole transaction, order
// is kept, and a server that stops answering is given up on. On SQLite the same steps run at once.
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { ConstraintViolation, DatabaseUnreachableError, RegistryDb } from '../../../services/registry/db.ts';
import { PostgresSession } from '../../../services/registry/postgres-session.ts';
import { lock, select, write, type Steps } from '../../../services/registry/steps.ts';
import { freePort } from '../../helpers/ports.ts';
import { BACKENDS, registryLocations } from '../../helpers/registry-backends.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const INSERT = "INSERT INTO companies (id, name, created_at, updated_at) VALUES (?, 'n', 'x', 'x')";

const opened: RegistryDb[] = [];
const clients: pg.Client[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) await client.end().catch(() => {});
  for (const db of opened.splice(0)) db.close();
});

function open(location: string, options: ConstructorParameters<typeof RegistryDb>[1] = {}): RegistryDb {
  const db = new RegistryDb(location, options).open();
  opened.push(db);
  return db;
}

const ids = (db: RegistryDb) => (db.statement('SELECT id FROM companies ORDER BY id').all() as { id: string }[]).map((r) => r.id);

describe.each(BACKENDS)('steps on %s', (backend) => {
  const location = registryLocations(backend);

  it('runs them as one transaction: a select sees the writes before it, a failed write leaves nothing', async () => {
    const db = open(await location());
    function* two(first: string, second: string): Steps<unknown[]> {
      yield write(INSERT, first);
      const seen = yield* select('SELECT COUNT(*) AS n FROM companies');
      yield write(INSERT, second);
      return seen;
    }
    expect(await db.runAsync(() => two('a', 'b'))).toEqual([{ n: 1 }]);
    expect(db.run(two('c', 'd'))).toEqual([{ n: 3 }]);
    expect(ids(db)).toEqual(['a', 'b', 'c', 'd']);
    // The second write fails at the COMMIT (PostgreSQL) or at once (SQLite): the first goes with it.
    function* duplicate(): Steps<void> {
      yield write(INSERT, 'e');
      yield write(INSERT, 'e');
    }
    await expect(db.runAsync(duplicate)).rejects.toBeInstanceOf(ConstraintViolation);
    expect(() => db.run(duplicate())).toThrow(ConstraintViolation);
    expect(ids(db)).toEqual(['a', 'b', 'c', 'd']);
  });
});

describe('steps on PostgreSQL, run without holding the thread', () => {
  const location = registryLocations('postgres');

  async function client(url: string): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    clients.push(c);
    return c;
  }

  it('lets the event loop turn while a transaction waits for a lock another connection holds', async () => {
    const url = await location();
    const db = open(url);
    const holder = await client(url);
    await holder.query('BEGIN');
    await holder.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', ['alert:dump:T1']);
    let settled = false;
    const run = db.runAsync(function* () {
      yield lock('alert:dump:T1');
      yield write(INSERT, 'after-lock');
      return yield* select('SELECT COUNT(*) AS n FROM companies');
    });
    void run.finally(() => (settled = true));
    // Waiting at the lock, seen from the server.
    const watcher = await client(url);
    for (let i = 0; i < 100 && Number((await watcher.query("SELECT COUNT(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")).rows[0].n) === 0; i++) await sleep(20);
    let turns = 0;
    const ticking = setInterval(() => turns++, 5);
    await sleep(200);
    clearInterval(ticking);
    expect(settled).toBe(false);
    expect(turns).toBeGreaterThan(10);
    // Nothing of it is written before the lock is let go.
    expect(ids(db)).toEqual([]);
    await holder.query('COMMIT');
    expect(await run).toEqual([{ n: 1 }]);
    expect(ids(db)).toEqual(['after-lock']);
  });

  it('runs transactions one after the other in the order given', async () => {
    const db = open(await location());
    const runs = Array.from({ length: 40 }, (_, i) =>
      db.runAsync(function* () {
        const [{ n }] = (yield* select('SELECT COUNT(*) AS n FROM companies')) as [{ n: number }];
        yield write(INSERT, `c${String(i).padStart(2, '0')}`);
        return n;
      }),
    );
    expect(await Promise.all(runs)).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });

  it('gives up on a server that stops answering, writes nothing of what it gave up, and goes on on a new connection', async () => {
    const url = await location();
    const db = open(url, { statementTimeoutMs: 300, connectTimeoutMs: 300 });
    const pid = ((await db.runAsync(() => select('SELECT pg_backend_pid() AS pid'))) as { pid: number }[])[0]!.pid;
    process.kill(pid, 'SIGSTOP');
    try {
      await expect(
        db.runAsync(function* () {
          yield write(INSERT, 'stalled');
          yield* select('SELECT 1');
        }),
      ).rejects.toThrow(DatabaseUnreachableError);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await db.runAsync(function* () {
      yield write(INSERT, 'next');
    });
    await sleep(300);
    expect(ids(db)).toEqual(['next']);
  });

  it('cuts off at close a transaction the server does not answer, instead of waiting for the statement timeout', async () => {
    const url = await location();
    const session = new PostgresSession(url, { statementTimeoutMs: 60_000, connectTimeoutMs: 1000, applicationName: 'test' });
    const [{ pid }] = (await session.run(() => select('SELECT pg_backend_pid() AS pid'))) as [{ pid: number }];
    process.kill(pid, 'SIGSTOP');
    try {
      const stalled = session.run(function* () {
        yield write(INSERT, 'stalled');
        yield* select('SELECT 1');
      });
      stalled.catch(() => {});
      // Sent, and waiting for the answer.
      await sleep(200);
      // Well within this test's time limit, and a minute before the statement timeout.
      await session.close();
      await expect(stalled).rejects.toThrow(DatabaseUnreachableError);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });

  it('says where the server is and how to fix it when none answers, without the password', async () => {
    const port = await freePort();
    const session = new PostgresSession(`postgres://waste:secret@127.0.0.1:${port}/registry`, { statementTimeoutMs: 1000, connectTimeoutMs: 1000, applicationName: 'test' });
    const failure = session.run(() => select('SELECT 1'));
    await expect(failure).rejects.toThrow(DatabaseUnreachableError);
    await expect(failure).rejects.toThrow(new RegExp(`PostgreSQL at postgres://127\\.0\\.0\\.1:${port}/registry is unreachable.*WASTE_DATABASE_URL`));
    await expect(failure).rejects.not.toThrow(/secret/);
    await session.close();
  });
});
