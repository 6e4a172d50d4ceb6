// One process at a time on a directory or file: an exclusive transaction held open on a SQLite
// file nothing is written to (SQLite's own locking, fcntl on POSIX: released by the kernel when
// the process dies, SIGKILL included, so no stale lock is left behind).
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

export interface ExclusiveLock {
  release(): void;
}

/** Takes `lockFile` for this process; null when another process holds it. */
export function takeExclusiveLock(lockFile: string): ExclusiveLock | null {
  let lock: Database.Database;
  try {
    fs.mkdirSync(path.dirname(lockFile), { recursive: true });
    lock = new Database(lockFile);
  } catch (error) {
    throw new Error(`cannot take the lock ${lockFile}: ${(error as Error).message}; check that its directory exists and is writable by this user`);
  }
  try {
    lock.pragma('busy_timeout = 0');
    lock.exec('BEGIN EXCLUSIVE');
  } catch (error) {
    lock.close();
    if ((error as { code?: string }).code === 'SQLITE_BUSY') return null;
    throw new Error(`cannot take the lock ${lockFile}: ${(error as Error).message}`);
  }
  return { release: () => lock.close() };
}
