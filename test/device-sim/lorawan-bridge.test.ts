// `npm run sim -- run --bin-transport chirpstack` through the service's real LoRaWAN bridge: a city
// generated and imported with its bins' DevEUIs and sensor models, the simulator playing ChirpStack
// v4's MQTT integration on a Mosquitto standing in for the network server's broker (the accounts of
// docs/lorawan.md), the bridge reading it, every bin's readings stored from both kinds of sensor
// (Milesight EM400-UDL frames decoded by the bridge, and codec objects in the contract's names),
// duplicates taken once, nothing refused, and the bin alerts scored against the labels.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestInfluxd, type TestInfluxd } from '../helpers/influxd.ts';
import { startTestMosquitto, type TestMosquitto } from '../helpers/mosquitto.ts';
import { freePort } from '../helpers/ports.ts';
import { eventually, provisionService, sleep, startTestService, tempDir, testConfig, type TestService } from '../helpers/service.ts';

const run = promisify(execFile);
const USERS = { chirpstack: 'ns-secret', 'waste-bridge': 'bridge-secret' };
// The network server writes its topics; the bridge reads them (docs/lorawan.md "Broker accounts").
const ACL = 'user chirpstack\ntopic write application/#\n\nuser waste-bridge\ntopic read application/#\n';
let influxd: TestInfluxd;
let mosquitto: TestMosquitto;
let svc: TestService;

beforeAll(async () => {
  [influxd, mosquitto] = await Promise.all([startTestInfluxd(), startTestMosquitto(USERS, { acl: ACL, persistence: true })]);
  svc = await startTestService(
    await testConfig(influxd.url, {
      'api.port': await freePort(),
      'api.host': '127.0.0.1',
      'lorawan.networkServers': [{ name: 'sim', kind: 'chirpstack', url: mosquitto.url, username: 'waste-bridge', password: USERS['waste-bridge'] }],
    }),
  );
});
afterAll(async () => {
  await svc?.stop();
  await mosquitto?.cleanup();
  await influxd?.cleanup();
});

const sim = (args: string[], env: Record<string, string> = {}) => run(process.execPath, ['--import', 'tsx', 'device-sim/sim.ts', ...args], { timeout: 120_000, env: { ...process.env, ...env } });

/** The bridge's counts by outcome, as /metrics exposes them. */
async function lorawanEvents(api: string, token: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${api}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
  const counts: Record<string, number> = {};
  for (const [, outcome, value] of text.matchAll(/^waste_lorawan_events_total\{network_server="sim",outcome="(\w+)"\} (\d+)$/gm)) counts[outcome!] = Number(value);
  const missing = /^waste_lorawan_missing_uplinks\{network_server="sim"\} (\d+)$/m.exec(text);
  counts.missing = missing ? Number(missing[1]) : NaN;
  return counts;
}

describe('npm run sim -- run --bin-transport chirpstack', () => {
  it('sends the bins as LoRaWAN sensors through ChirpStack\'s MQTT integration: every reading stored from both kinds of sensor, duplicates taken once, the bin alerts raised', async () => {
    const out = await tempDir('waste-sim-lorawan-');
    const { token } = svc.service.tokens.create({ name: 'sim-lorawan', role: 'admin' });
    const api = `http://127.0.0.1:${svc.ports.apiPort}`;
    await sim(['city', '--seed', '868', '--trucks', '1', '--collection-trucks', '1', '--bins', '30', '--sites', '1', '--start', new Date(Date.now() - 10 * 86_400_000).toISOString().slice(0, 10), '--out', out, '--api', api, '--token', token]);
    const bundle = JSON.parse(await fs.readFile(path.join(out, 'registry-bundle.json'), 'utf8')) as { devices: { id: string; class: string; lorawan_dev_eui?: string; lorawan_sensor?: string }[] };
    const bins = bundle.devices.filter((d) => d.class === 'bins');
    expect(bins).toHaveLength(30);
    // The import gave the registry every bin's DevEUI and model.
    for (const bin of bins) expect(svc.service.devices.device(bin.id)).toMatchObject({ lorawan_dev_eui: bin.lorawan_dev_eui, lorawan_sensor: bin.lorawan_sensor ?? null });
    const em400 = bins.filter((b) => b.lorawan_sensor === 'milesight-em400-udl').map((b) => b.id);
    const codec = bins.filter((b) => b.lorawan_sensor === undefined).map((b) => b.id);
    expect([em400.length, codec.length]).toEqual([15, 15]);
    // The rules judge a bin once their city index has it: it takes an import in within its poll
    // (2 s). Readings before that are stored but not judged (counted as unregistered), and the
    // drop-offs among them would go unseen.
    await eventually(async () => bins.every((b) => svc.service.city.current.binByDevice(b.id) !== undefined), (known) => known, 10_000);

    const watcher = await mqtt.connectAsync(svc.url, { username: 'waste-sim-lorawan-watch', password: await provisionService(svc.config, 'waste-sim-lorawan-watch'), clientId: 'waste-sim-lorawan-watch' });
    const rejected: string[] = [];
    await watcher.subscribeAsync('waste/ingest/rejected', { qos: 1 });
    watcher.on('message', (_topic, payload) => rejected.push(payload.toString()));

    // Yesterday 14:00-20:00 local time, the evening drop-off windows filling the bins, with the bin
    // violations at a rate of one per bin and day and duplicated deliveries often.
    const DAY = 86_400_000;
    const CST = 8 * 3_600_000;
    const start = Math.floor((Date.now() + CST) / DAY) * DAY - CST - DAY + 14 * 3_600_000;
    const args = [
      'run', '--city', out, '--url', svc.url, '--bin-transport', 'chirpstack', '--chirpstack-url', mosquitto.url, '--chirpstack-username', 'chirpstack',
      '--speed', 'max', '--start', new Date(start).toISOString(), '--duration', '6h',
      '--violations', 'all=0,bin_overflow=1,fire_risk=1,tilt=1,low_battery=1,out_of_window_dropoff=1', '--noise', 'duplicates=0.05', '--progress-every', '1',
    ];
    // The password from the environment, as an operator would give it.
    const { stderr } = await sim(args, { WASTE_SIM_CHIRPSTACK_PASSWORD: USERS.chirpstack });
    expect(stderr).toContain(`(bins: LoRaWAN, ChirpStack events to ${mosquitto.url})`);
    const summary = JSON.parse(await fs.readFile(path.join(out, 'run.json'), 'utf8')) as {
      messages: number;
      acknowledged: number;
      bin_transport: string;
      chirpstack_broker: string;
      chirpstack_events: { join: number; up: number; redelivered: number; republished: number };
      labels: Record<string, number>;
    };
    expect(summary).toMatchObject({ bin_transport: 'chirpstack', chirpstack_broker: mosquitto.url });
    expect(summary.acknowledged).toBeGreaterThanOrEqual(summary.messages);
    const sent = summary.chirpstack_events;
    expect(sent.join).toBe(30);
    expect(sent.up).toBeGreaterThan(300);
    expect(sent.redelivered).toBeGreaterThan(0);

    // Every uplink a reading, every redelivery a duplicate, nothing refused or missing.
    const events = await eventually(() => lorawanEvents(api, token), (c) => c.readings === sent.up);
    expect(events).toMatchObject({ readings: sent.up, duplicates: sent.redelivered + sent.republished, joins: 30, rejected: 0, withoutReading: 0, missing: 0 });
    await sleep(1000);
    await watcher.endAsync();
    expect(rejected).toEqual([]);

    // Every bin's readings in InfluxDB: battery in percent from the EM400-UDLs (and their position
    // as tilted), in volts and with lid openings from the codec's objects.
    expect(await eventually(() => influxd.count('bin_level', 'temp_c'), (n) => n === sent.up)).toBe(sent.up);
    for (const id of em400) {
      expect(await influxd.count('bin_level', 'battery_pct', id), id).toBeGreaterThan(5);
      expect(await influxd.count('bin_level', 'distance_mm', id), id).toBeGreaterThan(5);
      expect(await influxd.count('bin_level', 'tilted', id), id).toBeGreaterThan(5);
      expect(await influxd.count('bin_level', 'battery_v', id), id).toBe(0);
      expect(await influxd.count('bin_level', 'lid_opens', id), id).toBe(0);
    }
    for (const id of codec) {
      expect(await influxd.count('bin_level', 'battery_v', id), id).toBeGreaterThan(5);
      expect(await influxd.count('bin_level', 'tilt_deg', id), id).toBeGreaterThan(5);
      expect(await influxd.count('bin_level', 'lid_opens', id), id).toBeGreaterThan(5);
      expect(await influxd.count('bin_level', 'battery_pct', id), id).toBe(0);
    }
    expect(await influxd.count('bin_level', 'rssi')).toBe(sent.up);

    // The bin rules see what the sensors sent: scored against the labels.
    await sleep(2000);
    const { stdout } = await sim(['score', '--labels', path.join(out, 'labels.jsonl'), '--api', api, '--token', token, '--json']);
    const score = JSON.parse(stdout) as { types: { type: string; labels: number; alerts: number; detected: number; falseAlerts: number }[] };
    const scored = (type: string) => score.types.find((t) => t.type === type)!;
    process.stdout.write(`${JSON.stringify(score.types.filter((t) => t.labels + t.alerts > 0))}\n`);
    // Every bin reading was judged against a registered bin.
    expect(svc.service.rules.stats?.unregistered).toBe(0);
    const types = ['overflow', 'fire_risk', 'tilt', 'low_battery', 'out_of_window_dropoff'];
    expect(types.filter((type) => scored(type).labels > 0).length).toBeGreaterThanOrEqual(4);
    for (const type of types) {
      const { labels, detected, falseAlerts } = scored(type);
      expect(detected, type).toBe(labels);
      expect(falseAlerts, type).toBe(0);
    }
    const labels = (await fs.readFile(path.join(out, 'labels.jsonl'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { type: string; subject: { device_id: string } });
    // Tilt and low battery raised from both kinds of sensor: from the EM400-UDL's position and
    // battery percent, and from the codec's angle and voltage.
    for (const type of ['tilt', 'low_battery']) {
      for (const kind of [em400, codec]) expect(labels.filter((l) => l.type === type && kind.includes(l.subject.device_id)).length, type).toBeGreaterThan(0);
    }
    // No out-of-window drop-off is labelled on a sensor without a lid counter.
    expect(labels.filter((l) => l.type === 'out_of_window_dropoff' && em400.includes(l.subject.device_id))).toEqual([]);
  }, 120_000);
});
