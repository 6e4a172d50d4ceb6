// The agent's one durable file (config `queueFile`): SQLite in WAL mode, so that a reader
// (`--status`) never waits for the agent and a power cut loses no committed row. It holds the
// weighings still waiting for their pair or their plate, the tickets not yet acknowledged by the
// broker, and the ticket number counter, which only ever goes up.
//
// One agent per queue file: lockQueueFile() holds an exclusive SQLite lock on `{queueFile}.lock`
// for the agent's life. Two agents on one file would publish as the same device and take the
// MQTT client id from each other; the lock is the operating system's, so it goes with the process
// (a crash or a power cut leaves no stale lock behind).
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { takeExclusiveLock } from '../../services/exclusive-lock.ts';

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

/**
 * How long a write waits for another program's lock on the queue file. Short: writes run on the
 * event loop, which reads the indicator, so a held lock must not stall it; the agent keeps what
 * it could not write in memory and tries again later (agent.ts).
 */
export const BUSY_TIMEOUT_MS = 100;

export interface OpenOptions {
  readonly?: boolean;
}

/** Opens (and creates, unless read-only) the queue file. */
export function openDb(file: string, options: OpenOptions = {}): Database.Database {
  if (!options.readonly) fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const db = new Database(file, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    if (!options.readonly) {
      db.pragma('journal_mode = WAL');
      // FULL: a ticket is on disk before the broker is told of it, and survives a power cut.
      db.pragma('synchronous = FULL');
      db.exec(SCHEMA);
    }
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}

/** What a failed read or write of the queue file means, and what to do about it. */
export function explainStorageError(error: unknown, file: string): string {
  const code = (error as { code?: unknown }).code;
  const text = (error as Error).message ?? String(error);
  // SQLITE_BUSY, SQLITE_IOERR_WRITE, …: the primary code is the word after SQLITE_.
  switch (typeof code === 'string' && code.startsWith('SQLITE_') ? code.split('_')[1] : '') {
    case 'BUSY':
    case 'LOCKED':
      return `the queue file ${file} is locked by another program (a SQLite browser, sqlite3, a backup tool): close it (${text})`;
    case 'FULL':
      return `the disk holding the queue file ${file} is full: free some space (${text})`;
    case 'READONLY':
    case 'PERM':
    case 'CANTOPEN':
    case 'AUTH':
      return `the queue file ${file} cannot be written: check that the agent's user owns it and its directory, and that the disk is not read-only (${text})`;
    case 'IOERR':
      return `disk error on the queue file ${file}: check the disk (dmesg) (${text})`;
    case 'CORRUPT':
    case 'NOTADB':
      return `the queue file ${file} is damaged: stop the agent, keep a copy of the file, and see docs/weighbridge.md "Troubleshooting" (${text})`;
    default:
      return `the queue file ${file}: ${text}`;
  }
}

/** The agent's hold on a queue file; release() lets another agent take it. */
export interface QueueFileLock {
  release(): void;
}

const HOLDER_PID = 'agent_pid';
const HOLDER_SINCE = 'agent_started_at';

/** Takes the queue file for this process, or throws saying who holds it and what to do. */
export function lockQueueFile(file: string): QueueFileLock {
  const lockFile = `${path.resolve(file)}.lock`;
  const lock = takeExclusiveLock(lockFile);
  if (!lock) {
    throw new Error(`the queue file ${path.resolve(file)} is in use by another weighbridge agent${holderOf(file)}: only one agent may use a queue file (two would publish as one device and take the broker connection from each other). Stop the other agent (systemctl stop weighbridge, or Ctrl-C in its terminal), or give this one its own --queue-file and device id. The lock is ${lockFile}.`);
  }
  return lock;
}

/** Writes this process into the queue file, for the message another agent gives. */
export function recordHolder(db: Database.Database, pid: number, now: number): void {
  const set = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value');
  db.transaction(() => {
    set.run(HOLDER_PID, pid);
    set.run(HOLDER_SINCE, now);
  })();
}

function holderOf(file: string): string {
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const get = db.prepare<[string], { value: number }>('SELECT value FROM meta WHERE key = ?');
      const pid = get.get(HOLDER_PID)?.value;
      const since = get.get(HOLDER_SINCE)?.value;
      return pid === undefined ? '' : ` (pid ${pid}${since === undefined ? '' : `, started ${new Date(since).toISOString()}`})`;
    } finally {
      db.close();
    }
  } catch {
    return '';
  }
}

/** The latest time stored: the newest weighing or queued ticket; null for an empty file. */
export function newestRecordAt(db: Database.Database): number | null {
  const row = db.prepare<[], { at: number | null }>('SELECT max(at) AS at FROM (SELECT max(ts) AS at FROM weighings UNION ALL SELECT max(created_at) FROM queue)').get();
  return row?.at ?? null;
}
