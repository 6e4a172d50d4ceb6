// `npm start` as a process: killed with SIGKILL under load, restarted, every acknowledged point is
// there once; stopped with SIGTERM, it exits 0; --help answers.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestInfluxd, type TestInfluxd } from '../helpers/influxd.ts';
import { startTruckLoad } from '../helpers/load.ts';
import { freePort } from '../helpers/ports.ts';
import { spawnService } from '../helpers/process.ts';
import { eventually, provision, sleep, tempDir, testConfig } from '../helpers/service.ts';

let influxd: TestInfluxd;
beforeAll(async () => {
  influxd = await startTestInfluxd();
});
afterAll(async () => {
  await influxd?.cleanup();
});


async function serviceEnv(): Promise<Record<string, string>> {
  return {
    WASTE_DATA_DIR: await tempDir('waste-main-'),
    WASTE_BROKER_HOST: '127.0.0.1',
    WASTE_BROKER_PORT: String(await freePort()),
    WASTE_BROKER_WS_PORT: String(await freePort()),
    WASTE_API_PORT: String(await freePort()),
    WASTE_INFLUX_URL: influxd.url,
    WASTE_INFLUX_START_PRIVATE: 'false',
    WASTE_SPOOL_RETRY_MIN_MS: '100',
  };
}

describe('npm start', () => {
  it('loses nothing acknowledged when killed with SIGKILL under load', async () => {
    const env = await serviceEnv();
    const config = await testConfig(influxd.url, {}, env.WASTE_DATA_DIR);
    const devices = await provision(config, [['P1', 'trucks'], ['P2', 'trucks'], ['P3', 'trucks'], ['P4', 'trucks']]);
    let service = await spawnService(env);
    const load = await startTruckLoad(`mqtt://127.0.0.1:${env.WASTE_BROKER_PORT}`, devices, { intervalMs: 5, perTick: 3 });
    await sleep(1000);
    service.child.kill('SIGKILL');
    await service.exited;
    const publishedBeforeRestart = load.published();
    service = await spawnService(env);
    await sleep(1000);
    load.stop();
    const published = await load.acknowledged;
    expect(published).toBeGreaterThan(publishedBeforeRestart);
    const count = async () => (await Promise.all(Object.keys(devices).map((id) => influxd.count('truck_position', 'lat', id)))).reduce((a, b) => a + b, 0);
    expect(await eventually(count, (n) => n >= published, 30_000)).toBe(published);
    await load.close();
    service.child.kill('SIGTERM');
    expect(await service.exited).toBe(0);
    expect(service.output()).toContain('"stopped"');
  });

  it('answers --help', () => {
    const help = execFileSync(process.execPath, ['--import', 'tsx', 'services/main.ts', '--help']).toString();
    expect(help).toMatch(/Usage: npm start/);
  });
});
