// Starts an influxd (1.x, as Debian packages it) with its own directory and ports. The service uses
// it for a private instance when none answers; the tests use it for a throwaway one.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

export interface InfluxdOptions {
  dir: string;
  port: number;
  /** Port of influxd's backup/restore RPC listener (8088 by default: clashes with a second instance). */
  rpcPort: number;
  host?: string;
  readyTimeoutMs?: number;
  /**
   * Runs influxd under nice(1) with this niceness (0 to 19). Where it shares the cores with the
   * service, its cache snapshots and compactions (bursts of most of a core) then wait for the
   * service's turns instead of delaying ingest and alerts; the spool holds what it has not taken yet.
   */
  niceness?: number;
}

export interface InfluxdProcess {
  url: string;
  pid: number;
  /** SIGTERM and wait for exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit (crash tests). */
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

/** The niceness of the influxd the service starts for itself (and the benchmarks start beside it). */
export const PRIVATE_INFLUXD_NICENESS = 10;

export function findOnPath(command: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/bin', '/usr/sbin', '/usr/local/bin'])) {
    const candidate = path.join(dir, command);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

function configFile(options: InfluxdOptions): string {
  const host = options.host ?? '127.0.0.1';
  const dir = options.dir;
  // Keys as documented in the influxdb.conf Debian ships (1.6); HTTP request logging is off
  // because at ingest rates it costs more than the writes.
  return `reporting-disabled = true
bind-address = "${host}:${options.rpcPort}"
[meta]
  dir = "${dir}/meta"
[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "${host}:${options.port}"
  log-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
`;
}

export async function startInfluxd(options: InfluxdOptions): Promise<InfluxdProcess> {
  const binary = findOnPath('influxd');
  if (!binary) throw new Error('influxd is not installed; on Debian: sudo apt-get install -y influxdb');
  await fsp.mkdir(options.dir, { recursive: true });
  const conf = path.join(options.dir, 'influxdb.conf');
  await fsp.writeFile(conf, configFile(options));
  const log = fs.openSync(path.join(options.dir, 'influxd.log'), 'a');
  // nice(1) execs influxd, so every thread the Go runtime starts inherits the niceness.
  const command = options.niceness ? ['nice', '-n', String(options.niceness), binary] : [binary];
  const child: ChildProcess = spawn(command[0]!, [...command.slice(1), '-config', conf], { stdio: ['ignore', log, log], detached: false });
  fs.closeSync(log);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://${options.host ?? '127.0.0.1'}:${options.port}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  let dead = false;
  void exited.then(() => (dead = true));
  for (;;) {
    if (dead) throw new Error(`influxd exited during start; see ${path.join(options.dir, 'influxd.log')}`);
    try {
      const response = await fetch(`${url}/ping`);
      if (response.status === 204) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`influxd did not answer on ${url} within ${options.readyTimeoutMs ?? 30_000} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const signal = async (name: NodeJS.Signals): Promise<void> => {
    if (!dead) child.kill(name);
    await exited;
  };
  return { url, pid: child.pid!, exited, stop: () => signal('SIGTERM'), kill: () => signal('SIGKILL') };
}
