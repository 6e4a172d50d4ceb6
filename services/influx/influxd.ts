// Starts an influxd (1.x, as Debian packages it) with its own directory and ports. The service uses
// it for a private instance when none answers, supervised (restarted when it dies); the tests use
// it for a throwaway one.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';

export interface InfluxdOptions {
  dir: string;
  port: number;
  /** Port of influxd's backup/restore RPC listener (8088 by default: clashes with a second instance); 0: any free one, chosen when it binds. */
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
  /** How it ended: the exit code, or the signal that ended it. */
  ended: Promise<InfluxdExit>;
}

export interface InfluxdExit {
  code: number | null;
  signal: NodeJS.Signals | null;
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
  const ended = new Promise<InfluxdExit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const exited = ended.then((exit) => exit.code);
  const url = `http://${options.host ?? '127.0.0.1'}:${options.port}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  let dead = false;
  void exited.then(() => (dead = true));
  for (;;) {
    if (dead) throw new Error(`influxd exited during start; see ${path.join(options.dir, 'influxd.log')}`);
    try {
      // Bounded, so that something else answering on the port without HTTP cannot hold the start up.
      const response = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(1000) });
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
  return { url, pid: child.pid!, exited, ended, stop: () => signal('SIGTERM'), kill: () => signal('SIGKILL') };
}

export interface SupervisionOptions {
  /** Delay before the first restart after influxd died; it doubles with each failed restart. */
  restartMinMs?: number;
  /** Longest delay between restarts. */
  restartMaxMs?: number;
}

/** Restart delays of the private influxd: 1 s, doubling to 30 s. */
const RESTART_MIN_MS = 1000;
const RESTART_MAX_MS = 30_000;

const describeExit = (exit: InfluxdExit) => (exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`);

/**
 * Starts influxd and keeps it running: when it exits without being asked to (killed, crashed, out
 * of memory), it is started again on the same ports and directory, after a delay that doubles with
 * each failed restart up to restartMaxMs and starts over once influxd has stayed up that long.
 * Meanwhile the shipper keeps retrying and the spool holds the data. The handle's pid is that of
 * the influxd running now; stop() and kill() end the supervision, then influxd, and its exited
 * and ended resolve only then.
 */
export async function superviseInfluxd(options: InfluxdOptions & SupervisionOptions, log: Logger): Promise<InfluxdProcess> {
  const minMs = options.restartMinMs ?? RESTART_MIN_MS;
  const maxMs = options.restartMaxMs ?? RESTART_MAX_MS;
  const logFile = path.join(options.dir, 'influxd.log');
  let current = await startInfluxd(options);
  let startedAt = Date.now();
  let delay = minMs;
  let attempts = 0;
  let supervising = true;
  let timer: NodeJS.Timeout | null = null;
  let restarting: Promise<void> = Promise.resolve();
  let finish!: (exit: InfluxdExit) => void;
  const ended = new Promise<InfluxdExit>((resolve) => (finish = resolve));

  const schedule = () => {
    timer = setTimeout(() => {
      timer = null;
      restarting = restart().catch((error: Error) => log.error({ error: error.message }, 'supervising the private influxd failed'));
    }, delay);
    delay = Math.min(delay * 2, maxMs);
  };

  const restart = async () => {
    if (!supervising) return;
    attempts++;
    let started: InfluxdProcess;
    try {
      started = await startInfluxd(options);
    } catch (error) {
      log.error(
        { dir: options.dir, log: logFile, attempt: attempts, retryInMs: delay },
        `could not restart the private influxd: ${(error as Error).message}. Trying again in ${delay / 1000} s; readings wait in the spool meanwhile`,
      );
      schedule();
      return;
    }
    if (!supervising) {
      // stop() came while it was starting.
      await started.stop();
      return;
    }
    log.info({ influxdPid: started.pid, url: started.url, attempts }, 'private influxd restarted; the spool delivers what waited');
    current = started;
    startedAt = Date.now();
    attempts = 0;
    watch(started);
  };

  const watch = (proc: InfluxdProcess) => {
    void proc.ended.then((exit) => {
      if (!supervising || proc !== current) return;
      // One that stayed up a while died for a new reason: restart it soon, not after the longest delay.
      if (Date.now() - startedAt >= maxMs) delay = minMs;
      log.error(
        { influxdPid: proc.pid, code: exit.code, signal: exit.signal, log: logFile, restartInMs: delay },
        `the private influxd (pid ${proc.pid}) exited unexpectedly with ${describeExit(exit)}; its log is ${logFile}. ` +
          `Restarting it in ${delay / 1000} s on ${proc.url}; readings wait in the spool meanwhile`,
      );
      schedule();
    });
  };
  watch(current);

  const end = async (how: (proc: InfluxdProcess) => Promise<void>) => {
    supervising = false;
    if (timer) clearTimeout(timer);
    timer = null;
    await restarting;
    await how(current);
    finish(await current.ended);
  };
  return {
    url: current.url,
    get pid() {
      return current.pid;
    },
    ended,
    exited: ended.then((exit) => exit.code),
    stop: () => end((proc) => proc.stop()),
    kill: () => end((proc) => proc.kill()),
  };
}
