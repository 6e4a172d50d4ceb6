import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PRIVATE_INFLUXD_NICENESS, startInfluxd, type InfluxdProcess } from '../../../services/influx/influxd.ts';
import { freePort } from '../../helpers/ports.ts';
import { threadNiceness } from '../../helpers/proc.ts';

describe('startInfluxd', () => {
  const started: InfluxdProcess[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(started.map((p) => p.stop()));
    await Promise.all(dirs.map((d) => fsp.rm(d, { recursive: true, force: true })));
  });

  const start = async (niceness?: number) => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'waste-influxd-nice-'));
    dirs.push(dir);
    const influxd = await startInfluxd({ dir, port: await freePort(), rpcPort: await freePort(), niceness });
    started.push(influxd);
    return influxd;
  };

  it('runs the private influxd with every thread at the lower priority, and it answers', async () => {
    const influxd = await start(PRIVATE_INFLUXD_NICENESS);
    expect((await fetch(`${influxd.url}/ping`)).status).toBe(204);
    const niceness = threadNiceness(influxd.pid);
    expect(niceness.length).toBeGreaterThan(1);
    expect(new Set(niceness)).toEqual(new Set([Math.min(19, os.getPriority() + PRIVATE_INFLUXD_NICENESS)]));
  });

  it('leaves the priority alone when no niceness is asked for', async () => {
    const influxd = await start();
    expect(new Set(threadNiceness(influxd.pid))).toEqual(new Set([os.getPriority()]));
  });
});
