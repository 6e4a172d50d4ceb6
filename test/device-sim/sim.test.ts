// `npm run sim -- city` against the running service: generated, imported, and a simulated device logs in.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestInfluxd, type TestInfluxd } from '../helpers/influxd.ts';
import { freePort } from '../helpers/ports.ts';
import { eventually, provisionService, sleep, startTestService, tempDir, testConfig, type TestService } from '../helpers/service.ts';

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

  it('runs the city against the service: every message accepted and stored, labels written', async () => {
    // The same seed as above: the devices already imported keep their secret (an import does not rotate it).
    const out = await tempDir('waste-sim-run-');
    const { token } = svc.service.tokens.create({ name: 'sim-run', role: 'integrator' });
    await run(process.execPath, ['--import', 'tsx', 'device-sim/sim.ts', 'city', '--seed', '12', '--trucks', '12', '--collection-trucks', '4', '--bins', '60', '--sites', '3', '--start', new Date(Date.now() - 10 * 86_400_000).toISOString().slice(0, 10), '--out', out, '--api', `http://127.0.0.1:${svc.ports.apiPort}`, '--token', token]);
    const watcher = await mqtt.connectAsync(svc.url, { username: 'waste-sim-watch', password: await provisionService(svc.config, 'waste-sim-watch'), clientId: 'waste-sim-watch' });
    const rejected: string[] = [];
    await watcher.subscribeAsync('waste/ingest/rejected', { qos: 1 });
    watcher.on('message', (_topic, payload) => rejected.push(payload.toString()));
    // Always the same hours of the day (20:00-24:00 China Standard Time, the latest such evening
    // that is over): how many violations the seeded city commits depends on the time of day, and
    // with "the last 4 hours" this test passed or failed by the hour it ran at.
    const args = ['--import', 'tsx', 'device-sim/sim.ts', 'run', '--city', out, '--url', svc.url, '--speed', 'max', `--start=${lastEvening()}`, '--duration', '4h', '--violations', 'all=0.2', '--progress-every', '1'];
    const { stderr } = await run(process.execPath, args, { timeout: 120_000 });
    expect(stderr).toMatch(/^sim \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \+08:00 \(max\) · connected \d+\/\d+ · [\d,]+ msg\/s/m);
    const summary = JSON.parse(await fs.readFile(path.join(out, 'run.json'), 'utf8')) as { messages: number; acknowledged: number; labels: Record<string, number> };
    expect(summary.messages).toBeGreaterThan(1000);
    expect(summary.acknowledged).toBeGreaterThanOrEqual(summary.messages);
    const labels = (await fs.readFile(path.join(out, 'labels.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { type: string; start: string });
    expect(labels.length).toBe(Object.values(summary.labels).reduce((a, b) => a + b, 0));
    expect(labels.length).toBeGreaterThan(5);
    await sleep(1000);
    await watcher.endAsync();
    expect(rejected).toEqual([]);
    const positions = await eventually(() => influxd.count('truck_position', 'speed_kmh'), (n) => n > 500);
    expect(positions).toBeGreaterThan(500);
    expect(await influxd.count('bin_level', 'battery_v')).toBeGreaterThan(100);
  }, 180_000);

  it('says what is missing', async () => {
    const failure = await run(process.execPath, ['--import', 'tsx', 'device-sim/sim.ts', 'city', '--api', 'http://127.0.0.1:1']).catch((e: { stderr: string }) => e.stderr);
    expect(failure).toMatch(/--api needs --token/);
    // A cluster's nodes, one entry left empty.
    const nodes = await run(process.execPath, ['--import', 'tsx', 'device-sim/sim.ts', 'run', '--url', 'mqtt://127.0.0.1:1883,,mqtt://127.0.0.1:1884']).catch((e: { stderr: string }) => e.stderr);
    expect(nodes).toMatch(/--url must be mqtt:\/\/host:port .* several comma-separated/);
  });
});

/** 20:00 China Standard Time of the latest day whose 20:00-24:00 is over, as ISO-8601 with its offset. */
function lastEvening(): string {
  const cst = new Date(Date.now() + 8 * 3_600_000);
  let evening = Date.UTC(cst.getUTCFullYear(), cst.getUTCMonth(), cst.getUTCDate(), 20) - 8 * 3_600_000;
  if (evening + 4 * 3_600_000 > Date.now()) evening -= 86_400_000;
  return `${new Date(evening + 8 * 3_600_000).toISOString().slice(0, 19)}+08:00`;
}
