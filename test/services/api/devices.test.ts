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
      lorawan_dev_eui: null, lorawan_sensor: null,
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

describe('devices API: LoRaWAN sensors', () => {
  const EUI = '24E124136B502217';

  it('provisions a sensor with its DevEUI in the stored form and its model, and shows them', async () => {
    const created = await call('POST', '/devices', { id: 'B1', class: 'bins', lorawan_dev_eui: '24-e1-24-13-6b-50-22-17', lorawan_sensor: 'milesight-em310-udl' });
    expect(created.status).toBe(201);
    expect(created.body.secret).toMatch(/^[\w-]{32}$/);
    expect(created.body.device).toEqual({
      id: 'B1', class: 'bins', enabled: true, asset: null, created_at: expect.any(String), jt808_phone: null, jt808_model: null, jt808_registered: false,
      lorawan_dev_eui: EUI, lorawan_sensor: 'milesight-em310-udl',
    });
    expect(devices.lorawanDevice(EUI)).toEqual({ deviceId: 'B1', devEui: EUI, sensor: 'milesight-em310-udl', enabled: true });
    const withoutModel = await call('POST', '/devices', { id: 'B2', class: 'bins', lorawan_dev_eui: 'a8:40:41:00:01:81:b3:7c' });
    expect([withoutModel.status, withoutModel.body.device.lorawan_dev_eui, withoutModel.body.device.lorawan_sensor]).toEqual([201, 'A84041000181B37C', null]);
    expect((await call('GET', '/devices/B1', undefined, 'operator')).body).toMatchObject({ lorawan_dev_eui: EUI, lorawan_sensor: 'milesight-em310-udl' });
    const listed = (await call('GET', '/devices?class=bins', undefined, 'operator')).body;
    expect(listed.items.map((d: Json) => [d.id, d.lorawan_dev_eui, d.lorawan_sensor])).toEqual([['B1', EUI, 'milesight-em310-udl'], ['B2', 'A84041000181B37C', null]]);
    // A device that is no sensor shows both as null.
    expect((await call('POST', '/devices', { id: 'B3', class: 'bins' })).body.device).toMatchObject({ lorawan_dev_eui: null, lorawan_sensor: null });
  });

  it('refuses malformed DevEUIs, unknown models and models without a DevEUI with 400, other classes with 400 and a taken DevEUI with 409 naming its device', async () => {
    await call('POST', '/devices', { id: 'B1', class: 'bins', lorawan_dev_eui: EUI });
    const taken = await call('POST', '/devices', { id: 'B2', class: 'bins', lorawan_dev_eui: '24:e1:24:13:6b:50:22:17' });
    expect([taken.status, taken.body]).toEqual([409, { error: { code: 'conflict', message: `DevEUI ${EUI} belongs to device B1 already` } }]);
    expect((await call('GET', '/devices/B2')).status).toBe(404);
    const truck = await call('POST', '/devices', { id: 'T1', class: 'trucks', lorawan_dev_eui: '24E124136B502218' });
    expect([truck.status, truck.body.error]).toEqual([400, { code: 'invalid', message: 'device T1 is of class trucks; only bins devices can be LoRaWAN sensors' }]);
    const zeros = await call('POST', '/devices', { id: 'B2', class: 'bins', lorawan_dev_eui: '00:00:00:00:00:00:00:00' });
    expect([zeros.status, zeros.body.error.message]).toEqual([400, 'DevEUI "00:00:00:00:00:00:00:00" is zeros only, which no device is given']);
    const short = await call('POST', '/devices', { id: 'B2', class: 'bins', lorawan_dev_eui: '24E124136B50221' });
    expect([short.status, short.body.error]).toEqual([400, { code: 'invalid_request', message: 'body.lorawan_dev_eui: must be 16 hex digits', path: ['body', 'lorawan_dev_eui'] }]);
    const noEui = await call('POST', '/devices', { id: 'B2', class: 'bins', lorawan_sensor: 'dragino-ldds75' });
    expect([noEui.status, noEui.body.error]).toEqual([400, { code: 'invalid_request', message: 'body: lorawan_sensor needs lorawan_dev_eui', path: ['body', 'lorawan_dev_eui'] }]);
    const unknown = await call('POST', '/devices', { id: 'B2', class: 'bins', lorawan_dev_eui: '24E124136B502218', lorawan_sensor: 'milesight-em500-udl' });
    expect([unknown.status, unknown.body.error.code, unknown.body.error.path]).toEqual([400, 'invalid_request', ['body', 'lorawan_sensor']]);
    for (const devEui of ['24E124136B50221G', '24E124136B5022171', '24 E1 24 13 6B 50 22 17', '0x24E124136B5022', 24124136502217, '']) {
      const refused = await call('POST', '/devices', { id: 'B2', class: 'bins', lorawan_dev_eui: devEui });
      expect(refused.status, JSON.stringify(devEui)).toBe(400);
      expect(refused.body.error.path, JSON.stringify(devEui)).toEqual(['body', 'lorawan_dev_eui']);
    }
    expect((await call('GET', '/devices/B2')).status).toBe(404);
    expect(devices.lorawanDevices().map((s) => s.deviceId)).toEqual(['B1']);
  });

  it('sets, changes and clears the sensor of an existing device, all fields or none', async () => {
    await call('POST', '/devices', { id: 'B1', class: 'bins' });
    await call('POST', '/devices', { id: 'B2', class: 'bins', lorawan_dev_eui: '24E124136B502218' });
    await call('POST', '/devices', { id: 'T1', class: 'trucks' });
    const changes: number[] = [];
    devices.onChange(() => changes.push(1));
    expect((await call('PATCH', '/devices/B1', { lorawan_dev_eui: '24e124136b502217', lorawan_sensor: 'milesight-em400-udl' })).body).toMatchObject({ lorawan_dev_eui: EUI, lorawan_sensor: 'milesight-em400-udl' });
    expect((await call('PATCH', '/devices/B1', { lorawan_sensor: 'dragino-ldds75' })).body).toMatchObject({ lorawan_dev_eui: EUI, lorawan_sensor: 'dragino-ldds75' });
    expect((await call('PATCH', '/devices/B1', { lorawan_sensor: null })).body).toMatchObject({ lorawan_dev_eui: EUI, lorawan_sensor: null });
    expect((await call('PATCH', '/devices/B1', { lorawan_sensor: 'dragino-ldds75' })).status).toBe(200);
    expect(changes).toHaveLength(4);

    const taken = await call('PATCH', '/devices/B1', { enabled: false, lorawan_dev_eui: '24-E1-24-13-6B-50-22-18' });
    expect([taken.status, taken.body.error]).toEqual([409, { code: 'conflict', message: 'DevEUI 24E124136B502218 belongs to device B2 already' }]);
    const unknown = await call('PATCH', '/devices/B1', { enabled: false, lorawan_sensor: 'unknown' });
    expect([unknown.status, unknown.body.error.path]).toEqual([400, ['body', 'lorawan_sensor']]);
    const bad = await call('PATCH', '/devices/B1', { enabled: false, lorawan_dev_eui: '24E1' });
    expect([bad.status, bad.body.error.path]).toEqual([400, ['body', 'lorawan_dev_eui']]);
    expect((await call('GET', '/devices/B1')).body).toMatchObject({ enabled: true, lorawan_dev_eui: EUI, lorawan_sensor: 'dragino-ldds75' });
    expect(changes).toHaveLength(4);

    expect((await call('PATCH', '/devices/B1', { enabled: false })).body).toMatchObject({ enabled: false, lorawan_dev_eui: EUI, lorawan_sensor: 'dragino-ldds75' });
    expect(devices.lorawanDevice(EUI)!.enabled).toBe(false);
    expect((await call('PATCH', '/devices/B1', { lorawan_dev_eui: null })).body).toMatchObject({ enabled: false, lorawan_dev_eui: null, lorawan_sensor: null });
    expect(devices.lorawanDevice(EUI)).toBeUndefined();
    const noEui = await call('PATCH', '/devices/B1', { lorawan_sensor: 'dragino-ldds75' });
    expect([noEui.status, noEui.body.error]).toEqual([400, { code: 'invalid', message: 'device B1 has no DevEUI; give one with the sensor model' }]);
    const truck = await call('PATCH', '/devices/T1', { lorawan_dev_eui: EUI });
    expect([truck.status, truck.body.error.message]).toEqual([400, 'device T1 is of class trucks; only bins devices can be LoRaWAN sensors']);
    // The freed DevEUI may go to another device.
    expect((await call('PATCH', '/devices/B2', { lorawan_dev_eui: EUI })).body).toMatchObject({ lorawan_dev_eui: EUI });
    expect((await call('PATCH', '/devices/NOPE', { lorawan_dev_eui: '24E124136B502219' })).status).toBe(404);
    expect((await call('PATCH', '/devices/B2', { lorawan_dev_eui: null }, 'operator')).status).toBe(403);
  });

  it('describes the LoRaWAN fields in the OpenAPI document, with the sensor models', async () => {
    const spec = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
    const post = JSON.stringify(spec.paths['/api/v1/devices'].post);
    expect(post).toContain('lorawan_dev_eui');
    expect(post).toContain('milesight-em310-udl');
    expect(JSON.stringify(spec.paths['/api/v1/devices/{id}'].patch)).toContain('lorawan_sensor');
  });
});
