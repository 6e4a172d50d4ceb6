// JT/T 808 terminals through the devices API (routes/devices.ts), on a real registry database file.
import { alertDeps } from '../../helpers/api.ts';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../../services/api/app.ts';
import { hashSecret, verifySecret } from '../../../services/broker/secrets.ts';
import { influxSchema } from '../../../services/config/schema.ts';
import { InfluxStore } from '../../../services/influx/client.ts';
import { TelemetryReader } from '../../../services/influx/reader.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { EntityStore } from '../../../services/registry/entity-store.ts';
import { TokenStore, type Role } from '../../../services/registry/tokens.ts';
import { tempDir } from '../../helpers/service.ts';

let db: RegistryDb;
let devices: DeviceStore;
let app: Awaited<ReturnType<typeof buildApp>>;
const tokenOf = {} as Record<Role, string>;

beforeEach(async () => {
  db = new RegistryDb(path.join(await tempDir('waste-api-devices-'), 'registry.db'));
  db.open();
  devices = new DeviceStore(db);
  const tokens = new TokenStore(db);
  for (const role of ['admin', 'operator', 'integrator'] as const) tokenOf[role] = tokens.create({ name: role, role }).token;
  app = await buildApp({ db, devices, entities: new EntityStore(db), tokens, rateLimitPerMinute: 10_000, reader: new TelemetryReader(new InfluxStore(influxSchema.parse({ url: 'http://127.0.0.1:1' }))), ...alertDeps(db) });
});
afterEach(async () => {
  await app.close();
  db.close();
});

// Response bodies are read field by field in the assertions; typing each would only repeat them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;

const call = async (method: 'GET' | 'POST' | 'PATCH', url: string, body?: object, role: Role = 'integrator') => {
  const response = await app.inject({ method, url: `/api/v1${url}`, headers: { authorization: `Bearer ${tokenOf[role]}` }, ...(body ? { payload: body } : {}) });
  return { status: response.statusCode, body: response.json() as Json, text: response.body };
};

describe('devices API: JT/T 808 terminals', () => {
  it('provisions a terminal with its phone number, model and code, and never answers the code or its hash', async () => {
    const created = await call('POST', '/devices', { id: 'T1', class: 'trucks', jt808_phone: '013800138000', jt808_model: 'ZT-80', jt808_auth_code: 'Chosen-Code-1' });
    expect(created.status).toBe(201);
    expect(created.body.device).toEqual({
      id: 'T1', class: 'trucks', enabled: true, asset: null, created_at: expect.any(String), jt808_phone: '13800138000', jt808_model: 'ZT-80', jt808_registered: true,
    });
    const hash = devices.terminal('13800138000')!.authCodeHash!;
    expect(await verifySecret('Chosen-Code-1', hash)).toBe(true);
    for (const answer of [created, await call('GET', '/devices/T1', undefined, 'operator'), await call('GET', '/devices', undefined, 'operator')]) {
      expect(answer.text).not.toContain('Chosen-Code-1');
      expect(answer.text).not.toContain(hash);
      expect(answer.text).not.toContain('scrypt');
    }
    expect((await call('GET', '/devices')).body.items[0]).toMatchObject({ jt808_phone: '13800138000', jt808_registered: true });
  });

  it('refuses a taken number with 409 naming the device that has it, and terminals of other classes with 400', async () => {
    await call('POST', '/devices', { id: 'T1', class: 'trucks', jt808_phone: '13800138000' });
    const taken = await call('POST', '/devices', { id: 'T2', class: 'trucks', jt808_phone: '0013800138000' });
    expect([taken.status, taken.body]).toEqual([409, { error: { code: 'conflict', message: 'terminal phone number 13800138000 belongs to device T1 already' } }]);
    expect((await call('GET', '/devices/T2')).status).toBe(404);
    const bin = await call('POST', '/devices', { id: 'B1', class: 'bins', jt808_phone: '13900139000' });
    expect([bin.status, bin.body.error.message]).toEqual([400, 'device B1 is of class bins; only trucks devices can be JT/T 808 terminals']);
    for (const body of [
      { jt808_phone: '138-0013-8000' },
      { jt808_phone: '1'.repeat(21) },
      { jt808_phone: 13800138000 },
      { jt808_phone: '13900139000', jt808_auth_code: 'has space' },
      { jt808_phone: '13900139000', jt808_model: 'x'.repeat(65) },
      { jt808_phone: '13900139000', jt808_model: 'bad\u0000' },
      { jt808_model: 'no phone' },
    ]) {
      const refused = await call('POST', '/devices', { id: 'T3', class: 'trucks', ...body });
      expect(refused.status, JSON.stringify(body)).toBe(400);
      expect(refused.body.error.message, JSON.stringify(body)).toMatch(/\w/);
    }
    expect((await call('GET', '/devices/T3')).status).toBe(404);
  });

  it('sets, changes and clears the terminal of an existing device, all fields or none', async () => {
    await call('POST', '/devices', { id: 'T1', class: 'trucks' });
    await call('POST', '/devices', { id: 'T2', class: 'trucks', jt808_phone: '13900139000' });
    const changes: number[] = [];
    devices.onChange(() => changes.push(1));
    expect((await call('PATCH', '/devices/T1', { jt808_phone: '13800138000', jt808_model: 'M1' })).body).toMatchObject({ jt808_phone: '13800138000', jt808_model: 'M1', jt808_registered: false });
    expect((await call('PATCH', '/devices/T1', { jt808_model: 'M2' })).body).toMatchObject({ jt808_phone: '13800138000', jt808_model: 'M2' });
    expect((await call('PATCH', '/devices/T1', { jt808_auth_code: 'new-code' })).body).toMatchObject({ jt808_registered: true });
    expect(changes).toHaveLength(3);

    const taken = await call('PATCH', '/devices/T1', { enabled: false, jt808_phone: '13900139000' });
    expect([taken.status, taken.body.error.message]).toEqual([409, 'terminal phone number 13900139000 belongs to device T2 already']);
    expect((await call('GET', '/devices/T1')).body).toMatchObject({ enabled: true, jt808_phone: '13800138000' });
    expect(changes).toHaveLength(3);

    expect((await call('PATCH', '/devices/T1', { enabled: false })).body).toMatchObject({ enabled: false, jt808_phone: '13800138000' });
    expect(devices.terminal('13800138000')!.enabled).toBe(false);
    expect((await call('PATCH', '/devices/T1', { jt808_phone: null })).body).toMatchObject({ jt808_phone: null, jt808_model: null, jt808_registered: false });
    expect(devices.terminal('13800138000')).toBeUndefined();
    const empty = await call('PATCH', '/devices/T1', {});
    expect([empty.status, empty.body.error.code]).toEqual([400, 'invalid_request']);
    const notTerminal = await call('PATCH', '/devices/T1', { jt808_model: 'M3' });
    expect([notTerminal.status, notTerminal.body.error.message]).toEqual([400, 'device T1 has no terminal phone number; give one with the model or authentication code']);
  });

  it('resets a terminal\'s code so that it may register again', async () => {
    await call('POST', '/devices', { id: 'T1', class: 'trucks', jt808_phone: '13800138000' });
    expect(devices.register('T1', await hashSecret('issued'), 'ZT-80')).toBe(true);
    expect((await call('GET', '/devices/T1')).body).toMatchObject({ jt808_registered: true, jt808_model: 'ZT-80' });
    expect((await call('POST', '/devices/T1/jt808/reset', undefined, 'operator')).status).toBe(403);
    const reset = await call('POST', '/devices/T1/jt808/reset');
    expect([reset.status, reset.body.jt808_registered]).toEqual([200, false]);
    expect(devices.register('T1', await hashSecret('issued again'), null)).toBe(true);
    await call('POST', '/devices', { id: 'T2', class: 'trucks' });
    const none = await call('POST', '/devices/T2/jt808/reset');
    expect([none.status, none.body.error.message]).toEqual([400, 'device T2 is no JT/T 808 terminal (it has no terminal phone number)']);
    expect((await call('POST', '/devices/NOPE/jt808/reset')).status).toBe(404);
  });

  it('describes the terminal fields in the OpenAPI document', async () => {
    const spec = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(Object.keys(spec.paths)).toContain('/api/v1/devices/{id}/jt808/reset');
    expect(JSON.stringify(spec.paths['/api/v1/devices'].post)).toContain('jt808_auth_code');
  });
});
