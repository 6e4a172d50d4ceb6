// /api/v1/{companies,districts,communities,jurisdictions,sites,trucks,bins}: CRUD for the registry
// entities of registry/entities.ts. Geometry is GeoJSON in WGS-84; a write may say
// "crs": "GCJ-02" (Amap, Tencent) or "BD-09" (Baidu) and is converted. A geometry of more than
// registry.maxGeometryVertices positions is refused (400) before it is checked.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ENTITIES, entityId } from '../../registry/entities.ts';
import type { EntityStore } from '../../registry/entity-store.ts';
import { SOURCE_CRS } from '../../registry/geometry.ts';
import { READ_ALL, WRITE_REGISTRY } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { page, pageQuery } from './pagination.ts';

const crs = z.enum(SOURCE_CRS).default('WGS-84').describe('Datum of the geometry sent; stored as WGS-84');
const idParam = z.object({ id: entityId });

/** Room for one position in a request body: `[120.123456789012, 31.123456789012]` pretty-printed is about 60 bytes. */
const BYTES_PER_POSITION = 100;

export const entityRoutes: FastifyPluginAsyncZod<{ entities: EntityStore }> = async (app, { entities }) => {
  // A geometry at the position cap must reach the check (and its clear 400), not the body limit
  // of the app (api.bodyLimitBytes), which holds every entity without geometry.
  const bodyLimit = Math.max(app.initialConfig.bodyLimit ?? 0, BYTES_PER_POSITION * entities.limits.maxGeometryVertices);
  for (const def of Object.values(ENTITIES)) {
    const tags = [def.name];
    const record = def.fields.extend({ id: z.string(), created_at: z.string(), updated_at: z.string() });
    const query = pageQuery.extend(Object.fromEntries(def.filters.map((field) => [field, z.string().optional()])));
    const find = (id: string) => {
      const found = entities.get(def, id);
      if (!found) throw new ApiError(404, 'not_found', `no ${def.singular} ${id}`);
      return found;
    };

    app.get(`/${def.name}`, { config: { roles: READ_ALL }, schema: { tags, querystring: query, response: { 200: page(record) } } }, async (request) => {
      const { limit, offset, ...filters } = request.query as { limit: number; offset: number } & Record<string, string>;
      return { ...entities.list(def, filters, limit, offset), limit, offset };
    });

    app.get(`/${def.name}/:id`, { config: { roles: READ_ALL }, schema: { tags, params: idParam, response: { 200: record } } }, async (request) => find(request.params.id));

    app.post(
      `/${def.name}`,
      { bodyLimit, config: { roles: WRITE_REGISTRY }, schema: { tags, body: def.fields.extend({ id: entityId, crs }), response: { 201: record } } },
      async (request, reply) => {
        const { id, crs: datum, ...fields } = request.body as { id: string; crs: (typeof SOURCE_CRS)[number] } & Record<string, unknown>;
        return reply.code(201).send(entities.create(def, id, fields, datum));
      },
    );

    app.patch(
      `/${def.name}/:id`,
      { bodyLimit, config: { roles: WRITE_REGISTRY }, schema: { tags, params: idParam, body: def.fields.partial().extend({ crs }), response: { 200: record } } },
      async (request) => {
        const { crs: datum, ...fields } = request.body as { crs: (typeof SOURCE_CRS)[number] } & Record<string, unknown>;
        const present = Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
        return entities.update(def, request.params.id, present, datum);
      },
    );

    app.delete(`/${def.name}/:id`, { config: { roles: WRITE_REGISTRY }, schema: { tags, params: idParam } }, async (request, reply) => {
      entities.remove(def, request.params.id);
      return reply.code(204).send();
    });
  }
};
