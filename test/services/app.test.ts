// The service as a whole while InfluxDB fails: nothing acknowledged is lost, nothing is written twice.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestInfluxd, type TestInfluxd } from '../helpers/influxd.ts';
import { startTruckLoad } from '../helpers/load.ts';
import { eventually, provision, startTestService, testConfig } from '../helpers/service.ts';

let influxd: TestInfluxd;
beforeAll(async () => {
  influxd = await startTestInfluxd();
});
afterAll(async () => {
  await influxd?.cleanup();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function countFixes(): Promise<number> {
  const series = await influxd.store().query('SELECT count(lat) FROM truck_position');
  return (series[0]?.values[0]?.[1] as number | undefined) ?? 0;
}

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
