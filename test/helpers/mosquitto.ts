// A throwaway Debian Mosquitto 2.x with a password file and an ACL equivalent to the embedded
// broker's (docs/external-broker.md): devices write under their own id, the ingest account reads all.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { findOnPath } from '../../services/influx/influxd.ts';
import { freePort } from './ports.ts';

export interface TestMosquitto {
  url: string;
  cleanup(): Promise<void>;
}

export async function startTestMosquitto(users: Record<string, string>): Promise<TestMosquitto> {
  const binary = findOnPath('mosquitto');
  const passwd = findOnPath('mosquitto_passwd');
  if (!binary || !passwd) throw new Error('mosquitto is not installed; on Debian: apt-get install -y mosquitto');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'waste-mosquitto-'));
  // Started as root, mosquitto drops to its own user, which must be able to read these files.
  await fs.chmod(dir, 0o755);
  const port = await freePort();
  const passwordFile = path.join(dir, 'passwd');
  await fs.writeFile(passwordFile, '');
  for (const [user, password] of Object.entries(users)) execFileSync(passwd, ['-b', passwordFile, user, password]);
  await fs.copyFile(path.resolve('docs/examples/mosquitto.acl'), path.join(dir, 'acl'));
  await fs.writeFile(
    path.join(dir, 'mosquitto.conf'),
    `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${passwordFile}\nacl_file ${path.join(dir, 'acl')}\npersistence false\nmax_queued_messages 100000\n`,
  );
  for (const file of ['passwd', 'acl']) await fs.chmod(path.join(dir, file), 0o644);
  const child: ChildProcess = spawn(binary, ['-c', path.join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error('mosquitto did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    cleanup: async () => {
      child.kill('SIGKILL');
      await exited;
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
