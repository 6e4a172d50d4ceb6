// The registry's database: everything that is not time series (devices, fleet, permits and
// routes, jurisdictions, tokens, alerts and their webhook outbox, sorting tonnage). Two backends
// behind one synchronous interface:
//  - SQLite (better-sqlite3), one file under the data directory: the default, for one process;
//  - PostgreSQL (`postgres://…`), shared by any number of processes (docs/deployment.md).
// The interface stays synchronous, as better-sqlite3 is, so that a transaction is one block of
// code no other work of the process interleaves with. On PostgreSQL each statement whose answer is
// read is one round trip made by a worker thread while the caller waits (postgres-backend.ts);
// what needs no answer goes with it. A transaction written as steps (steps.ts) can also run without
// holding the thread, on connections of its own (runAsync, postgres-session.ts).
// SQL is written once, in the subset both understand (`INSERT … ON CONFLICT`, CASE instead of
// two-argument MIN/MAX), with `?` or `@name` placeholders: values are always bound, never pasted.
// The database is brought to the latest schema at open (migrations.ts), under a lock on PostgreSQL.
import { MIGRATIONS, type Migration } from './migrations.ts';
import { LOCK_SQL, POSTGRES_DEFAULTS, PostgresBackend, definedOnly, type PostgresOptions } from './postgres-backend.ts';
import { PostgresSession } from './postgres-session.ts';
import type { Rows, Steps } from './steps.ts';
import { SqliteBackend } from './sqlite-backend.ts';

export type Dialect = 'sqlite' | 'postgres';

/** Longest wait at open for another process to finish applying migrations. */
const MIGRATION_WAIT_MS = 5 * 60_000;

/** What a statement's run() reports, as better-sqlite3 does. */
export interface RunResult {
  changes: number;
}

/** A statement bound to the database; parameters are positional (`?`) or one object (`@name`). */
export interface Statement {
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  run(...params: unknown[]): RunResult;
}

export type ConstraintKind = 'primary_key' | 'unique' | 'foreign_key' | 'check' | 'not_null';

/** A constraint of the schema refused a write; the same on both backends. */
export class ConstraintViolation extends Error {
  constructor(
    readonly kind: ConstraintKind,
    /** The columns named by the database, table-qualified on SQLite (trucks.plate), bare on PostgreSQL. */
    readonly columns: string[],
    message: string,
  ) {
    super(message);
  }

  /** Whether `column` (bare) is among the columns the database named. */
  names(column: string): boolean {
    return this.columns.some((c) => c === column || c.endsWith(`.${column}`));
  }
}

export const isViolation = (error: unknown, kind: ConstraintKind): error is ConstraintViolation => error instanceof ConstraintViolation && error.kind === kind;

export class MigrationError extends Error {}

/** A value the database cannot store as given (PostgreSQL: a NUL character in text, SQLSTATE 22021). */
export class DatabaseValueError extends Error {}

/** The database could not be reached or refused the connection: what, where, and how to fix it. */
export class DatabaseUnreachableError extends Error {}

/** One backend: runs single statements and scripts, and transactions around them. */
export interface SqlBackend {
  readonly dialect: Dialect;
  /** Where the data is, for logs and messages (no password). */
  readonly where: string;
  open(): void;
  query(sql: string, params: unknown[]): { rows: Record<string, unknown>[]; changes: number };
  /** Several statements, no parameters (migrations). */
  exec(sql: string): void;
  begin(): void;
  commit(): void;
  rollback(): void;
  /**
   * Calls `listener` soon after another process commits a change to the devices or service
   * accounts (SQLite: its data_version, polled; PostgreSQL: LISTEN/NOTIFY); returns the unsubscribe.
   */
  watchDevices(listener: () => void, pollMs: number): () => void;
  close(): void;
}

/** What PostgreSQL adds: notices between processes (LISTEN/NOTIFY). */
interface Notifying {
  listen(channel: string, listener: (payload: string | null) => void): () => void;
  notify(channel: string, payload: string, inTransaction: boolean): void;
  deferred(sql: string, values: unknown[]): void;
}

export interface RegistryDbOptions extends Partial<PostgresOptions> {
  migrations?: readonly Migration[];
}

/** A location names PostgreSQL by its URL; anything else is a SQLite file (`sqlite:` prefix optional). */
export function isPostgresLocation(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

export class RegistryDb {
  private readonly backend: SqlBackend;
  private readonly migrations: readonly Migration[];
  private opened = false;
  private depth = 0;
  private applied: { version: number; name: string }[] = [];
  private readonly options: RegistryDbOptions;
  /** The connections of runAsync(), by lane, made at their first transaction. */
  private readonly sessions: PostgresSession[] = [];

  constructor(
    /** A SQLite file (optionally `sqlite:FILE`) or a `postgres://` URL. */
    readonly location: string,
    options: RegistryDbOptions = {},
  ) {
    this.migrations = options.migrations ?? MIGRATIONS;
    this.options = options;
    this.backend = isPostgresLocation(location) ? new PostgresBackend(location, options) : new SqliteBackend(location.replace(/^sqlite:/, ''));
  }

  get dialect(): Dialect {
    return this.backend.dialect;
  }

  /** Where the data is, for logs: a file, or host:port/database. */
  get where(): string {
    return this.backend.where;
  }

  /** Connects (creating the SQLite file and its directory), and applies pending migrations. */
  open(): this {
    if (this.opened) return this;
    this.backend.open();
    try {
      this.migrate();
    } catch (error) {
      this.backend.close();
      throw error;
    }
    this.opened = true;
    return this;
  }

  private migrate(): void {
    const postgres = this.dialect === 'postgres';
    // Several processes starting together: one applies the migrations, the others wait for it
    // and then find them applied. Each migration is its own transaction, so a failed one leaves
    // the database at the version before it.
    if (postgres) this.takeMigrationLock();
    try {
      this.backend.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
      const applied = new Set(this.query('SELECT version FROM schema_migrations', []).rows.map((r) => Number(r.version)));
      const newest = Math.max(0, ...applied);
      const latest = Math.max(0, ...this.migrations.map((m) => m.version));
      if (newest > latest) throw new MigrationError(`${this.where} has schema version ${newest}, newer than this program knows (${latest}); upgrade the program`);
      for (const migration of [...this.migrations].sort((a, b) => a.version - b.version)) {
        if (applied.has(migration.version)) continue;
        try {
          this.transaction(() => {
            this.backend.exec(postgres ? migration.postgres : migration.sqlite);
            this.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [migration.version, migration.name, new Date().toISOString()]);
          });
        } catch (error) {
          throw new MigrationError(`migration ${migration.version} (${migration.name}) failed on ${this.where}: ${(error as Error).message}`);
        }
        this.applied.push({ version: migration.version, name: migration.name });
      }
    } finally {
      try {
        if (postgres) this.query("SELECT pg_advisory_unlock(hashtext('waste-registry-migrations'))", []);
      } catch {
        // The connection is gone, and the lock with it; the error that matters is thrown already.
      }
    }
  }

  /** The migrations open() applied, oldest first; none when the database was up to date (`db migrate` reports them). */
  get appliedAtOpen(): readonly { version: number; name: string }[] {
    return this.applied;
  }

  /**
   * Waits its turn to migrate, polling (a blocking pg_advisory_lock would be one statement held
   * past database.statementTimeoutMs while another process runs long migrations).
   */
  private takeMigrationLock(): void {
    const deadline = Date.now() + MIGRATION_WAIT_MS;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    while (!(this.query("SELECT pg_try_advisory_lock(hashtext('waste-registry-migrations')) AS locked", []).rows[0] as { locked: boolean }).locked) {
      if (Date.now() > deadline) throw new MigrationError(`another process has been migrating ${this.where} for more than ${MIGRATION_WAIT_MS / 60_000} min; see what it is doing (pg_stat_activity), or stop it`);
      Atomics.wait(pause, 0, 0, 100);
    }
  }

  /** Whether a transaction is under way on this connection. */
  get inTransaction(): boolean {
    return this.depth > 0;
  }

  get isOpen(): boolean {
    return this.opened;
  }

  private query(sql: string, params: unknown[]): { rows: Record<string, unknown>[]; changes: number } {
    return this.backend.query(sql, params);
  }

  /** A statement; cheap to ask for again (each backend keeps what it prepared per SQL text). */
  statement(sql: string): Statement {
    return {
      get: (...params) => this.query(sql, params).rows[0],
      all: (...params) => this.query(sql, params).rows,
      run: (...params) => ({ changes: this.query(sql, params).changes }),
    };
  }

  schemaVersion(): number {
    const row = this.statement('SELECT MAX(version) AS version FROM schema_migrations').get() as { version: number | null };
    return Number(row.version ?? 0);
  }

  /**
   * Runs `work` in one transaction: all of it is written, or none of it. Nested calls are
   * savepoints, as better-sqlite3's are. `work` must be synchronous.
   */
  transaction<T>(work: () => T): T {
    const savepoint = this.depth > 0 ? `sp${this.depth}` : null;
    if (savepoint) this.backend.exec(`SAVEPOINT ${savepoint}`);
    else this.backend.begin();
    this.depth++;
    let result: T;
    try {
      result = work();
      if (result instanceof Promise) throw new Error('a registry transaction must be synchronous');
    } catch (error) {
      this.depth--;
      this.undo(savepoint);
      throw error;
    }
    this.depth--;
    try {
      if (savepoint) this.backend.exec(`RELEASE SAVEPOINT ${savepoint}`);
      else this.backend.commit();
    } catch (error) {
      // A COMMIT (or RELEASE) that fails leaves nothing of the transaction (or savepoint) written.
      this.undo(savepoint);
      throw error;
    }
    return result;
  }

  private undo(savepoint: string | null): void {
    try {
      if (savepoint) this.backend.exec(`ROLLBACK TO SAVEPOINT ${savepoint}; RELEASE SAVEPOINT ${savepoint}`);
      else this.backend.rollback();
    } catch {
      // The connection is gone; the transaction went with it.
    }
  }


  /**
   * Inside a transaction: waits until no other process holds `key`, and holds it until the
   * transaction ends. For check-then-write sequences (one open alert per subject and type) that
   * PostgreSQL's READ COMMITTED would otherwise let two processes interleave; on SQLite writers
   * are serialised already.
   */
  serialize(key: string): void {
    if (this.depth === 0) throw new Error('serialize() outside a transaction');
    // Sent with the transaction's next statement: it waits there, and nothing is read before it.
    if (this.dialect === 'postgres') (this.backend as SqlBackend & Notifying).deferred(LOCK_SQL, [key]);
  }

  /** Runs statements without parameters (a script, a schema change). */
  exec(sql: string): void {
    this.backend.exec(sql);
  }

  /**
   * Tells every process listening on `channel` (PostgreSQL's NOTIFY, sent at COMMIT of the
   * transaction this is in, not at all if it rolls back). Nothing on SQLite: one process.
   */
  notify(channel: string, payload: string): void {
    if (this.dialect === 'postgres') (this.backend as SqlBackend & Notifying).notify(channel, payload, this.depth > 0);
  }

  /** Runs a transaction written as steps (steps.ts) on this connection, the caller waiting; inside a transaction, as part of it. */
  run<T>(steps: Steps<T>): T {
    const work = () => {
      let answer: Rows | undefined;
      for (;;) {
        const next = steps.next(answer);
        if (next.done) return next.value;
        answer = undefined;
        const step = next.value;
        if (step.kind === 'select') answer = this.query(step.sql, step.params).rows;
        else if (step.kind === 'write') this.writeInTransaction(step.sql, ...step.params);
        else if (step.kind === 'lock') this.serialize(step.key);
        else this.notify(step.channel, step.payload);
      }
    };
    return this.depth > 0 ? work() : this.transaction(work);
  }

  /**
   * Runs the transaction `make` gives without holding this thread for its round trips: on
   * PostgreSQL on a connection of its own (postgres-session.ts, one per `lane`), after the ones
   * given before in that lane; on SQLite, whose statements take microseconds, at once. Its steps
   * must not use this connection.
   */
  runAsync<T>(make: () => Steps<T>, lane = 0): Promise<T> {
    if (this.dialect !== 'postgres') {
      try {
        return Promise.resolve(this.run(make()));
      } catch (error) {
        return Promise.reject(error as Error);
      }
    }
    if (!this.opened) return Promise.reject(new Error('registry database is not open'));
    const sessions = this.sessions;
    sessions[lane] ??= new PostgresSession(this.location, { ...POSTGRES_DEFAULTS, ...definedOnly(this.options) });
    return sessions[lane].run(make);
  }

  /**
   * Hears the notices of `channel` from every process, this one included; `null` after the
   * connection that listens was made (again), when notices may have been missed. Nothing to hear
   * on SQLite. Returns the function that stops listening.
   */
  listen(channel: string, listener: (payload: string | null) => void): () => void {
    return this.dialect === 'postgres' ? (this.backend as SqlBackend & Notifying).listen(channel, listener) : () => {};
  }

  /**
   * Inside a transaction, a write whose outcome the caller does not read (no count, no rows): on
   * PostgreSQL it goes with the transaction's next statement, one wait fewer. A failure of it fails
   * that statement, or the COMMIT, and so the whole transaction, as it would have here.
   */
  writeInTransaction(sql: string, ...params: unknown[]): void {
    if (this.depth === 0) throw new Error('writeInTransaction() outside a transaction');
    if (this.dialect === 'postgres') (this.backend as SqlBackend & Notifying).deferred(sql, params);
    else this.query(sql, params);
  }

  /** See SqlBackend.watchDevices. */
  watchDevices(listener: () => void, pollMs: number): () => void {
    return this.backend.watchDevices(listener, pollMs);
  }

  /** The unique columns of `table` (single-column unique constraints, the primary key left out). */
  uniqueColumns(table: string): string[] {
    const sql =
      this.dialect === 'postgres'
        ? `SELECT a.attname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
           WHERE c.relname = ? AND c.relnamespace = to_regnamespace(current_schema())::oid AND i.indisunique AND NOT i.indisprimary AND i.indnatts = 1 AND i.indpred IS NULL`
        : `SELECT ii.name AS name FROM pragma_index_list(?) il JOIN pragma_index_info(il.name) ii WHERE il."unique" = 1 AND il.origin = 'u'`;
    return [...new Set(this.statement(sql).all(table).map((r) => (r as { name: string }).name))].sort();
  }

  /** Inside a transaction: foreign keys are checked at COMMIT instead of at each statement. */
  deferForeignKeys(): void {
    this.backend.exec(this.dialect === 'postgres' ? 'SET CONSTRAINTS ALL DEFERRED' : 'PRAGMA defer_foreign_keys = ON');
  }

  close(): void {
    for (const session of this.sessions.splice(0)) void session.close();
    this.backend.close();
    this.opened = false;
    this.depth = 0;
  }
}
