// A throwaway real PostgreSQL server: its own cluster (initdb) in a temp directory, on a free port,
// trust authentication for user `waste`, fsync off since the data is thrown away (a committed
// transaction still survives kill(), a crash of the server, not of the machine). Tests share one
// cluster and take a fresh database each with createDatabase().
//  - Debian puts initdb and pg_ctl in /usr/lib/postgresql/<version>/bin, not on PATH, so that is
//    where we look when PATH has none.
//  - initdb and postgres refuse to run as root. As root (CI, containers) they run as the `postgres`
//    OS user that Debian's package creates, through runuser, and the temp directory is given to it.
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './ports.ts';

const run = promisify(execFile);

const USER = 'waste';
const INSTALL = 'install it with: apt-get install -y postgresql';

export interface TestPostgres {
  /** postgres://waste@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  dir: string;
  /** Creates a fresh empty database and returns its URL (so tests can share one cluster). */
  createDatabase(name?: string): Promise<string>;
  /** Stops the server immediately (pg_ctl stop -m immediate): a crash, recovered from on restart(). */
  kill(): Promise<void>;
  /** Starts it again on the same port and data directory. */
  restart(): Promise<void>;
  cleanup(): Promise<void>;
}

function executable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function hasTools(dir: string): boolean {
  return executable(path.join(dir, 'initdb')) && executable(path.join(dir, 'pg_ctl'));
}

/** The directory with initdb and pg_ctl: the first on PATH, else the newest /usr/lib/postgresql/VERSION/bin; null when neither. */
export function postgresBinDir(): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) if (dir && hasTools(dir)) return dir;
  let versions: string[];
  try {
    versions = fs.readdirSync('/usr/lib/postgresql');
  } catch {
    return null;
  }
  versions.sort((a, b) => b.localeCompare(a, 'en', { numeric: true })); // 16 before 9.6
  for (const version of versions) {
    const dir = path.join('/usr/lib/postgresql', version, 'bin');
    if (hasTools(dir)) return dir;
  }
  return null;
}

/** The uid and gid of the `postgres` OS user, which root runs the server as. */
function postgresUser(): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error(`PostgreSQL will not run as root and there is no 'postgres' user to run it as (Debian's postgresql package creates it); ${INSTALL}`);
  }
}

async function tail(file: string, lines = 30): Promise<string> {
  const text = await fsp.readFile(file, 'utf8').catch(() => '(no log)');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export async function startTestPostgres(): Promise<TestPostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error(`PostgreSQL's initdb and pg_ctl were found neither on PATH nor in /usr/lib/postgresql/*/bin; ${INSTALL}`);
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? postgresUser() : null;
  // runuser is in /usr/sbin, which a CI job's PATH may lack.
  const runuser = ['/usr/sbin/runuser', '/sbin/runuser'].find(executable) ?? 'runuser';

  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'waste-postgres-'));
  const data = path.join(dir, 'data');
  const log = path.join(dir, 'log');
  if (owner) await fsp.chown(dir, owner.uid, owner.gid);
  const port = await freePort();

  // cwd is the temp dir: the postgres user may not be allowed into the caller's.
  const tool = (name: string, args: string[]) => {
    const command = path.join(bin, name);
    return asRoot ? run(runuser, ['-u', 'postgres', '--', command, ...args], { cwd: dir }) : run(command, args, { cwd: dir });
  };
  // The socket goes in the temp dir: /var/run/postgresql may not exist or be writable. fsync=off
  // loses nothing when only the server dies (the kernel still has the writes); synchronous_commit
  // stays on, because with it off, commits still in shared memory would be lost by kill().
  const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200`;
  const start = async () => {
    try {
      await tool('pg_ctl', ['start', '-D', data, '-l', log, '-w', '-t', '30', '-o', serverOptions]);
    } catch (error) {
      throw new Error(`PostgreSQL did not start on port ${port}: ${(error as Error).message.trim()}\n--- ${log} ---\n${await tail(log)}`);
    }
  };
  const stop = () => tool('pg_ctl', ['stop', '-D', data, '-m', 'immediate', '-w']).then(() => undefined);
  const cleanup = async () => {
    await stop().catch(() => undefined); // not running, or never started
    await fsp.rm(dir, { recursive: true, force: true });
  };

  try {
    await tool('initdb', ['-D', data, '-A', 'trust', '-U', USER, '--no-sync', '-E', 'UTF8', '--locale=C']);
    await start();
  } catch (error) {
    await cleanup();
    throw error;
  }

  const urlOf = (database: string) => `postgres://${USER}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  return {
    url: urlOf('postgres'),
    port,
    dir,
    createDatabase: async (name = `t_${randomBytes(6).toString('hex')}`) => {
      const client = new pg.Client({ host: '127.0.0.1', port, user: USER, database: 'postgres' });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${quoteIdentifier(name)}`);
      } finally {
        await client.end();
      }
      return urlOf(name);
    },
    kill: stop,
    restart: start,
    cleanup,
  };
}
