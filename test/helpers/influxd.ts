// A throwaway real influxd (Debian's 1.6.7) on free ports with a temp directory.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { InfluxStore } from '../../services/influx/client.ts';
import { startInfluxd, type InfluxdProcess } from '../../services/influx/influxd.ts';
import { influxSchema } from '../../services/config/schema.ts';
import { freePort } from './ports.ts';

export interface TestInfluxd {
  url: string;
  dir: string;
  process: InfluxdProcess;
  /** A client on database `database` (default waste). */
  store(database?: string): InfluxStore;
  /** Starts influxd again on the same port and directory (after kill or stop). */
  restart(): Promise<void>;
  cleanup(): Promise<void>;
}

export async function startTestInfluxd(): Promise<TestInfluxd> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'waste-influxd-'));
  const port = await freePort();
  const rpcPort = await freePort();
  const options = { dir, port, rpcPort };
  const handle: TestInfluxd = {
    url: `http://127.0.0.1:${port}`,
    dir,
    process: await startInfluxd(options),
    store: (database = 'waste') => new InfluxStore(influxSchema.parse({ url: `http://127.0.0.1:${port}`, database })),
    restart: async () => {
      handle.process = await startInfluxd(options);
    },
    cleanup: async () => {
      await handle.process.kill();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
  return handle;
}
