// /api/v1/devices: provisioning. A device's secret is returned once, at creation or rotation.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { DEVICE_CLASSES, DEVICE_ID_PATTERN } from '../../contract/topics.ts';
import type { DeviceRecord } from '../../broker/credentials.ts';
import type { DeviceStore } from '../../registry/devices.ts';
import { READ_ALL, WRITE_REGISTRY } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { page, pageQuery } from './pagination.ts';

const device = z.object({
  id: z.string(),
  class: z.enum(DEVICE_CLASSES),
  enabled: z.boolean(),
  asset: z.object({ type: z.enum(['truck', 'bin', 'weighbridge']), id: z.string() }).nullable().describe('What the device is fitted to (set on the truck, bin or weighbridge)'),
  created_at: z.string(),
});
const withSecret = z.object({ device, secret: z.string().describe('Shown once; only a hash is stored.') });
const idParam = z.object({ id: z.string().regex(DEVICE_ID_PATTERN) });


export const deviceRoutes: FastifyPluginAsyncZod<{ devices: DeviceStore }> = async (app, { devices }) => {
  const view = ({ id, class: deviceClass, enabled, created_at }: DeviceRecord) => ({ id, class: deviceClass, enabled, asset: devices.assetOf(id), created_at });
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
    schema: { tags: ['devices'], body: z.object({ id: z.string().regex(DEVICE_ID_PATTERN), class: z.enum(DEVICE_CLASSES) }), response: { 201: withSecret } },
  }, async (request, reply) => {
    const secret = await devices.add(request.body.id, request.body.class);
    return reply.code(201).send({ device: find(request.body.id), secret });
  });

  app.get('/devices/:id', { config: { roles: READ_ALL }, schema: { tags: ['devices'], params: idParam, response: { 200: device } } }, async (request) => find(request.params.id));

  app.patch('/devices/:id', {
    config: { roles: WRITE_REGISTRY },
    schema: { tags: ['devices'], params: idParam, body: z.object({ enabled: z.boolean() }), response: { 200: device } },
  }, async (request) => {
    devices.setEnabled(request.params.id, request.body.enabled);
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
