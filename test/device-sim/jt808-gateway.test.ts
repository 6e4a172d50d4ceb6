// `npm run sim -- run --truck-protocol jt808` through the service's real JT/T 808 gateway: a city
// generated and imported with its terminals' phone numbers and code hash, its trucks registering,
// authenticating and reporting over TCP (bins and weighbridges over MQTT), every message answered,
// the fixes stored with what the vendor items carry, and the alerts that need cover and tipper
// raised from them.
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
  svc = await startTestService(await testConfig(influxd.url, { 'api.port': await freePort(), 'api.host': '127.0.0.1', 'jt808.port': await freePort(), 'jt808.host': '127.0.0.1' }));
});
afterAll(async () => {
  await svc?.stop();
  await influxd?.cleanup();
});

const sim = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'device-sim/sim.ts', ...args], { timeout: 150_000 });

describe('npm run sim -- run --truck-protocol jt808', () => {
  it('drives the trucks through the JT/T 808 gateway: registered, authenticated, every fix answered and stored with cover, tipper and load', async () => {
    const out = await tempDir('waste-sim-jt808-');
    const { token } = svc.service.tokens.create({ name: 'sim-jt808', role: 'admin' });
    const api = `http://127.0.0.1:${svc.ports.apiPort}`;
    await sim('city', '--seed', '808', '--trucks', '10', '--collection-trucks', '2', '--bins', '30', '--sites', '3', '--start', new Date(Date.now() - 10 * 86_400_000).toISOString().slice(0, 10), '--out', out, '--api', api, '--token', token);
    const bundle = JSON.parse(await fs.readFile(path.join(out, 'registry-bundle.json'), 'utf8')) as { devices: { id: string; class: string; jt808_phone?: string }[] };
    const trucks = bundle.devices.filter((d) => d.class === 'trucks');
    expect(trucks).toHaveLength(12);
    // The import gave the registry every truck's phone number and the city's code hash.
    for (const truck of trucks) {
      expect(svc.service.devices.device(truck.id)).toMatchObject({ jt808_phone: truck.jt808_phone, jt808_model: 'WASTE-SIM', jt808_registered: true });
    }

    // The rules judge a truck once their city index has it: it takes an import in within its poll (2 s).
    await eventually(async () => trucks.every((t) => svc.service.city.current.truckByDevice(t.id) !== undefined), (known) => known, 10_000);

    const watcher = await mqtt.connectAsync(svc.url, { username: 'waste-sim-jt808-watch', password: await provisionService(svc.config, 'waste-sim-jt808-watch'), clientId: 'waste-sim-jt808-watch' });
    const rejected: string[] = [];
    await watcher.subscribeAsync('waste/ingest/rejected', { qos: 1 });
    watcher.on('message', (_topic, payload) => rejected.push(payload.toString()));
    const jt808Url = `tcp://127.0.0.1:${svc.ports.jt808Port}`;
    // Four hours of last night's hauling window (21:00-05:00 for most permits), with the violations
    // that only cover and tipper show on half the trips, and dead zones often, so that blind-area
    // batches (0x0704 type 1) go through the gateway too.
    const DAY = 86_400_000;
    const CST = 8 * 3_600_000;
    let start = Math.floor((Date.now() + CST) / DAY) * DAY - CST - DAY + 21 * 3_600_000;
    if (start + 4 * 3_600_000 > Date.now()) start -= DAY;
    const args = ['run', '--city', out, '--url', svc.url, '--truck-protocol', 'jt808', '--jt808-url', jt808Url, '--speed', 'max', '--start', new Date(start).toISOString(), '--duration', '4h', '--violations', 'all=0,uncovered_transport=0.5,illegal_dump=0.5', '--noise', 'dead-zones=3', '--progress-every', '1'];
    const { stderr } = await sim(...args);
    expect(stderr).toContain(`(trucks: JT/T 808 to ${jt808Url})`);
    const summary = JSON.parse(await fs.readFile(path.join(out, 'run.json'), 'utf8')) as { messages: number; acknowledged: number; truck_protocol: string; jt808_gateway: string; jt808_messages: Record<string, number> };
    expect(summary).toMatchObject({ truck_protocol: 'jt808', jt808_gateway: jt808Url });
    // One registration per truck (later connections authenticate with the code it took), a report
    // per fix, back-fills after dead zones, a logout each at the end.
    const sent = summary.jt808_messages;
    expect(sent.registration).toBe(12);
    expect(sent.authentication).toBeGreaterThanOrEqual(12);
    expect(sent.location).toBeGreaterThan(500);
    expect(sent.batch).toBeGreaterThan(0);
    expect(sent.logout).toBe(12);
    expect(summary.messages).toBeGreaterThan(800);
    expect(summary.acknowledged).toBeGreaterThanOrEqual(summary.messages);

    const gateway = svc.service.gateway!;
    // Every truck registered (answered "already registered": provisioned with the city's code) and authenticated.
    expect(gateway.stats.refusedRegistrations).toBeGreaterThanOrEqual(12);
    expect(gateway.stats.authentications).toBeGreaterThanOrEqual(12);
    expect(gateway.stats.failedAuthentications).toBe(0);
    expect(gateway.stats.refusedFrames).toBe(0);

    await sleep(1000);
    await watcher.endAsync();
    expect(rejected).toEqual([]);
    // Muck trucks' fixes carry cover, tipper and load through the simulator's vendor items.
    const positions = await eventually(() => influxd.count('truck_position', 'speed_kmh'), (n) => n > 500);
    expect(positions).toBeGreaterThan(500);
    expect(await influxd.count('truck_position', 'cover_closed')).toBeGreaterThan(300);
    expect(await influxd.count('truck_position', 'tipper_up')).toBeGreaterThan(300);
    expect(await influxd.count('truck_position', 'load_kg')).toBeGreaterThan(300);
    expect(await influxd.count('truck_position', 'cover_closed', 'GPS-collector-001')).toBe(0);
    expect(await influxd.count('truck_position', 'speed_kmh', 'GPS-collector-001')).toBeGreaterThan(10);
    expect(await influxd.count('bin_level', 'battery_v')).toBeGreaterThan(30);

    // The rules that need cover and tipper see them: scored against the labels.
    await sleep(2000);
    const { stdout } = await sim('score', '--labels', path.join(out, 'labels.jsonl'), '--api', api, '--token', token, '--json');
    const score = JSON.parse(stdout) as { types: { type: string; labels: number; detected: number; falseAlerts: number }[] };
    const scored = (type: string) => score.types.find((t) => t.type === type)!;
    process.stdout.write(`${JSON.stringify(score.types.filter((t) => t.labels > 0))}\n`);
    expect(scored('uncovered_transport').labels + scored('illegal_dump').labels).toBeGreaterThan(0);
    for (const type of ['uncovered_transport', 'illegal_dump']) {
      const { labels, detected, falseAlerts } = scored(type);
      if (labels > 0) expect(detected, type).toBeGreaterThan(0);
      expect(falseAlerts, type).toBe(0);
    }
  }, 240_000);

  it('says what is missing when the city has no terminal phone numbers', async () => {
    const out = await tempDir('waste-sim-jt808-old-');
    await sim('city', '--seed', '809', '--trucks', '2', '--collection-trucks', '1', '--bins', '4', '--sites', '1', '--out', out);
    const bundlePath = path.join(out, 'registry-bundle.json');
    const bundle = JSON.parse(await fs.readFile(bundlePath, 'utf8')) as { devices: Record<string, unknown>[] };
    for (const device of bundle.devices) delete device.jt808_phone;
    await fs.writeFile(bundlePath, JSON.stringify(bundle));
    const failure = await sim('run', '--city', out, '--url', svc.url, '--truck-protocol', 'jt808', '--jt808-url', 'tcp://127.0.0.1:1', '--speed', 'max', '--start=-10m', '--duration', '10m').catch((e: { stderr: string; code: number }) => e);
    expect(failure).toMatchObject({ code: 2 });
    expect((failure as { stderr: string }).stderr).toMatch(/3 of the city's 3 trucks have no terminal phone number \(jt808_phone\); generate the city again/);
    const usage = await sim('run', '--city', out, '--truck-protocol', 'jt808', '--jt808-url', 'http://x').catch((e: { stderr: string }) => e.stderr);
    expect(usage).toMatch(/--jt808-url must be tcp:\/\/host:port/);
  });
});
