// Registry entities through the API, on a real registry database file.
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../../services/api/app.ts';
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
  app = await buildApp({ devices: new DeviceStore(db), entities: new EntityStore(db), tokens, rateLimitPerMinute: 10_000 });
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
      expect(lon).toBeCloseTo(wgs[0]![i]![0], 6);
      expect(lat).toBeCloseTo(wgs[0]![i]![1], 6);
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
});
