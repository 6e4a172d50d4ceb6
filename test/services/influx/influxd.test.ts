import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { TelemetryService } from '../../../services/app.ts';
import { influxSchema } from '../../../services/config/schema.ts';
import { topics } from '../../../services/contract/topics.ts';
import { InfluxStore } from '../../../services/influx/client.ts';
import { PRIVATE_INFLUXD_NICENESS, startInfluxd, superviseInfluxd, type InfluxdProcess } from '../../../services/influx/influxd.ts';
import { freePort } from '../../helpers/ports.ts';
import { pidsWithCommandLine, threadNiceness } from '../../helpers/proc.ts';
import { connectDevice, eventually, provision, sleep, testConfig } from '../../helpers/service.ts';

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
    const influxd = await startInfluxd({ dir, port: await freePort(), rpcPort: 0, niceness });
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

/** A pino logger whose JSON lines are kept in `lines`. */
function capturingLogger() {
  const lines: { level: number; msg: string; [key: string]: unknown }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(text));
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

const ping = (url: string) => fetch(`${url}/ping`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status, () => 0);

describe('the private influxd, supervised', () => {
  it('is restarted on the same port when it is killed, and what was published meanwhile reaches it; supervision ends with the service', async () => {
    const config = await testConfig(`http://127.0.0.1:${await freePort()}`, { 'influx.startPrivate': true });
    const conf = path.join(config.dataDir, 'influxdb', 'influxdb.conf');
    const secrets = await provision(config, [['TRUCK-K1', 'trucks']]);
    const { log, lines } = capturingLogger();
    const service = new TelemetryService(config, log);
    const ports = await service.start();
    const influx = new InfluxStore(influxSchema.parse({ url: config.influx.url, database: config.influx.database }));
    const fixes = async () => (await influx.query('SELECT count(lat) FROM truck_position').catch(() => []))[0]?.values[0]?.[1] ?? 0;
    const device = await connectDevice(`mqtt://127.0.0.1:${ports.mqttPort}`, 'TRUCK-K1', secrets['TRUCK-K1']!);
    const publish = (ts: number) => device.publishAsync(topics.data('trucks', 'TRUCK-K1'), JSON.stringify({ ts, lat: 31.3, lon: 120.6, speed_kmh: 30, heading: 90 }), { qos: 1 });
    try {
      await publish(Date.now() - 2000);
      expect(await eventually(fixes, (n) => n === 1)).toBe(1);

      const [first] = pidsWithCommandLine(conf);
      expect(first).toBeDefined();
      process.kill(first!, 'SIGKILL');
      // Acknowledged while no influxd runs: the spool keeps it.
      await publish(Date.now() - 1000);

      const restarted = await eventually(async () => pidsWithCommandLine(conf), (pids) => pids.length === 1 && pids[0] !== first, 20_000);
      expect(restarted).toHaveLength(1);
      expect(restarted[0]).not.toBe(first);
      expect(await eventually(() => ping(config.influx.url), (status) => status === 204)).toBe(204);
      // The restarted one runs at the same lower priority.
      expect(new Set(threadNiceness(restarted[0]!))).toEqual(new Set([Math.min(19, os.getPriority() + PRIVATE_INFLUXD_NICENESS)]));
      expect(await eventually(fixes, (n) => n === 2, 20_000)).toBe(2);

      const exit = lines.find((l) => l.msg.includes('exited unexpectedly'));
      expect(exit).toMatchObject({ level: 50, influxdPid: first, signal: 'SIGKILL', log: path.join(config.dataDir, 'influxdb', 'influxd.log') });
      expect(exit!.msg).toContain('Restarting it in 1 s');
      expect(lines.some((l) => l.msg.startsWith('private influxd restarted'))).toBe(true);
    } finally {
      await device.endAsync();
      await service.stop();
    }
    expect(pidsWithCommandLine(conf)).toEqual([]);
    // Stopped with the service, it is not started again.
    await sleep(1500);
    expect(pidsWithCommandLine(conf)).toEqual([]);
  });

  it('retries a restart that fails after a delay doubling up to the bound, and comes back once it can', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'waste-influxd-supervised-'));
    const port = await freePort();
    const { log, lines } = capturingLogger();
    const influxd = await superviseInfluxd({ dir, port, rpcPort: 0, restartMinMs: 300, restartMaxMs: 1200 }, log);
    const first = influxd.pid;
    // Something else takes the port as soon as influxd has let go of it, so the restarts fail.
    process.kill(first, 'SIGKILL');
    const squatter = net.createServer((socket) => socket.destroy());
    await eventually(
      () => new Promise<boolean>((resolve) => {
        squatter.once('error', () => resolve(false));
        squatter.listen(port, '127.0.0.1', () => resolve(true));
      }),
      (listening) => listening,
      5000,
    );
    try {
      const failures = () => lines.filter((l) => l.msg.startsWith('could not restart the private influxd'));
      await eventually(async () => failures().length, (n) => n >= 4, 30_000);
      expect(lines.find((l) => l.msg.includes('exited unexpectedly'))).toMatchObject({ influxdPid: first, signal: 'SIGKILL', restartInMs: 300 });
      // 300 ms before the first attempt, then 600, 1,200 and no longer.
      expect(failures().slice(0, 4).map((l) => l.retryInMs)).toEqual([600, 1200, 1200, 1200]);
      expect(failures()[0]!.msg).toContain(path.join(dir, 'influxd.log'));
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
      expect(await eventually(() => ping(`http://127.0.0.1:${port}`), (status) => status === 204, 15_000)).toBe(204);
      expect(await eventually(async () => influxd.pid, (pid) => pid !== first)).not.toBe(first);
      expect(lines.at(-1)).toMatchObject({ msg: expect.stringMatching(/^private influxd restarted/), influxdPid: influxd.pid });
    } finally {
      if (squatter.listening) squatter.close();
      await influxd.stop();
      await fsp.rm(dir, { recursive: true, force: true });
    }
    expect(pidsWithCommandLine(path.join(dir, 'influxdb.conf'))).toEqual([]);
  });
});
