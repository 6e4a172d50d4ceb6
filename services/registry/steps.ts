// A transaction written once as a generator of steps, for the registry's two ways of running one:
// at once on the process's own connection (RegistryDb.run: SQLite, or PostgreSQL while the caller
// waits), or on a connection of its own without holding the thread for any round trip
// (RegistryDb.runAsync: PostgreSQL, postgres-session.ts). The alert store records findings this
// way: on PostgreSQL every wait of an alert change would otherwise stop the ingest path with it.
//
//   function* raise(): Steps<string> {
//     yield lock('alert:overflow:BIN-1');
//     const rows = yield* select('SELECT id FROM alerts WHERE subject_id = ?', 'BIN-1');
//     yield write('INSERT INTO alert_history …', …);
//     return rows[0]?.id;
//   }

/** One step: a statement whose rows are wanted, a write whose outcome is not, a lock, a notice. */
export type Step =
  | { kind: 'select'; sql: string; params: unknown[] }
  | { kind: 'write'; sql: string; params: unknown[] }
  | { kind: 'lock'; key: string }
  | { kind: 'notify'; channel: string; payload: string };

/** What a select step is answered with. */
export type Rows = unknown[];

export type Steps<T> = Generator<Step, T, Rows | undefined>;

/** The rows of a statement (`?` or one object of `@name` values, as RegistryDb.statement takes). */
export function* select(sql: string, ...params: unknown[]): Generator<Step, Rows, Rows | undefined> {
  return (yield { kind: 'select', sql, params }) ?? [];
}

/** A write whose outcome is not read: on PostgreSQL it goes with the next statement, or the COMMIT. */
export function write(sql: string, ...params: unknown[]): Step {
  return { kind: 'write', sql, params };
}

/** Waits until no other process holds `key`, and holds it until the transaction ends (RegistryDb.serialize). */
export function lock(key: string): Step {
  return { kind: 'lock', key };
}

/** Told to every process listening on `channel` when the transaction commits (RegistryDb.notify). */
export function notice(channel: string, payload: string): Step {
  return { kind: 'notify', channel, payload };
}
