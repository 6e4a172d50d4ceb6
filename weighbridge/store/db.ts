// The agent's one durable file (config `queueFile`): SQLite in WAL mode, so that a reader
// (`--status`) never waits for the agent and a power cut loses no committed row. It holds the
// weighings still waiting for their pair or their plate, the tickets not yet acknowledged by the
// broker, and the ticket number counter, which only ever goes up.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS weighings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    kg REAL NOT NULL,
    plate TEXT,
    plate_source TEXT
  );
  CREATE INDEX IF NOT EXISTS weighings_plate ON weighings(plate);
  CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
`;

export interface OpenOptions {
  readonly?: boolean;
}

/** Opens (and creates, unless read-only) the queue file. */
export function openDb(file: string, options: OpenOptions = {}): Database.Database {
  if (!options.readonly) fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const db = new Database(file, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
  if (!options.readonly) {
    db.pragma('journal_mode = WAL');
    // FULL: a ticket is on disk before the broker is told of it, and survives a power cut.
    db.pragma('synchronous = FULL');
    db.exec(SCHEMA);
  }
  db.pragma('busy_timeout = 2000');
  return db;
}
