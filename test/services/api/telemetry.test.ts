// Current state and history through the API, read from a real InfluxDB.
import { alertDeps } from '../../helpers/api.ts';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../../services/api/app.ts';
import { TelemetryReader } from '../../../services/influx/reader.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { ENTITIES } from '../../../services/registry/entities.ts';
import { EntityStore } from '../../../services/registry/entity-store.ts';
import { TokenStore, type Role } from '../../../services/registry/tokens.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';
import { tempDir } from '../../helpers/service.ts';

let influxd: TestInfluxd;
let db: RegistryDb;
let app: Awaited<ReturnType<typeof buildApp>>;
const tokenOf = {} as Record<Role, string>;
const T0 = Date.parse('2026-11-21T13:00:00Z'); // 21:00 in Suzhou
const iso = (ms: number) => new Date(ms).toISOString();

beforeAll(async () => {
  influxd = await startTestInfluxd();
  db = new RegistryDb(path.join(await tempDir('waste-state-'), 'registry.db'));
  db.open();
  const devices = new DeviceStore(db);
  const entities = new EntityStore(db);
  for (const [id, deviceClass] of [['GPS-IN', 'trucks'], ['GPS-OUT', 'trucks'], ['BIN-DEV', 'bins']] as const) await devices.add(id, deviceClass);
  const square = (x: number, y: number, d: number) => ({ type: 'Polygon', coordinates: [[[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]] });
  entities.create(ENTITIES.jurisdictions, 'pingjiang', { name: '平江', enforcement_unit: '平江中队', geometry: square(120.62, 31.3, 0.05), neighbour_ids: [] });
  entities.create(ENTITIES.companies, 'co', { name: 'co' });
  entities.create(ENTITIES.trucks, 'truck-in', { plate: '苏E·00001', company_id: 'co', fleet: 'muck', rated_gross_kg: 31000, device_id: 'GPS-IN' });
  entities.create(ENTITIES.trucks, 'truck-out', { plate: '苏E·00002', company_id: 'co', fleet: 'muck', rated_gross_kg: 31000, device_id: 'GPS-OUT' });
  entities.create(ENTITIES.bins, 'bin-1', { category: 'kitchen', location: { type: 'Point', coordinates: [120.63, 31.31] }, depth_mm: 1000, device_id: 'BIN-DEV' });
  const tokens = new TokenStore(db);
  tokenOf.operator = tokens.create({ name: 'o', role: 'operator' }).token;
  tokenOf.enforcement = tokens.create({ name: 'e', role: 'enforcement', jurisdictions: ['pingjiang'] }).token;
  const now = Date.now();
  const store = influxd.store();
  await store.ensureDatabase();
  await store.write(
    [
      // truck-out drives from inside the jurisdiction to outside; truck-in stays inside.
      `truck_position,device_id=GPS-OUT lat=31.31,lon=120.63,speed_kmh=30,heading=270 ${T0}`,
      `truck_position,device_id=GPS-OUT lat=31.31,lon=120.61,speed_kmh=30,heading=270 ${T0 + 60_000}`,
      `truck_position,device_id=GPS-OUT lat=31.31,lon=120.55,speed_kmh=30,heading=270,cover_closed=F ${now - 60_000}`,
      `truck_position,device_id=GPS-IN lat=31.32,lon=120.64,speed_kmh=0,heading=0 ${now - 30_000}`,
      `truck_position,device_id=GPS-UNKNOWN lat=31.32,lon=120.64,speed_kmh=0,heading=0 ${now - 30_000}`,
      `bin_level,device_id=BIN-DEV fill_pct=40 ${T0}`,
      `bin_level,device_id=BIN-DEV fill_pct=92.5,temp_c=25 ${now - 10_000}`,
    ].join('\n'),
  );
  app = await buildApp({ db, devices, entities, tokens, reader: new TelemetryReader(store), rateLimitPerMinute: 10_000, ...alertDeps(db) });
});
afterAll(async () => {
  await app?.close();
  db?.close();
  await influxd?.cleanup();
});

const get = async (url: string, role: Role) => {
  const response = await app.inject({ method: 'GET', url: `/api/v1${url}`, headers: { authorization: `Bearer ${tokenOf[role]}` } });
  return { status: response.statusCode, body: response.json() as Record<string, unknown> & { items?: Record<string, unknown>[] } };
};

describe('current state', () => {
  it('gives the latest position of each registered truck, by plate', async () => {
    const { body } = await get('/positions', 'operator');
    expect(body.items!.map((i) => [i.truck_id, i.plate, i.lon]).sort()).toEqual([
      ['truck-in', '苏E·00001', 120.64],
      ['truck-out', '苏E·00002', 120.55],
    ]);
    expect(body.items!.find((i) => i.truck_id === 'truck-out')).toMatchObject({ cover_closed: false, speed_kmh: 30 });
  });

  it('shows an enforcement officer only the trucks inside the jurisdiction', async () => {
    const { body } = await get('/positions', 'enforcement');
    expect(body.items!.map((i) => i.truck_id)).toEqual(['truck-in']);
  });

  it('gives the latest level of each bin and its history', async () => {
    expect((await get('/bin-levels', 'operator')).body.items).toEqual([expect.objectContaining({ bin_id: 'bin-1', fill_pct: 92.5, temp_c: 25 })]);
    const history = await get(`/bins/bin-1/levels?from=${iso(T0 - 1000)}&to=${iso(Date.now())}`, 'operator');
    expect((history.body.levels as { fill_pct: number }[]).map((l) => l.fill_pct)).toEqual([40, 92.5]);
    expect((await get('/bin-levels', 'enforcement')).status).toBe(403);
  });
});

describe('history', () => {
  it('gives a truck track between two instants, oldest first', async () => {
    const { body } = await get(`/trucks/truck-out/track?from=${iso(T0)}&to=${encodeURIComponent('2026-11-21T21:01:00+08:00')}`, 'operator');
    expect(body).toMatchObject({ truck_id: 'truck-out', device_id: 'GPS-OUT', from: iso(T0), to: iso(T0 + 60_000) });
    expect((body.fixes as { time: string; lon: number }[]).map((f) => [f.time, f.lon])).toEqual([
      [iso(T0), 120.63],
      [iso(T0 + 60_000), 120.61],
    ]);
  });

  it('gives an enforcement officer only the part of a track inside the jurisdiction, and no track that stayed out', async () => {
    const { body } = await get(`/trucks/truck-out/track?from=${iso(T0 - 1000)}&to=${iso(Date.now())}`, 'enforcement');
    expect((body.fixes as { lon: number }[]).map((f) => f.lon)).toEqual([120.63]);
    const outside = await get(`/trucks/truck-out/track?from=${iso(Date.now() - 120_000)}&to=${iso(Date.now())}`, 'enforcement');
    // Answered as a truck that does not exist would be (test/services/api/limits.test.ts compares the two).
    expect(outside).toMatchObject({ status: 404, body: { error: { code: 'not_found', message: expect.stringMatching(/^no truck truck-out with fixes in your jurisdictions between/) } } });
  });

  it('refuses anything but a timestamp where a time goes', async () => {
    for (const attempt of ["2026-11-21T13:00:00Z' OR time > 0 --", '0', 'now() - 1d']) {
      const response = await get(`/trucks/truck-out/track?from=${encodeURIComponent(attempt)}`, 'operator');
      expect(response.status).toBe(400);
    }
    expect((await get(`/trucks/truck-out/track?from=${iso(T0 + 1000)}&to=${iso(T0)}`, 'operator')).body).toMatchObject({ error: { code: 'invalid_request', message: 'from must not be after to' } });
    expect((await get('/trucks/nope/track', 'operator')).status).toBe(404);
  });
});
