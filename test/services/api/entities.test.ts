// Registry entities through the API, on a real registry database file.
import { alertDeps } from '../../helpers/api.ts';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../../services/api/app.ts';
import { influxSchema } from '../../../services/config/schema.ts';
import { InfluxStore } from '../../../services/influx/client.ts';
import { TelemetryReader } from '../../../services/influx/reader.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { EntityStore } from '../../../services/registry/entity-store.ts';
import { fromWgs84, type Position } from '../../../services/registry/geometry.ts';
import { TokenStore, type Role } from '../../../services/registry/tokens.ts';
import { tempDir } from '../../helpers/service.ts';

let db: RegistryDb;
let app: Awaited<ReturnType<typeof buildApp>>;
const tokenOf = {} as Record<Role, string>;

beforeEach(async () => {
  db = new RegistryDb(path.join(await tempDir('waste-entities-'), 'registry.db'));
  db.open();
  const tokens = new TokenStore(db);
  for (const role of ['admin', 'operator', 'integrator'] as const) tokenOf[role] = tokens.create({ name: role, role }).token;
  app = await buildApp({ db, devices: new DeviceStore(db), entities: new EntityStore(db), tokens, rateLimitPerMinute: 10_000, reader: new TelemetryReader(new InfluxStore(influxSchema.parse({ url: 'http://127.0.0.1:1' }))), ...alertDeps(db) });
});
afterEach(async () => {
  await app.close();
  db.close();
});

// Response bodies are read field by field in the assertions; typing each would only repeat them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;

const call = async (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, body?: object, role: Role = 'integrator') => {
  const response = await app.inject({ method, url: `/api/v1${url}`, headers: { authorization: `Bearer ${tokenOf[role]}` }, ...(body ? { payload: body } : {}) });
  return { status: response.statusCode, body: response.body ? (response.json() as Json) : {} };
};

const square = (x: number, y: number, d = 0.01): Position[][] => [[[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]];

describe('registry entities', () => {
  it('stores a community drawn in GCJ-02 as WGS-84, with an overnight drop-off window', async () => {
    expect((await call('POST', '/districts', { id: 'gusu', name: '姑苏区', geometry: { type: 'Polygon', coordinates: square(120.55, 31.28, 0.1) } })).status).toBe(201);
    const wgs = square(120.6, 31.3);
    const gcj = fromWgs84({ type: 'Polygon' as const, coordinates: wgs }, 'GCJ-02').coordinates;
    const created = await call('POST', '/communities', {
      id: 'c-pingjiang', name: '平江社区', district_id: 'gusu', crs: 'GCJ-02',
      geometry: { type: 'Polygon', coordinates: gcj },
      dropoff_windows: [{ from: '07:00', to: '09:00' }, { from: '18:00', to: '21:00' }, { from: '21:30', to: '05:00' }],
    });
    expect(created.status).toBe(201);
    const stored = (await call('GET', '/communities/c-pingjiang', undefined, 'operator')).body;
    stored.geometry.coordinates[0].forEach(([lon, lat]: Position, i: number) => {
      expect(Math.abs(lon - wgs[0]![i]![0])).toBeLessThan(1e-6);
      expect(Math.abs(lat - wgs[0]![i]![1])).toBeLessThan(1e-6);
    });
    expect(stored).toMatchObject({ name: '平江社区', district_id: 'gusu', dropoff_windows: [{ from: '07:00', to: '09:00' }, { from: '18:00', to: '21:00' }, { from: '21:30', to: '05:00' }] });
    expect(stored).not.toHaveProperty('crs');
  });

  it('refuses invalid geometry with the reason and the path', async () => {
    const bowtie = { type: 'Polygon', coordinates: [[[120, 31], [120.1, 31.1], [120.1, 31], [120, 31.1], [120, 31]]] };
    const response = await call('POST', '/jurisdictions', { id: 'j1', name: '金港', enforcement_unit: '金港中队', geometry: bowtie });
    expect(response).toEqual({ status: 400, body: { error: { code: 'invalid_geometry', message: 'geometry: the polygon crosses itself near [120.05, 31.05]', path: ['body', 'geometry', 'coordinates'] } } });
    const point = await call('POST', '/bins', { id: 'b1', category: 'kitchen', depth_mm: 1200, location: { type: 'Point', coordinates: [31.3, 120.6] } });
    expect(point.body.error).toMatchObject({ code: 'invalid_geometry', message: expect.stringMatching(/latitude 120.6/) });
    expect((await call('GET', '/jurisdictions', undefined, 'operator')).body.total).toBe(0);
  });

  it('checks references, uniqueness and what still refers to a row', async () => {
    expect((await call('POST', '/trucks', { id: 't1', plate: '苏E·12345', company_id: 'nobody', fleet: 'muck', rated_gross_kg: 31000 })).body).toEqual({
      error: { code: 'invalid', message: 'company_id: no company nobody' },
    });
    await call('POST', '/companies', { id: 'co1', name: '苏州渣土运输有限公司' });
    expect((await call('POST', '/trucks', { id: 't1', plate: '苏E·12345', company_id: 'co1', fleet: 'muck', rated_gross_kg: 31000 })).status).toBe(201);
    expect((await call('POST', '/trucks', { id: 't2', plate: '苏E·12345', company_id: 'co1', fleet: 'muck', rated_gross_kg: 31000 })).body).toEqual({
      error: { code: 'conflict', message: 'plate is already used by another truck' },
    });
    expect((await call('POST', '/companies', { id: 'co1', name: 'again' })).status).toBe(409);
    expect((await call('DELETE', '/companies/co1')).body.error.code).toBe('conflict');
    expect((await call('DELETE', '/trucks/t1')).status).toBe(204);
    expect((await call('DELETE', '/companies/co1')).status).toBe(204);
    expect((await call('DELETE', '/companies/co1')).status).toBe(404);
  });

  it('validates fields, and patches only what is sent', async () => {
    await call('POST', '/companies', { id: 'co1', name: 'A', contact: '0512-1234' });
    const bad = await call('POST', '/trucks', { id: 't1', plate: 'X', company_id: 'co1', fleet: 'train', rated_gross_kg: -1 });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('invalid_request');
    const patched = await call('PATCH', '/companies/co1', { name: 'B' });
    expect(patched.body).toMatchObject({ id: 'co1', name: 'B', contact: '0512-1234' });
    expect(patched.body.updated_at >= patched.body.created_at).toBe(true);
    expect((await call('PATCH', '/communities/none', { name: 'x' })).status).toBe(404);
    const window = await call('POST', '/communities', { id: 'c', name: 'c', district_id: 'd', geometry: { type: 'Polygon', coordinates: square(120, 31) }, dropoff_windows: [{ from: '25:00', to: '07:00' }] });
    expect(window.body.error).toMatchObject({ code: 'invalid_request', message: expect.stringMatching(/HH:MM/) });
  });

  it('filters and pages lists, with filter values bound, never pasted', async () => {
    await call('POST', '/companies', { id: 'co1', name: 'A' });
    await call('POST', '/companies', { id: 'co2', name: 'B' });
    for (let i = 0; i < 3; i++) await call('POST', '/trucks', { id: `t${i}`, plate: `苏E·0000${i}`, company_id: i < 2 ? 'co1' : 'co2', fleet: 'muck', rated_gross_kg: 30000 });
    expect((await call('GET', '/trucks?company_id=co1&limit=1', undefined, 'operator')).body).toMatchObject({ total: 2, limit: 1, items: [{ id: 't0' }] });
    for (const attempt of ["' OR '1'='1", 'co1; DROP TABLE trucks', "co1' --"]) {
      expect((await call('GET', `/trucks?company_id=${encodeURIComponent(attempt)}`, undefined, 'operator')).body.total).toBe(0);
    }
    expect((await call('GET', '/trucks', undefined, 'operator')).body.total).toBe(3);
  });

  it('lets operators read and not write', async () => {
    expect((await call('POST', '/companies', { id: 'co1', name: 'A' }, 'operator')).status).toBe(403);
    expect((await call('GET', '/companies', undefined, 'operator')).status).toBe(200);
    expect((await call('POST', '/companies', { id: 'co1', name: 'A' }, 'admin')).status).toBe(201);
  });

  it('keeps permits: the trucks, the route in WGS-84, an overnight window, and the site kinds', async () => {
    await call('POST', '/companies', { id: 'co1', name: 'A' });
    for (const id of ['t1', 't2', 't3']) await call('POST', '/trucks', { id, plate: `苏E·${id}`, company_id: 'co1', fleet: 'muck', rated_gross_kg: 31000 });
    await call('POST', '/sites', { id: 'site-7', kind: 'construction', name: '工地', geometry: { type: 'Polygon', coordinates: square(120.6, 31.3) } });
    await call('POST', '/sites', { id: 'dump-2', kind: 'disposal', name: '消纳场', geometry: { type: 'Polygon', coordinates: square(120.7, 31.4) } });
    const route = [[120.605, 31.305], [120.65, 31.35], [120.705, 31.405]] as Position[];
    const permit = {
      id: 'p-2026-001', number: '苏渣证2026-001', site_id: 'site-7', disposal_site_id: 'dump-2', truck_ids: ['t2', 't1'],
      route: fromWgs84({ type: 'LineString' as const, coordinates: route }, 'GCJ-02'), crs: 'GCJ-02',
      valid_from: '2026-11-01', valid_to: '2026-12-31', time_windows: [{ from: '21:00', to: '05:00' }],
    };
    const created = await call('POST', '/permits', permit);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ truck_ids: ['t1', 't2'], corridor_m: 50, status: 'active', time_windows: [{ from: '21:00', to: '05:00' }] });
    // GCJ-02 has no exact inverse; 1e-6 degrees is about 0.1 m.
    created.body.route.coordinates.forEach(([lon, lat]: Position, i: number) => {
      expect(Math.abs(lon - route[i]![0])).toBeLessThan(1e-6);
      expect(Math.abs(lat - route[i]![1])).toBeLessThan(1e-6);
    });
    expect((await call('PATCH', '/permits/p-2026-001', { truck_ids: ['t3'], status: 'suspended' })).body).toMatchObject({ truck_ids: ['t3'], status: 'suspended', number: '苏渣证2026-001' });
    expect((await call('GET', '/permits?status=suspended', undefined, 'operator')).body.total).toBe(1);

    const refused = async (change: object) => (await call('POST', '/permits', { ...permit, id: 'p2', number: 'n2', ...change })).body.error;
    expect(await refused({ site_id: 'dump-2' })).toEqual({ code: 'invalid', message: 'site_id: site dump-2 is a disposal site, not a construction site' });
    expect(await refused({ truck_ids: ['t1', 'ghost'] })).toEqual({ code: 'invalid', message: 'truck_ids: no truck ghost' });
    expect(await refused({ valid_from: '2027-01-01' })).toEqual({ code: 'invalid', message: 'valid_from 2027-01-01 is after valid_to 2026-12-31' });
    expect((await refused({ route: { type: 'LineString', coordinates: [[120.6, 31.3]] }, crs: 'WGS-84' })).code).toBe('invalid_geometry');
    expect((await refused({ number: '苏渣证2026-001' })).code).toBe('conflict');
    expect((await call('GET', '/permits', undefined, 'operator')).body.total).toBe(1);
  });

  it('links neighbouring jurisdictions and weighbridges to their sites', async () => {
    const area = { type: 'Polygon', coordinates: square(120.5, 31.8) };
    await call('POST', '/jurisdictions', { id: 'yangshe', name: '杨舍', enforcement_unit: '杨舍中队', geometry: area });
    const jingang = await call('POST', '/jurisdictions', { id: 'jingang', name: '金港', enforcement_unit: '金港中队', geometry: area, neighbour_ids: ['yangshe'] });
    expect(jingang.body.neighbour_ids).toEqual(['yangshe']);
    expect((await call('PATCH', '/jurisdictions/jingang', { neighbour_ids: ['jingang'] })).body.error.message).toBe('neighbour_ids: a jurisdiction cannot list itself');
    expect((await call('PATCH', '/jurisdictions/jingang', { neighbour_ids: ['nowhere'] })).body.error.message).toBe('neighbour_ids: no jurisdiction nowhere');
    expect((await call('GET', '/jurisdictions/jingang', undefined, 'operator')).body.neighbour_ids).toEqual(['yangshe']);

    await call('POST', '/sites', { id: 'plant-1', kind: 'plant', name: '焚烧厂', geometry: area });
    expect((await call('POST', '/weighbridges', { id: 'wb-1', site_id: 'plant-1' })).status).toBe(201);
    await call('POST', '/devices', { id: 'WB-DEV', class: 'scales' });
    await call('PATCH', '/weighbridges/wb-1', { device_id: 'WB-DEV' });
    expect((await call('GET', '/devices/WB-DEV', undefined, 'operator')).body.asset).toEqual({ type: 'weighbridge', id: 'wb-1' });
    expect((await call('POST', '/weighbridges', { id: 'wb-2', site_id: 'plant-1', device_id: 'NO-SUCH-DEVICE' })).body.error.message).toBe('device_id: no device NO-SUCH-DEVICE');
    expect((await call('DELETE', '/sites/plant-1')).body.error.code).toBe('conflict');
  });

  it('imports a bundle all or nothing, listing every problem', async () => {
    const bundle = JSON.parse(await import('node:fs').then((fs) => fs.readFileSync('docs/examples/registry-bundle.json', 'utf8')));
    const broken = structuredClone(bundle);
    broken.trucks[0].company_id = 'nobody';
    const refused = await call('POST', '/import', broken);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({ code: 'invalid_bundle', problems: [{ path: ['trucks', 0], message: 'company_id: no company nobody' }, expect.anything()] });
    expect((await call('GET', '/companies', undefined, 'operator')).body.total).toBe(0);
    expect((await call('POST', '/import?dry_run=true', bundle)).body).toMatchObject({ dryRun: true, counts: { trucks: { created: 1 } } });
    expect((await call('POST', '/import', bundle, 'operator')).status).toBe(403);
    const imported = await call('POST', '/import', bundle);
    expect(imported.body.deviceSecrets).toHaveLength(3);
    expect((await call('GET', '/trucks', undefined, 'operator')).body.items[0]).toMatchObject({ plate: '苏E·12345' });
  });
});
