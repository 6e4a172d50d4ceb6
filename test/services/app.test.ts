// The service as a whole: while InfluxDB fails nothing acknowledged is lost or written twice; the
// registry provisions devices for the broker.
import fs from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashSecret } from '../../services/broker/secrets.ts';
import { topics } from '../../services/contract/topics.ts';
import { PRIVATE_INFLUXD_NICENESS } from '../../services/influx/influxd.ts';
import { startTestInfluxd, type TestInfluxd } from '../helpers/influxd.ts';
import { startTruckLoad } from '../helpers/load.ts';
import { freePort } from '../helpers/ports.ts';
import { pidsWithCommandLine, threadNiceness } from '../helpers/proc.ts';
import { connectDevice, eventually, provision, sleep, startTestService, tempDir, testConfig } from '../helpers/service.ts';

let influxd: TestInfluxd;
beforeAll(async () => {
  influxd = await startTestInfluxd();
});
afterAll(async () => {
  await influxd?.cleanup();
});

const countFixes = () => influxd.count('truck_position', 'lat');

describe('InfluxDB killed mid-stream', () => {
  it('spools while it is down and delivers every point once it is back', async () => {
    const config = await testConfig(influxd.url);
    const devices = await provision(config, [['K1', 'trucks'], ['K2', 'trucks'], ['K3', 'trucks']]);
    const svc = await startTestService(config);
    const load = await startTruckLoad(svc.url, devices, { intervalMs: 5, perTick: 2 });
    await sleep(700);
    await influxd.process.kill();
    await sleep(1500);
    expect(svc.service.shipper.stats.failingSince).not.toBeNull();
    expect(svc.service.spool.backlogBytes()).toBeGreaterThan(0);
    await influxd.restart();
    await sleep(500);
    load.stop();
    const published = await load.acknowledged;
    const delivered = await eventually(countFixes, (n) => n >= published, 30_000);
    expect(delivered).toBe(published);
    expect(published).toBeGreaterThan(1000);
    await load.close();
    await svc.stop();
  });
});

describe('spool full', () => {
  it('refuses new data without acknowledging it, and takes it again once InfluxDB drains the spool', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const config = await testConfig(url, { 'spool.quotaBytes': 8000, 'spool.segmentBytes': 2000, 'ingest.maxPayloadBytes': 1000 });
    const devices = await provision(config, [['FULL-1', 'trucks']]);
    const svc = await startTestService(config);
    const device = await connectDevice(svc.url, 'FULL-1', devices['FULL-1']!);
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()));
    let acknowledged = 0;
    const base = Date.now() - 60_000;
    for (let i = 0; i < 1000; i++) {
      const ok = await Promise.race([
        device.publishAsync(topics.data('trucks', 'FULL-1'), JSON.stringify({ ts: base + i, lat: 31.3, lon: 120.6, speed_kmh: 30, heading: 90 }), { qos: 1 }).then(() => true),
        closed.then(() => false),
      ]);
      if (!ok) break;
      acknowledged++;
    }
    expect(acknowledged).toBeGreaterThan(10);
    expect(acknowledged).toBeLessThan(1000);
    expect(svc.service.pipeline.accepting()).toBe(false);
    const refused = await mqtt.connectAsync(svc.url, { username: 'FULL-1', password: devices['FULL-1'], reconnectPeriod: 0 }).then(() => 'connected', (e: { code?: number }) => e.code);
    expect(refused).toBe(3);
    device.end(true);

    const late = await startTestInfluxd({ port });
    expect(await eventually(() => late.count('truck_position', 'lat'), (n) => n >= acknowledged, 20_000)).toBe(acknowledged);
    const again = await eventually(() => connectDevice(svc.url, 'FULL-1', devices['FULL-1']!).catch(() => null), (c) => c !== null, 10_000);
    await again!.endAsync();
    await svc.stop();
    await late.cleanup();
  });
});

describe('private InfluxDB', () => {
  it('is started when none answers, at a lower priority than the service, and stopped with it', async () => {
    const config = await testConfig(`http://127.0.0.1:${await freePort()}`, { 'influx.startPrivate': true });
    const svc = await startTestService(config);
    try {
      const [pid] = pidsWithCommandLine(path.join(config.dataDir, 'influxdb', 'influxdb.conf'));
      expect(pid).toBeDefined();
      expect(new Set(threadNiceness(pid!))).toEqual(new Set([Math.min(19, os.getPriority() + PRIVATE_INFLUXD_NICENESS)]));
      expect((await fetch(`${config.influx.url}/ping`)).status).toBe(204);
    } finally {
      await svc.stop();
    }
    expect(pidsWithCommandLine(path.join(config.dataDir, 'influxdb', 'influxdb.conf'))).toEqual([]);
  });
});

describe('data directory', () => {
  it('belongs to one process: a second service on it is refused, saying which process holds it, and may start once the first stopped', async () => {
    const config = await testConfig(influxd.url);
    const first = await startTestService(config);
    try {
      await expect(startTestService({ ...config, broker: { ...config.broker, wsPort: await freePort() } })).rejects.toThrow(new RegExp(`data directory .* is in use by another process of the service \\(pid ${process.pid}\\)`));
    } finally {
      await first.stop();
    }
    const again = await startTestService(config);
    await again.stop();
  });
});

describe('registry in the service', () => {
  it('admits a device created over the API at once, and drops it when the API disables it', async () => {
    const svc = await startTestService(await testConfig(influxd.url, { 'api.port': await freePort(), 'api.host': '127.0.0.1' }));
    try {
      const { token } = svc.service.tokens.create({ name: 'integrator', role: 'integrator' });
      const api = (method: string, url: string, body?: object) =>
        fetch(`http://127.0.0.1:${svc.ports.apiPort}${url}`, {
          method,
          headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
          ...(body ? { body: JSON.stringify(body) } : {}),
        });
      const created = (await (await api('POST', '/api/v1/devices', { id: 'API-T1', class: 'trucks' })).json()) as { secret: string };
      const device = await mqtt.connectAsync(svc.url, { username: 'API-T1', password: created.secret, reconnectPeriod: 0 });
      const closed = new Promise<void>((resolve) => device.once('close', () => resolve()));
      expect((await api('PATCH', '/api/v1/devices/API-T1', { enabled: false })).status).toBe(200);
      await closed;
      const again = await mqtt.connectAsync(svc.url, { username: 'API-T1', password: created.secret, reconnectPeriod: 0 }).then(() => 0, (e: { code?: number }) => e.code);
      expect(again).toBe(5);
      expect((await fetch(`http://127.0.0.1:${svc.ports.apiPort}/api/v1/devices`)).status).toBe(401);
    } finally {
      await svc.stop();
    }
  });

  it('takes over a provisioning file from before the registry, secrets and all', async () => {
    const dir = await tempDir('waste-takeover-');
    const secret = 'old-device-secret';
    const file = {
      version: 1,
      devices: [{ id: 'OLD-T1', class: 'trucks', secret_hash: await hashSecret(secret), enabled: true, created_at: '2026-01-01T00:00:00.000Z' }],
      services: [],
    };
    await fs.writeFile(path.join(dir, 'devices.json'), JSON.stringify(file));
    const svc = await startTestService(await testConfig(influxd.url, {}, dir));
    try {
      const device = await mqtt.connectAsync(svc.url, { username: 'OLD-T1', password: secret, reconnectPeriod: 0 });
      await device.endAsync();
      expect(await fs.readdir(dir)).toEqual(expect.arrayContaining(['devices.json.imported', 'registry.db']));
      expect(await fs.readdir(dir)).not.toContain('devices.json');
    } finally {
      await svc.stop();
    }
  });
});
