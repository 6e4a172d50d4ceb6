// `npm run sim -- city` against the running service: generated, imported, and a simulated device logs in.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestInfluxd, type TestInfluxd } from '../helpers/influxd.ts';
import { freePort } from '../helpers/ports.ts';
import { startTestService, tempDir, testConfig, type TestService } from '../helpers/service.ts';

const run = promisify(execFile);
let influxd: TestInfluxd;
let svc: TestService;

beforeAll(async () => {
  influxd = await startTestInfluxd();
  svc = await startTestService(await testConfig(influxd.url, { 'api.port': await freePort(), 'api.host': '127.0.0.1' }));
});
afterAll(async () => {
  await svc?.stop();
  await influxd?.cleanup();
});

describe('npm run sim -- city', () => {
  it('generates a city, imports it into the service, and its devices can log in', async () => {
    const out = await tempDir('waste-sim-');
    const { token } = svc.service.tokens.create({ name: 'sim', role: 'integrator' });
    const args = ['--import', 'tsx', 'device-sim/sim.ts', 'city', '--seed', '12', '--trucks', '20', '--bins', '100', '--out', out, '--api', `http://127.0.0.1:${svc.ports.apiPort}`, '--token', token];
    const { stdout } = await run(process.execPath, args);
    expect(stdout).toMatch(/imported into http:\/\/127\.0\.0\.1:\d+:\n/);
    expect(stdout).toMatch(/trucks\s+created 30, updated 0, unchanged 0/);
    expect((await fs.readdir(out)).sort()).toEqual(['city.json', 'registry-bundle.json', 'roads.json']);
    const { secret } = JSON.parse(await fs.readFile(path.join(out, 'city.json'), 'utf8')) as { secret: string };
    const device = await mqtt.connectAsync(svc.url, { username: 'GPS-truck-0001', password: secret, reconnectPeriod: 0 });
    await device.endAsync();
    // The same city again changes nothing.
    expect((await run(process.execPath, args)).stdout).toMatch(/trucks\s+created 0, updated 0, unchanged 30/);
  });

  it('says what is missing', async () => {
    const failure = await run(process.execPath, ['--import', 'tsx', 'device-sim/sim.ts', 'city', '--api', 'http://127.0.0.1:1']).catch((e: { stderr: string }) => e.stderr);
    expect(failure).toMatch(/--api needs --token/);
  });
});
