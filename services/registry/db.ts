// The registry's embedded database: one SQLite file under the data directory (better-sqlite3).
// Opened in WAL mode (readers never wait for the writer), with foreign keys enforced, and brought
// to the latest schema at open: each pending migration runs in its own transaction, so a failed
// one leaves the file at the previous version.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS, type Migration } from './migrations.ts';

export type Sqlite = Database.Database;

export class MigrationError extends Error {}

/**
 * Prepared statements kept per connection. better-sqlite3 compiles the SQL on every prepare(),
 * which cost more than running the statement on the alerts' hot path; statements built from a
 * filter (IN lists of varying length) come in a few shapes only, and the oldest is dropped past this.
 */
const STATEMENT_CACHE_SIZE = 500;

export class RegistryDb {
  private db: Sqlite | null = null;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(
    readonly file: string,
    private readonly migrations: readonly Migration[] = MIGRATIONS,
  ) {}

  /** Opens the file (creating it and its directory), and applies pending migrations. */
  open(): Sqlite {
    if (this.db) return this.db;
    if (this.file !== ':memory:') fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const db = new Database(this.file);
    db.pragma('journal_mode = WAL');
    // In WAL mode NORMAL syncs at checkpoints, not at every commit: a crash of the process loses
    // nothing, a power cut may lose the last commits (SQLite docs, "PRAGMA synchronous"). Alerts
    // are written on the rules' hot path, and what a power cut takes back the rules raise again
    // from the history they replay at start.
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    // Another process (the CLI) may hold the write lock briefly; wait instead of failing.
    db.pragma('busy_timeout = 5000');
    db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
    const applied = new Set((db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version));
    const newest = Math.max(0, ...applied);
    const latest = Math.max(0, ...this.migrations.map((m) => m.version));
    if (newest > latest) {
      db.close();
      throw new MigrationError(`${this.file} has schema version ${newest}, newer than this program knows (${latest}); upgrade the program`);
    }
    for (const migration of [...this.migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(migration.version)) continue;
      try {
        db.transaction(() => {
          db.exec(migration.sql);
          db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(migration.version, migration.name, new Date().toISOString());
        })();
      } catch (error) {
        db.close();
        throw new MigrationError(`migration ${migration.version} (${migration.name}) failed: ${(error as Error).message}`);
      }
    }
    this.db = db;
    return db;
  }

  get connection(): Sqlite {
    if (!this.db) throw new Error('registry database is not open');
    return this.db;
  }

  /** The prepared statement for `sql`, compiled once per connection. */
  statement(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.connection.prepare(sql);
      if (this.statements.size >= STATEMENT_CACHE_SIZE) this.statements.delete(this.statements.keys().next().value!);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  schemaVersion(): number {
    const row = this.statement('SELECT MAX(version) AS version FROM schema_migrations').get() as { version: number | null };
    return row.version ?? 0;
  }

  /** Runs `work` in one transaction: all of it is written, or none of it. */
  transaction<T>(work: () => T): T {
    return this.connection.transaction(work)();
  }

  close(): void {
    this.statements.clear();
    this.db?.close();
    this.db = null;
  }
}
