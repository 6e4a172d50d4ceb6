// A throwaway real influxd (Debian's 1.6.7) on free ports with a temp directory.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { InfluxStore, quoteIdentifier } from '../../services/influx/client.ts';
import { startInfluxd, type InfluxdProcess } from '../../services/influx/influxd.ts';
import { influxSchema } from '../../services/config/schema.ts';
import { freePort } from './ports.ts';

export interface TestInfluxd {
  url: string;
  dir: string;
  process: InfluxdProcess;
  /** A client on database `database` (default waste). */
  store(database?: string): InfluxStore;
  /** Points of a measurement (those with `field`), of one device if given; 0 when there are none. */
  count(measurement: string, field: string, deviceId?: string): Promise<number>;
  /** Starts influxd again on the same port and directory (after kill or stop). */
  restart(): Promise<void>;
  cleanup(): Promise<void>;
}

/** `port`: listen there (a test that points the service at an address before influxd exists). */
export async function startTestInfluxd(wanted: { port?: number } = {}): Promise<TestInfluxd> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'waste-influxd-'));
  const port = wanted.port ?? (await freePort());
  // influxd's backup RPC listener on any free port: one chosen here could be taken before influxd binds it.
  const options = { dir, port, rpcPort: 0 };
  const handle: TestInfluxd = {
    url: `http://127.0.0.1:${port}`,
    dir,
    process: await startInfluxd(options),
    store: (database = 'waste') => new InfluxStore(influxSchema.parse({ url: `http://127.0.0.1:${port}`, database })),
    count: async (measurement, field, deviceId) => {
      const where = deviceId === undefined ? '' : ' WHERE device_id = $id';
      const series = await handle
        .store()
        .query(`SELECT count(${quoteIdentifier(field)}) FROM ${quoteIdentifier(measurement)}${where}`, deviceId === undefined ? {} : { id: deviceId })
        .catch(() => []);
      return (series[0]?.values[0]?.[1] as number | undefined) ?? 0;
    },
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
