// The embedded backend of the registry (db.ts): one SQLite file through better-sqlite3, for a
// service that runs as one process. Opened in WAL mode (readers never wait for the writer), with
// foreign keys enforced.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ConstraintViolation, DatabaseUnreachableError, type ConstraintKind, type SqlBackend } from './db.ts';

/**
 * Prepared statements kept per connection. better-sqlite3 compiles the SQL on every prepare(),
 * which cost more than running the statement on the alerts' hot path; statements built from a
 * filter (IN lists of varying length) come in a few shapes only, and the oldest is dropped past this.
 */
const STATEMENT_CACHE_SIZE = 500;

const CONSTRAINT_CODES: Record<string, ConstraintKind> = {
  SQLITE_CONSTRAINT_PRIMARYKEY: 'primary_key',
  SQLITE_CONSTRAINT_UNIQUE: 'unique',
  SQLITE_CONSTRAINT_FOREIGNKEY: 'foreign_key',
  SQLITE_CONSTRAINT_CHECK: 'check',
  SQLITE_CONSTRAINT_NOTNULL: 'not_null',
};

/** SQLite's own error, as the backend-neutral ConstraintViolation where it is one. */
function translate(error: unknown): unknown {
  const code = (error as { code?: string }).code;
  const kind = code ? CONSTRAINT_CODES[code] : undefined;
  if (!kind) return error;
  // "UNIQUE constraint failed: trucks.plate, trucks.company_id"
  const columns = /constraint failed: (.*)$/.exec((error as Error).message)?.[1]?.split(', ') ?? [];
  return new ConstraintViolation(kind, columns, (error as Error).message);
}

export class SqliteBackend implements SqlBackend {
  readonly dialect = 'sqlite' as const;
  private db: Database.Database | null = null;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(readonly file: string) {}

  get where(): string {
    return this.file;
  }

  open(): void {
    if (this.db) return;
    try {
      if (this.file !== ':memory:') fs.mkdirSync(path.dirname(this.file), { recursive: true });
      this.db = new Database(this.file);
    } catch (error) {
      throw new DatabaseUnreachableError(`cannot open the registry database ${this.file}: ${(error as Error).message}. Check that the directory is writable, or set registry.file (WASTE_REGISTRY_FILE).`);
    }
    const db = this.db;
    db.pragma('journal_mode = WAL');
    // In WAL mode NORMAL syncs at checkpoints, not at every commit: a crash of the process loses
    // nothing, a power cut may lose the last commits (SQLite docs, "PRAGMA synchronous"). Alerts
    // are written on the rules' hot path, and what a power cut takes back the rules raise again
    // from the history they replay at start.
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    // Another process (the CLI) may hold the write lock briefly; wait instead of failing.
    db.pragma('busy_timeout = 5000');
  }

  private connection(): Database.Database {
    if (!this.db) throw new Error('registry database is not open');
    return this.db;
  }

  private statement(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.connection().prepare(sql);
      if (this.statements.size >= STATEMENT_CACHE_SIZE) this.statements.delete(this.statements.keys().next().value!);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  query(sql: string, params: unknown[]): { rows: Record<string, unknown>[]; changes: number } {
    try {
      const statement = this.statement(sql);
      if (statement.reader) return { rows: statement.all(...params) as Record<string, unknown>[], changes: 0 };
      return { rows: [], changes: statement.run(...params).changes };
    } catch (error) {
      throw translate(error);
    }
  }

  exec(sql: string): void {
    try {
      this.connection().exec(sql);
    } catch (error) {
      throw translate(error);
    }
  }

  begin(): void {
    this.connection().exec('BEGIN');
  }

  commit(): void {
    try {
      this.connection().exec('COMMIT');
    } catch (error) {
      // A deferred foreign key fails at COMMIT; the transaction is still open then.
      if (this.connection().inTransaction) this.connection().exec('ROLLBACK');
      throw translate(error);
    }
  }

  rollback(): void {
    if (this.connection().inTransaction) this.connection().exec('ROLLBACK');
  }

  watchDevices(listener: () => void, pollMs: number): () => void {
    // data_version changes whenever another connection commits (SQLite docs, "PRAGMA data_version");
    // this connection's own commits are told by the store itself.
    const read = () => this.connection().pragma('data_version', { simple: true }) as number;
    let version = read();
    const timer = setInterval(() => {
      if (!this.db) return;
      const now = read();
      if (now !== version) {
        version = now;
        listener();
      }
    }, pollMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  close(): void {
    this.statements.clear();
    this.db?.close();
    this.db = null;
  }
}
