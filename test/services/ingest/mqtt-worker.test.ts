// The same ingest against Debian's Mosquitto as the external broker: the worker's persistent
// session keeps what is published while it is down.
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../services/config/schema.ts';
import { REJECTED_TOPIC, topics } from '../../../services/contract/topics.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';
import { startTestMosquitto, type TestMosquitto } from '../../helpers/mosquitto.ts';
import { DEVICES, SITE_LON, track, worldRegistry } from '../../helpers/rules-world.ts';
import { eventually, provision, startTestService, testConfig } from '../../helpers/service.ts';

let influxd: TestInfluxd;
let mosquitto: TestMosquitto;
let config: Config;
const users = { 'waste-ingest': 'ingest-secret', 'M-T1': 'truck-secret', 'M-T2': 'truck2-secret', [DEVICES.gps2]: 'gps2-secret', 'waste-enforcement': 'enforcement-secret' };

const count = (deviceId: string) => influxd.count('truck_position', 'lat', deviceId);
const fix = (i: number) => JSON.stringify({ ts: Date.now() - 100_000 + i, lat: 31.3, lon: 120.6, speed_kmh: i % 100, heading: i % 360 });

beforeAll(async () => {
  influxd = await startTestInfluxd();
  mosquitto = await startTestMosquitto(users);
  config = await testConfig(influxd.url, {
    'broker.url': mosquitto.url,
    'ingest.username': 'waste-ingest',
    'ingest.password': users['waste-ingest'],
    'ingest.clientId': 'waste-ingest-test',
  });
  // The rules' world: truck T2 (device GPS-2) has no permit.
  (await worldRegistry({}, config.registry.file)).db.close();
});

afterAll(async () => {
  await mosquitto?.cleanup();
  await influxd?.cleanup();
});

describe('ingest worker on Mosquitto', () => {
  it('ingests valid data, reports rejections on the broker, and loses nothing while it is stopped', async () => {
    let svc = await startTestService(config);
    const device = await mqtt.connectAsync(mosquitto.url, { username: 'M-T1', password: users['M-T1'], clientId: 'M-T1' });
    const watcher = await mqtt.connectAsync(mosquitto.url, { username: 'waste-ingest', password: users['waste-ingest'], clientId: 'watch' });
    const rejected: Record<string, unknown>[] = [];
    watcher.on('message', (_t, payload) => rejected.push(JSON.parse(payload.toString()) as Record<string, unknown>));
    await watcher.subscribeAsync(REJECTED_TOPIC, { qos: 1 });

    for (let i = 0; i < 50; i++) await device.publishAsync(topics.data('trucks', 'M-T1'), fix(i), { qos: 1 });
    await device.publishAsync(topics.data('trucks', 'M-T1'), JSON.stringify({ ts: Date.now(), lat: 95, lon: 1, speed_kmh: 1, heading: 1 }), { qos: 1 });
    expect(await eventually(() => count('M-T1'), (n) => n === 50)).toBe(50);
    const report = await eventually(async () => rejected, (r) => r.length > 0);
    expect(report[0]).toMatchObject({ device_id: 'M-T1', reason: 'out_of_range' });

    // Mosquitto's ACL stops a device writing on another device's topic.
    await device.publishAsync(topics.data('trucks', 'M-T2'), fix(999), { qos: 1 });

    await svc.stop();
    for (let i = 50; i < 250; i++) await device.publishAsync(topics.data('trucks', 'M-T1'), fix(i), { qos: 1 });
    svc = await startTestService(config);
    expect(await eventually(() => count('M-T1'), (n) => n === 250, 20_000)).toBe(250);
    expect(await count('M-T2')).toBe(0);
    await Promise.all([device.endAsync(), watcher.endAsync()]);
    await svc.stop();
  });

  it('publishes alerts on Mosquitto for the enforcement account to read', async () => {
    const svc = await startTestService(config);
    const officer = await mqtt.connectAsync(mosquitto.url, { username: 'waste-enforcement', password: users['waste-enforcement'], clientId: 'officer' });
    const alerts: { topic: string; type: string }[] = [];
    officer.on('message', (topic, payload) => alerts.push({ topic, type: (JSON.parse(payload.toString()) as { type: string }).type }));
    await officer.subscribeAsync('waste/alerts/#', { qos: 1 });
    const truck = await mqtt.connectAsync(mosquitto.url, { username: DEVICES.gps2, password: users[DEVICES.gps2], clientId: DEVICES.gps2 });
    const fixes = track(DEVICES.gps2, Date.now() - 120_000, [{ fromLon: SITE_LON, toLon: SITE_LON + 0.01, speedKmh: 36 }]);
    await truck.publishAsync(topics.data('trucks', DEVICES.gps2), JSON.stringify(fixes.map(({ kind: _k, deviceId: _d, ...fix }) => fix)), { qos: 1 });
    const seen = await eventually(async () => alerts, (a) => a.length > 0);
    expect(seen[0]).toEqual({ topic: 'waste/alerts/WEST/no_permit', type: 'no_permit' });
    await Promise.all([truck.endAsync(), officer.endAsync()]);
    await svc.stop();
  });
});

describe('a burst and an outage on the documented Mosquitto configuration', () => {
  it('holds a minute of a 1,000-message/s city published while the service is down, and stores every fix once', async () => {
    const fleet = Array.from({ length: 20 }, (_, i) => `OUT-${String(i).padStart(2, '0')}`);
    const broker = await startTestMosquitto({ ...users, ...Object.fromEntries(fleet.map((id) => [id, 'fleet-secret'])) });
    const outage = await testConfig(influxd.url, { 'broker.url': broker.url, 'ingest.username': 'waste-ingest', 'ingest.password': users['waste-ingest'], 'ingest.clientId': 'waste-ingest-outage' });
    // The worker's session exists, then the service is away while the fleet publishes.
    await (await startTestService(outage)).stop();
    const base = Date.now() - 3_600_000;
    await Promise.all(
      fleet.map(async (id) => {
        const device = await mqtt.connectAsync(broker.url, { username: id, password: 'fleet-secret', clientId: id });
        for (let i = 0; i < 3000; i += 500) {
          await Promise.all(Array.from({ length: 500 }, (_, k) => device.publishAsync(topics.data('trucks', id), JSON.stringify({ ts: base + (i + k) * 1000, lat: 31.3, lon: 120.6, speed_kmh: 30, heading: 90 }), { qos: 1 })));
        }
        await device.endAsync();
      }),
    );
    const svc = await startTestService(outage);
    for (const id of fleet) expect(await eventually(() => count(id), (n) => n === 3000, 60_000)).toBe(3000);
    await svc.stop();
    await broker.cleanup();
  });

  it('says so when Mosquitto dropped acknowledged messages past its queue limit', async () => {
    const broker = await startTestMosquitto(users, { maxQueuedBytes: 20_000, sysIntervalS: 1 });
    const small = await testConfig(influxd.url, { 'broker.url': broker.url, 'ingest.username': 'waste-ingest', 'ingest.password': users['waste-ingest'], 'ingest.clientId': 'waste-ingest-small' });
    await (await startTestService(small)).stop();
    const device = await mqtt.connectAsync(broker.url, { username: 'M-T1', password: users['M-T1'], clientId: 'M-T1-small' });
    await Promise.all(Array.from({ length: 2000 }, (_, i) => device.publishAsync(topics.data('trucks', 'M-T1'), fix(100_000 + i), { qos: 1 })));
    await device.endAsync();
    const svc = await startTestService(small);
    const dropped = async () => Number(/^waste_broker_dropped_messages (\d+)$/m.exec(await svc.service.metrics.registry.metrics())?.[1] ?? 0);
    // 2,000 fixes of about 100 bytes each, 20,000 bytes queued at most, and 1,000 in flight.
    expect(await eventually(dropped, (n) => n > 0, 20_000)).toBeGreaterThan(0);
    await svc.stop();
    await broker.cleanup();
  });
});

describe('ingest worker start-up errors', () => {
  it('says what to check when the broker refuses its subscriptions', async () => {
    // The embedded broker answers SUBACK 0x80 to a device account asking for waste/... topics
    // (Mosquitto grants them and filters deliveries instead).
    const brokerConfig = await testConfig(influxd.url);
    const { 'W-DEV': secret } = await provision(brokerConfig, [['W-DEV', 'trucks']]);
    const broker = await startTestService(brokerConfig);
    const denied = await testConfig(influxd.url, { 'broker.url': broker.url, 'ingest.username': 'W-DEV', 'ingest.password': secret, 'ingest.clientId': 'W-DEV-worker' });
    const error = await startTestService(denied).then(
      async (svc) => {
        await svc.stop();
        return null;
      },
      (e: Error) => e,
    );
    await broker.stop();
    expect(error?.message).toMatch(/ingest worker: the broker at .* refused the subscriptions .*must let W-DEV read waste\/#/);
  });
});
