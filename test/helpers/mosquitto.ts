// A throwaway Debian Mosquitto 2.x run with the documented configuration
// (docs/examples/mosquitto.conf: its queue limits, in-flight window and size limit), a password
// file and, by default, an ACL equivalent to the embedded broker's (docs/external-broker.md):
// devices write under their own id, the ingest account reads all. Tests that stand it in for another broker (a LoRaWAN network server's) give their own
// ACL. stop() and start() take it down and bring it back on the same port, with what it persisted.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { findOnPath } from '../../services/influx/influxd.ts';
import { freePort } from './ports.ts';

export interface TestMosquitto {
  url: string;
  port: number;
  /** The running broker's process id. */
  pid(): number | undefined;
  /** Kills the broker (SIGKILL: an outage, not a shutdown); the port stays reserved for start(). */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  cleanup(): Promise<void>;
}

export interface TestMosquittoOptions {
  /** The ACL file's text; by default docs/examples/mosquitto.acl. */
  acl?: string;
  /** Keeps sessions and queued messages in a file across stop()/start() (autosave on every change). */
  persistence?: boolean;
  /** Replaces the documented max_queued_bytes. */
  maxQueuedBytes?: number;
  /** Replaces the documented sys_interval (seconds between Mosquitto's $SYS reports). */
  sysIntervalS?: number;
}

/** docs/examples/mosquitto.conf with this broker's port and files; persistence as `options` say. */
async function configuration(dir: string, port: number, options: TestMosquittoOptions): Promise<string> {
  const documented = await fs.readFile(path.resolve('docs/examples/mosquitto.conf'), 'utf8');
  const replace = (text: string, key: string, value: string): string => {
    const line = new RegExp(`^${key} .*$`, 'm');
    if (!line.test(text)) throw new Error(`docs/examples/mosquitto.conf has no ${key} line`);
    return text.replace(line, `${key} ${value}`);
  };
  let text = replace(documented, 'listener', `${port} 127.0.0.1`);
  text = replace(text, 'password_file', path.join(dir, 'passwd'));
  text = replace(text, 'acl_file', path.join(dir, 'acl'));
  text = replace(text, 'persistence_location', `${dir}/`);
  if (options.persistence) text = replace(text, 'autosave_interval', '1') + 'autosave_on_changes true\n';
  else text = replace(text, 'persistence', 'false');
  if (options.maxQueuedBytes !== undefined) text = replace(text, 'max_queued_bytes', String(options.maxQueuedBytes));
  if (options.sysIntervalS !== undefined) text = replace(text, 'sys_interval', String(options.sysIntervalS));
  return text;
}

export async function startTestMosquitto(users: Record<string, string>, options: TestMosquittoOptions = {}): Promise<TestMosquitto> {
  const binary = findOnPath('mosquitto');
  const passwd = findOnPath('mosquitto_passwd');
  if (!binary || !passwd) throw new Error('mosquitto is not installed; on Debian: apt-get install -y mosquitto');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'waste-mosquitto-'));
  // Started as root, mosquitto drops to its own user, which must be able to read these files
  // (and write the persistence file).
  await fs.chmod(dir, 0o777);
  const port = await freePort();
  const passwordFile = path.join(dir, 'passwd');
  await fs.writeFile(passwordFile, '');
  for (const [user, password] of Object.entries(users)) execFileSync(passwd, ['-b', passwordFile, user, password]);
  if (options.acl === undefined) await fs.copyFile(path.resolve('docs/examples/mosquitto.acl'), path.join(dir, 'acl'));
  else await fs.writeFile(path.join(dir, 'acl'), options.acl);
  await fs.writeFile(path.join(dir, 'mosquitto.conf'), await configuration(dir, port, options));
  for (const file of ['passwd', 'acl']) await fs.chmod(path.join(dir, file), 0o644);

  let child: ChildProcess | null = null;
  let exited: Promise<unknown> = Promise.resolve();
  const start = async () => {
    const running = spawn(binary, ['-c', path.join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
    child = running;
    exited = new Promise((resolve) => running.once('exit', resolve));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (await listening(port)) return;
      if (Date.now() > deadline) throw new Error(`mosquitto did not start on port ${port}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async () => {
    child?.kill('SIGKILL');
    await exited;
    child = null;
  };
  await start();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    pid: () => child?.pid,
    stop,
    start,
    cleanup: async () => {
      await stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

function listening(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
