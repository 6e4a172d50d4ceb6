// /api/v1/devices: provisioning. A device's secret is returned once, at creation or rotation. A
// trucks device may also be a JT/T 808 terminal (registry/devices.ts): its phone number and model
// are shown, its authentication code never, only whether it has one. A bins device may be a LoRaWAN
// sensor: its DevEUI and sensor model are shown.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { DEVICE_CLASSES, DEVICE_ID_PATTERN } from '../../contract/topics.ts';
import { MAX_AUTH_CODE, MAX_TERMINAL_MODEL, MAX_TERMINAL_PHONE_DIGITS, type DeviceStore, type StoredDevice } from '../../registry/devices.ts';
import { READ_ALL, WRITE_REGISTRY } from '../auth.ts';
import { SENSOR_MODELS } from '../../lorawan/decoders/index.ts';
import { ApiError } from '../errors.ts';
import { page, pageQuery } from './pagination.ts';

const device = z.object({
  id: z.string(),
  class: z.enum(DEVICE_CLASSES),
  enabled: z.boolean(),
  asset: z.object({ type: z.enum(['truck', 'bin', 'weighbridge']), id: z.string() }).nullable().describe('What the device is fitted to (set on the truck, bin or weighbridge)'),
  created_at: z.string(),
  jt808_phone: z.string().nullable().describe('JT/T 808 terminal phone number (SIM number), leading zeros removed; null if the device is no terminal'),
  jt808_model: z.string().nullable().describe('JT/T 808 terminal model, as provisioned or as reported at registration'),
  jt808_registered: z.boolean().describe('Whether the terminal has an authentication code (registered, or given one); the code is never shown'),
  lorawan_dev_eui: z.string().nullable().describe('LoRaWAN DevEUI (16 upper-case hex digits) of a bin sensor behind a network server; null if the device is no LoRaWAN sensor'),
  lorawan_sensor: z.string().nullable().describe('Sensor model picking the payload decoder (docs/lorawan.md); null: the network server\'s codec sends the contract\'s fields'),
});
const withSecret = z.object({ device, secret: z.string().describe('Shown once; only a hash is stored.') });
const idParam = z.object({ id: z.string().regex(DEVICE_ID_PATTERN) });

// Shapes only; what needs the registry (class, uniqueness, control characters) the store checks,
// answering 400 or 409 with its sentence.
const jt808Phone = z
  .string()
  .regex(new RegExp(`^\\d{1,${MAX_TERMINAL_PHONE_DIGITS}}$`), { error: `must be 1-${MAX_TERMINAL_PHONE_DIGITS} decimal digits` })
  .describe('Terminal phone number: the SIM number in the JT/T 808 message header (12 digits in the 2013 edition, up to 20 in 2019); leading zeros are dropped');
const jt808Model = z.string().min(1).max(MAX_TERMINAL_MODEL).describe('Terminal model; picks the layout of vendor extension items');
const jt808AuthCode = z
  .string()
  .min(1)
  .max(MAX_AUTH_CODE)
  .describe('Authentication code the terminal sends (JT/T 808 0x0102): printable ASCII without spaces; stored only as a hash, never returned');
const lorawanDevEui = z
  .string()
  .regex(/^[0-9A-Fa-f]{2}(?:[-:]?[0-9A-Fa-f]{2}){7}$/, { error: 'must be 16 hex digits' })
  .describe('DevEUI of the LoRaWAN sensor as its network server knows it: 16 hex digits, with or without - or : between the bytes');
const lorawanSensor = z.enum(SENSOR_MODELS as [string, ...string[]]).describe('Sensor model; picks the payload decoder');
const createBody = z.object({
  id: z.string().regex(DEVICE_ID_PATTERN),
  class: z.enum(DEVICE_CLASSES),
  jt808_phone: jt808Phone.optional(),
  jt808_model: jt808Model.optional(),
  jt808_auth_code: jt808AuthCode.optional(),
  lorawan_dev_eui: lorawanDevEui.optional(),
  lorawan_sensor: lorawanSensor.optional(),
});
const updateBody = z
  .object({
    enabled: z.boolean().optional(),
    jt808_phone: jt808Phone.nullable().optional().describe('null makes the device no terminal: phone number, model and authentication code are removed'),
    jt808_model: jt808Model.nullable().optional(),
    jt808_auth_code: jt808AuthCode.optional().describe('A new authentication code; the old one stops working'),
    lorawan_dev_eui: lorawanDevEui.nullable().optional().describe('null makes the device no LoRaWAN sensor: DevEUI and sensor model are removed'),
    lorawan_sensor: lorawanSensor.nullable().optional(),
  })
  .refine((body) => Object.values(body).some((value) => value !== undefined), { error: 'give at least one of enabled, jt808_phone, jt808_model, jt808_auth_code, lorawan_dev_eui, lorawan_sensor' });

export const deviceRoutes: FastifyPluginAsyncZod<{ devices: DeviceStore }> = async (app, { devices }) => {
  // Field by field: the stored record holds the secret hash, which no answer includes.
  const view = ({ id, class: deviceClass, enabled, created_at, jt808_phone, jt808_model, jt808_registered, lorawan_dev_eui, lorawan_sensor }: StoredDevice) => ({
    id,
    class: deviceClass,
    enabled,
    asset: devices.assetOf(id),
    created_at,
    jt808_phone,
    jt808_model,
    jt808_registered,
    lorawan_dev_eui,
    lorawan_sensor,
  });
  const find = (id: string) => {
    const found = devices.device(id);
    if (!found) throw new ApiError(404, 'not_found', `no device ${id}`);
    return view(found);
  };

  app.get('/devices', {
    config: { roles: READ_ALL },
    schema: { tags: ['devices'], querystring: pageQuery.extend({ class: z.enum(DEVICE_CLASSES).optional(), enabled: z.enum(['true', 'false']).optional() }), response: { 200: page(device) } },
  }, async (request) => {
    const { limit, offset, class: deviceClass, enabled } = request.query;
    const { items, total } = devices.list({ limit, offset, ...(deviceClass ? { deviceClass } : {}), ...(enabled ? { enabled: enabled === 'true' } : {}) });
    return { items: items.map(view), total, limit, offset };
  });

  app.post('/devices', {
    config: { roles: WRITE_REGISTRY },
    schema: { tags: ['devices'], body: createBody, response: { 201: withSecret } },
  }, async (request, reply) => {
    const { id, class: deviceClass, jt808_phone: phone, jt808_model: model, jt808_auth_code: authCode, lorawan_dev_eui: devEui, lorawan_sensor: sensor } = request.body;
    if (phone === undefined && (model !== undefined || authCode !== undefined)) {
      throw new ApiError(400, 'invalid_request', 'body: jt808_model and jt808_auth_code need jt808_phone', ['body', 'jt808_phone']);
    }
    if (devEui === undefined && sensor !== undefined) throw new ApiError(400, 'invalid_request', 'body: lorawan_sensor needs lorawan_dev_eui', ['body', 'lorawan_dev_eui']);
    const terminal = phone === undefined ? undefined : { phone, model, ...(authCode === undefined ? {} : { authCode }) };
    const secret = await devices.add(id, deviceClass, terminal, devEui === undefined ? undefined : { devEui, sensor });
    return reply.code(201).send({ device: find(id), secret });
  });

  app.get('/devices/:id', { config: { roles: READ_ALL }, schema: { tags: ['devices'], params: idParam, response: { 200: device } } }, async (request) => find(request.params.id));

  app.patch('/devices/:id', {
    config: { roles: WRITE_REGISTRY },
    schema: { tags: ['devices'], params: idParam, body: updateBody, response: { 200: device } },
  }, async (request) => {
    const { enabled, jt808_phone, jt808_model, jt808_auth_code, lorawan_dev_eui, lorawan_sensor } = request.body;
    // All fields are written together or none (a taken phone number leaves `enabled` as it was).
    await devices.update(request.params.id, { enabled, jt808Phone: jt808_phone, jt808Model: jt808_model, jt808AuthCode: jt808_auth_code, lorawanDevEui: lorawan_dev_eui, lorawanSensor: lorawan_sensor });
    return find(request.params.id);
  });

  app.post('/devices/:id/jt808/reset', {
    config: { roles: WRITE_REGISTRY },
    schema: {
      tags: ['devices'],
      description: 'Removes the terminal\'s authentication code, so that it may register again (a terminal that lost its code in a factory reset); its connection is closed.',
      params: idParam,
      response: { 200: device },
    },
  }, async (request) => {
    devices.resetTerminal(request.params.id);
    return find(request.params.id);
  });

  app.post('/devices/:id/rotate', {
    config: { roles: WRITE_REGISTRY },
    schema: { tags: ['devices'], params: idParam, response: { 200: withSecret } },
  }, async (request) => {
    const secret = await devices.rotate(request.params.id);
    return { device: find(request.params.id), secret };
  });

  app.delete('/devices/:id', { config: { roles: WRITE_REGISTRY }, schema: { tags: ['devices'], params: idParam } }, async (request, reply) => {
    devices.remove(request.params.id);
    return reply.code(204).send();
  });
};
