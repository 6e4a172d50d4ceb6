// The API in-process (app.inject) on a real registry database file.
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../../services/api/app.ts';
import { influxSchema } from '../../../services/config/schema.ts';
import { InfluxStore } from '../../../services/influx/client.ts';
import { TelemetryReader } from '../../../services/influx/reader.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { EntityStore } from '../../../services/registry/entity-store.ts';
import { ROLES, TokenStore, type Role } from '../../../services/registry/tokens.ts';
import { tempDir } from '../../helpers/service.ts';

let db: RegistryDb;
let devices: DeviceStore;
let app: Awaited<ReturnType<typeof buildApp>>;
const tokenOf = {} as Record<Role, string>;

async function setup(rateLimitPerMinute = 1000): Promise<void> {
  db = new RegistryDb(path.join(await tempDir('waste-api-'), 'registry.db'));
  db.open();
  db.connection.prepare("INSERT INTO jurisdictions (id, name, enforcement_unit, geometry, created_at, updated_at) VALUES ('jingang', '金港', '执法中队', '{}', 'x', 'x')").run();
  devices = new DeviceStore(db);
  const tokens = new TokenStore(db);
  for (const role of ROLES) tokenOf[role] = tokens.create({ name: role, role, ...(role === 'enforcement' ? { jurisdictions: ['jingang'] } : {}) }).token;
  app = await buildApp({ db, devices, entities: new EntityStore(db), tokens, rateLimitPerMinute, reader: new TelemetryReader(new InfluxStore(influxSchema.parse({ url: 'http://127.0.0.1:1' }))) });
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

  // Every role against every route group: [method, url, body, roles that may].
  const matrix: [string, 'GET' | 'POST' | 'PATCH' | 'DELETE', string, object | undefined, Role[]][] = [
    ['list devices', 'GET', '/api/v1/devices', undefined, ['admin', 'operator', 'integrator']],
    ['create a device', 'POST', '/api/v1/devices', { id: 'M-1', class: 'bins' }, ['admin', 'integrator']],
    ['disable a device', 'PATCH', '/api/v1/devices/EXISTING', { enabled: false }, ['admin', 'integrator']],
    ['rotate a secret', 'POST', '/api/v1/devices/EXISTING/rotate', undefined, ['admin', 'integrator']],
    ['list tokens', 'GET', '/api/v1/tokens', undefined, ['admin']],
    ['create a token', 'POST', '/api/v1/tokens', { name: 'x', role: 'operator' }, ['admin']],
  ];
  for (const [what, method, url, body, allowed] of matrix) {
    it(`lets only ${allowed.join(', ')} ${what}`, async () => {
      for (const role of ROLES) {
        if (!devices.device('EXISTING')) await devices.add('EXISTING', 'trucks');
        const response = await call(method, url.replace('M-1', `M-${role}`), role, body && 'id' in body ? { ...body, id: `M-${role}` } : body);
        if (allowed.includes(role)) expect(response.statusCode, `${role}: ${response.body}`).toBeLessThan(300);
        else expect([response.statusCode, response.json().error.code], role).toEqual([403, 'forbidden']);
      }
    });
  }
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
    expect(created.json()).toEqual({ device: { id: 'TRUCK-9', class: 'trucks', enabled: true, created_at: expect.any(String) }, secret: expect.stringMatching(/^[\w-]{32}$/) });
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
