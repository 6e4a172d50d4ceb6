// The API in-process (app.inject) on a real registry database file and a real InfluxDB.
import { alertDeps } from '../../helpers/api.ts';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../../services/api/app.ts';
import { TelemetryReader } from '../../../services/influx/reader.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { EntityStore } from '../../../services/registry/entity-store.ts';
import { ROLES, TokenStore, type Role } from '../../../services/registry/tokens.ts';
import { ENTITIES } from '../../../services/registry/entities.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';
import { tempDir } from '../../helpers/service.ts';

beforeAll(async () => {
  influxd = await startTestInfluxd();
});
afterAll(async () => {
  await influxd?.cleanup();
});

let influxd: TestInfluxd;
let db: RegistryDb;
let devices: DeviceStore;
let entities: EntityStore;
let app: Awaited<ReturnType<typeof buildApp>>;
const tokenOf = {} as Record<Role, string>;

async function setup(rateLimitPerMinute = 1000): Promise<void> {
  db = new RegistryDb(path.join(await tempDir('waste-api-'), 'registry.db'));
  db.open();
  devices = new DeviceStore(db);
  entities = new EntityStore(db);
  const area = { type: 'Polygon', coordinates: [[[120.6, 31.3], [120.61, 31.3], [120.61, 31.31], [120.6, 31.31], [120.6, 31.3]]] };
  entities.create(ENTITIES.jurisdictions, 'jingang', { name: '金港', enforcement_unit: '执法中队', geometry: area, neighbour_ids: [] });
  const tokens = new TokenStore(db);
  for (const role of ROLES) tokenOf[role] = tokens.create({ name: role, role, ...(role === 'enforcement' ? { jurisdictions: ['jingang'] } : {}) }).token;
  app = await buildApp({ db, devices, entities, tokens, rateLimitPerMinute, reader: new TelemetryReader(influxd.store()), ...alertDeps(db) });
}

const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, role?: Role, body?: object) =>
  app.inject({ method, url, headers: role ? { authorization: `Bearer ${tokenOf[role]}` } : {}, ...(body ? { payload: body } : {}) });

describe('API access', () => {
  beforeEach(() => setup());
  afterEach(async () => {
    await app.close();
    db.close();
  });

  it('answers 401 without a token or with a bad one, as JSON', async () => {
    for (const headers of [{}, { authorization: 'Bearer wt_nope' }, { authorization: `Basic ${tokenOf.admin}` }]) {
      const response = await app.inject({ method: 'GET', url: '/api/v1/devices', headers });
      expect(response.statusCode).toBe(401);
      expect(response.json()).toMatchObject({ error: { code: 'unauthenticated' } });
    }
  });

  it('answers every route group for every role as the matrix says', async () => {
    // A truck with a fix inside the enforcement token's jurisdiction, a bin, a company to edit.
    await devices.add('GPS-M', 'trucks');
    await devices.add('BIN-M', 'bins');
    await devices.add('GPS-T', 'trucks', { phone: '13800138000' });
    entities.create(ENTITIES.companies, 'co', { name: 'co' });
    entities.create(ENTITIES.trucks, 'truck-m', { plate: '苏E·55555', company_id: 'co', fleet: 'muck', rated_gross_kg: 30000, device_id: 'GPS-M' });
    entities.create(ENTITIES.bins, 'bin-m', { category: 'other', location: { type: 'Point', coordinates: [120.6, 31.3] }, depth_mm: 900, device_id: 'BIN-M' });
    await influxd.store().write(`truck_position,device_id=GPS-M lat=31.305,lon=120.605,speed_kmh=10,heading=90 ${Date.now() - 60_000}\n`);
    const bundle = { format: 'waste-registry-bundle', version: 1, companies: [{ id: 'co-import', name: 'x' }] };
    const read: Role[] = ['admin', 'operator', 'integrator'];
    const write: Role[] = ['admin', 'integrator'];
    const everyone: Role[] = [...ROLES];
    const matrix: [string, 'GET' | 'POST' | 'PATCH' | 'DELETE', string, object | undefined, Role[]][] = [
      ['devices: list', 'GET', '/api/v1/devices', undefined, read],
      ['devices: read one', 'GET', '/api/v1/devices/GPS-M', undefined, read],
      ['devices: create', 'POST', '/api/v1/devices', { id: 'NEW-{role}', class: 'bins' }, write],
      ['devices: disable', 'PATCH', '/api/v1/devices/BIN-M', { enabled: true }, write],
      ['devices: rotate', 'POST', '/api/v1/devices/BIN-M/rotate', undefined, write],
      ['devices: JT/T 808 code reset', 'POST', '/api/v1/devices/GPS-T/jt808/reset', undefined, write],
      ...Object.keys(ENTITIES).map((name): (typeof matrix)[number] => [`${name}: list`, 'GET', `/api/v1/${name}`, undefined, read]),
      ['registry: read one', 'GET', '/api/v1/trucks/truck-m', undefined, read],
      ['registry: create', 'POST', '/api/v1/companies', { id: 'new-co-{role}', name: 'c' }, write],
      ['registry: update', 'PATCH', '/api/v1/companies/co', { contact: '{role}' }, write],
      ['registry: delete', 'DELETE', '/api/v1/companies/co-{role}', undefined, write],
      ['import', 'POST', '/api/v1/import?dry_run=true', bundle, write],
      ['state: positions', 'GET', '/api/v1/positions', undefined, everyone],
      ['history: track', 'GET', '/api/v1/trucks/truck-m/track', undefined, everyone],
      ['state: bin levels', 'GET', '/api/v1/bin-levels', undefined, read],
      ['history: bin levels', 'GET', '/api/v1/bins/bin-m/levels', undefined, read],
      ['tokens: list', 'GET', '/api/v1/tokens', undefined, ['admin']],
      ['tokens: create', 'POST', '/api/v1/tokens', { name: 'x', role: 'operator' }, ['admin']],
    ];
    for (const role of ROLES) entities.create(ENTITIES.companies, `co-${role}`, { name: 'to delete' });
    for (const [what, method, url, body, allowed] of matrix) {
      for (const role of ROLES) {
        const fill = (text: string) => text.replace('{role}', role);
        const response = await call(method, fill(url), role, body && JSON.parse(fill(JSON.stringify(body))));
        if (allowed.includes(role)) expect(response.statusCode, `${what} as ${role}: ${response.body}`).toBeLessThan(300);
        else expect([response.statusCode, response.json().error.code], `${what} as ${role}`).toEqual([403, 'forbidden']);
      }
    }
  });
});

describe('devices API', () => {
  beforeEach(() => setup());
  afterEach(async () => {
    await app.close();
    db.close();
  });

  it('creates a device and returns its secret once', async () => {
    const created = await call('POST', '/api/v1/devices', 'integrator', { id: 'TRUCK-9', class: 'trucks' });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toEqual({ device: { id: 'TRUCK-9', class: 'trucks', enabled: true, asset: null, created_at: expect.any(String), jt808_phone: null, jt808_model: null, jt808_registered: false, lorawan_dev_eui: null, lorawan_sensor: null }, secret: expect.stringMatching(/^[\w-]{32}$/) });
    const read = await call('GET', '/api/v1/devices/TRUCK-9', 'operator');
    expect(read.json()).not.toHaveProperty('secret');
    expect(read.body).not.toContain('scrypt');
  });

  it('pages and filters lists', async () => {
    for (let i = 0; i < 5; i++) await devices.add(`B-${i}`, 'bins');
    await devices.add('T-1', 'trucks');
    const first = (await call('GET', '/api/v1/devices?class=bins&limit=2&offset=1', 'operator')).json();
    expect(first).toEqual({ items: [expect.objectContaining({ id: 'B-1' }), expect.objectContaining({ id: 'B-2' })], total: 5, limit: 2, offset: 1 });
  });

  it('reports errors with a code, a message and the field path', async () => {
    const bad = await call('POST', '/api/v1/devices', 'admin', { id: 'a/b', class: 'cars' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({ code: 'invalid_request', path: ['body', expect.any(String)] });
    await devices.add('DUP', 'bins');
    expect((await call('POST', '/api/v1/devices', 'admin', { id: 'DUP', class: 'bins' })).json()).toEqual({ error: { code: 'conflict', message: 'device DUP exists already' } });
    expect((await call('GET', '/api/v1/devices/NOPE', 'admin')).statusCode).toBe(404);
    expect((await call('GET', "/api/v1/devices/x'%20OR%201=1", 'admin')).json().error).toMatchObject({ code: 'invalid_request', path: ['params', 'id'] });
    expect((await call('GET', '/api/v1/nothing', 'admin')).json()).toEqual({ error: { code: 'not_found', message: 'no route GET /api/v1/nothing' } });
  });

  it('disables, rotates and deletes', async () => {
    const { secret } = (await call('POST', '/api/v1/devices', 'admin', { id: 'D1', class: 'scales' })).json() as { secret: string };
    expect((await call('PATCH', '/api/v1/devices/D1', 'admin', { enabled: false })).json()).toMatchObject({ enabled: false });
    const rotated = (await call('POST', '/api/v1/devices/D1/rotate', 'admin')).json() as { secret: string };
    expect(rotated.secret).not.toBe(secret);
    expect((await call('DELETE', '/api/v1/devices/D1', 'admin')).statusCode).toBe(204);
    expect((await call('DELETE', '/api/v1/devices/D1', 'admin')).statusCode).toBe(404);
  });

  it('serves the OpenAPI description with the bearer scheme', async () => {
    const spec = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(['/api/v1/devices', '/api/v1/devices/{id}', '/api/v1/tokens']));
    expect(spec.components.securitySchemes.bearer).toEqual({ type: 'http', scheme: 'bearer' });
  });
});

describe('rate limit', () => {
  afterEach(async () => {
    await app.close();
    db.close();
  });

  it('limits each token on its own', async () => {
    await setup(3);
    for (let i = 0; i < 3; i++) expect((await call('GET', '/api/v1/devices', 'operator')).statusCode).toBe(200);
    const limited = await call('GET', '/api/v1/devices', 'operator');
    expect(limited.statusCode).toBe(429);
    expect(limited.json().error.code).toBe('rate_limited');
    expect((await call('GET', '/api/v1/devices', 'integrator')).statusCode).toBe(200);
  });
});
