// The rules and alerts inside the running service, over real sockets: trucks publish over MQTT to
// the embedded broker, alerts come out on waste/alerts/{jurisdiction}/{type}, through the API (with
// enforcement scoping), the event stream and the `alert` measurement; a violation in progress when
// the service restarts stays one alert.
import http from 'node:http';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AlertView } from '../../../services/alerts/alert-store.ts';
import type { Config } from '../../../services/config/schema.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { EntityStore } from '../../../services/registry/entity-store.ts';
import type { TruckFix } from '../../../services/rules/types.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';
import { freePort } from '../../helpers/ports.ts';
import { DEVICES, SITE_LON, deviationTrip, linkDevices, track, writeWorld } from '../../helpers/rules-world.ts';
import { connectDevice, eventually, provisionService, sleep, startTestService, testConfig, type TestService } from '../../helpers/service.ts';

let influxd: TestInfluxd;
let config: Config;
let running: TestService;
let secrets: Record<string, string>;
let admin: string;
let west: string;
let east: string;
let watcher: MqttClient;
const received: { topic: string; alert: AlertView }[] = [];

beforeAll(async () => {
  influxd = await startTestInfluxd();
  config = await testConfig(influxd.url, { 'api.port': await freePort(), 'broker.port': await freePort() });
  const db = new RegistryDb(config.registry.file);
  db.open();
  const entities = new EntityStore(db);
  writeWorld(entities, { validTo: '2099-12-31', windows: [] });
  const devices = new DeviceStore(db);
  secrets = {};
  for (const id of [DEVICES.gps1, DEVICES.gps2]) secrets[id] = await devices.add(id, 'trucks');
  for (const id of [DEVICES.scaleA, DEVICES.scaleB]) secrets[id] = await devices.add(id, 'scales');
  for (const id of [DEVICES.bin1, DEVICES.bin2, DEVICES.bin3]) secrets[id] = await devices.add(id, 'bins');
  linkDevices(entities);
  db.close();
  const watcherSecret = await provisionService(config, 'waste-enforcement');
  running = await startTestService(config);
  admin = running.service.tokens.create({ name: 'ops', role: 'admin' }).token;
  west = running.service.tokens.create({ name: 'officer-west', role: 'enforcement', jurisdictions: ['WEST'] }).token;
  east = running.service.tokens.create({ name: 'officer-east', role: 'enforcement', jurisdictions: ['EAST'] }).token;
  watcher = await connectDevice(running.url, 'waste-enforcement', watcherSecret, { reconnectPeriod: 1000 });
  watcher.on('message', (topic, payload) => received.push({ topic, alert: JSON.parse(payload.toString()) as AlertView }));
  await watcher.subscribeAsync('waste/alerts/#', { qos: 1 });
}, 60_000);

afterAll(async () => {
  await watcher?.endAsync();
  await running?.stop();
  await influxd?.cleanup();
});

const api = async (path: string, token: string, method = 'GET', body?: object) => {
  const response = await fetch(`http://127.0.0.1:${running.ports.apiPort}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: response.status, body: (await response.json().catch(() => null)) as Record<string, unknown> };
};

async function publish(deviceId: string, fixes: TruckFix[]): Promise<void> {
  const client = await connectDevice(running.url, deviceId, secrets[deviceId]!);
  for (let i = 0; i < fixes.length; i += 20) {
    const batch = fixes.slice(i, i + 20).map(({ kind: _kind, deviceId: _id, ...payload }) => payload);
    await client.publishAsync(`waste/trucks/${deviceId}/position`, JSON.stringify(batch), { qos: 1 });
  }
  await client.endAsync();
}

describe('rules in the service', () => {
  let deviationId: string;

  it('delivers a route deviation on both jurisdictions\' MQTT topics and through the API, as one alert across a restart', async () => {
    const fixes = deviationTrip(DEVICES.gps1, Date.now() - 20 * 60_000);
    // The service stops while the truck is off the route, and starts again.
    await publish(DEVICES.gps1, fixes.slice(0, 55));
    await eventually(async () => received.filter((m) => m.alert.type === 'route_deviation').length, (n) => n >= 2);
    await running.stop();
    running = await startTestService(config);
    await publish(DEVICES.gps1, fixes.slice(55));
    const list = await eventually(
      () => api('/alerts?type=route_deviation', admin),
      (r) => (r.body.items as AlertView[] | undefined)?.[0]?.ended_at !== null,
    );
    const items = list.body.items as AlertView[];
    expect(items).toHaveLength(1);
    deviationId = items[0]!.id;
    expect(items[0]).toMatchObject({ type: 'route_deviation', status: 'open', jurisdictions: ['EAST', 'WEST'], subject: { id: 'T1', plate: '苏E·00001' } });
    expect(new Set(received.filter((m) => m.alert.type === 'route_deviation').map((m) => m.topic))).toEqual(new Set(['waste/alerts/WEST/route_deviation', 'waste/alerts/EAST/route_deviation']));
    expect(new Set(received.map((m) => m.alert.id))).toEqual(new Set([deviationId]));
    const one = await api(`/alerts/${deviationId}`, admin);
    expect((one.body.evidence as unknown[]).length).toBeGreaterThan(5);
    expect((one.body.permit as { number: string }).number).toBe('PZ-2026-001');
    expect(await eventually(() => influxd.count('alert', 'version'), (n) => n >= 2)).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('shows an enforcement officer only the alerts of their jurisdictions, and lets them handle those', async () => {
    // T2 has no permit and drives inside EAST only.
    await publish(DEVICES.gps2, track(DEVICES.gps2, Date.now() - 5 * 60_000, [{ fromLon: 120.62, toLon: 120.64, speedKmh: 36 }]));
    const eastList = await eventually(() => api('/alerts?type=no_permit', east), (r) => (r.body.total as number) >= 1);
    const noPermit = (eastList.body.items as AlertView[])[0]!;
    expect(noPermit.jurisdictions).toEqual(['EAST']);
    expect((await api('/alerts?type=no_permit', west)).body.total).toBe(0);
    expect((await api(`/alerts/${noPermit.id}`, west)).status).toBe(404);
    expect((await api(`/alerts/${noPermit.id}/acknowledge`, west, 'POST')).status).toBe(404);
    expect((await api('/alerts?jurisdiction=EAST', west)).body.total).toBe(0);

    const acknowledged = await api(`/alerts/${deviationId}/acknowledge`, west, 'POST');
    expect(acknowledged.body).toMatchObject({ status: 'acknowledged', acknowledged: { by: 'officer-west' } });
    expect((await api(`/alerts/${deviationId}/acknowledge`, west, 'POST')).status).toBe(409);
    // A note with a NUL (which PostgreSQL cannot store) or another control character is refused
    // before anything is written; line breaks and tabs are kept.
    for (const note of ['fined\u0000', 'fined\u001b[2J', 'fined\ud800']) {
      const refused = await api(`/alerts/${deviationId}/resolve`, east, 'POST', { note });
      expect(refused.status, JSON.stringify(note)).toBe(400);
      expect(JSON.stringify(refused.body), JSON.stringify(note)).toContain('control characters');
    }
    expect((await api(`/alerts/${deviationId}`, east)).body).toMatchObject({ status: 'acknowledged' });
    const resolved = await api(`/alerts/${deviationId}/resolve`, east, 'POST', { note: 'fined' });
    expect(resolved.body).toMatchObject({ status: 'resolved', resolved: { by: 'officer-east', note: 'fined' } });
    expect((await api('/alerts', 'wt_not-a-token')).status).toBe(401);
  }, 30_000);

  it('streams alert changes to an officer as server-sent events, within their jurisdictions', async () => {
    const events: string[] = [];
    const request = http.get(`http://127.0.0.1:${running.ports.apiPort}/api/v1/alerts/stream`, { headers: { authorization: `Bearer ${west}` } }, (response) => {
      expect(response.headers['content-type']).toBe('text/event-stream');
      response.on('data', (chunk: Buffer) => events.push(chunk.toString()));
    });
    await sleep(300);
    // Tipping on the road in WEST, then T2 driving in EAST again an hour later: only the first reaches WEST.
    const t0 = Date.now() - 4 * 60_000;
    await publish(DEVICES.gps1, [
      ...track(DEVICES.gps1, t0, [{ fromLon: SITE_LON, toLon: 120.56, speedKmh: 36 }]),
      ...track(DEVICES.gps1, t0 + 120_000, [{ fromLon: 120.56, toLon: 120.56, speedKmh: 0, extra: { tipper_up: true } }]).concat(
        track(DEVICES.gps1, t0 + 130_000, [{ fromLon: 120.56, toLon: 120.56, speedKmh: 0, extra: { tipper_up: true } }]),
      ),
    ]);
    await eventually(async () => events.join(''), (text) => text.includes('illegal_dump'));
    request.destroy();
    const text = events.join('');
    expect(text).toMatch(/event: alert\nid: al_[0-9a-f]{24}:1\ndata: \{"change":"raised"/);
    expect(text).not.toContain('"no_permit"');
  }, 30_000);
});
