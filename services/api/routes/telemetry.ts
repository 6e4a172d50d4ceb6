// Current state and history, read from InfluxDB and joined with the registry:
//   GET /positions                  latest position of each truck
//   GET /trucks/{id}/track          a truck's fixes between two instants
//   GET /bin-levels                 latest level of each bin
//   GET /bins/{id}/levels           a bin's readings between two instants
// An enforcement token sees only trucks whose latest position lies in its jurisdictions, and only
// the fixes of a track that lie there. A track it may not see is answered exactly as a truck that
// does not exist (404, same message), and the request is judged in the same order either way, so
// that such a token cannot learn which trucks exist outside its jurisdictions.
import booleanPointInPolygon from '@turf/boolean-point-in-polygon';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Fix, TelemetryReader } from '../../influx/reader.ts';
import { ENTITIES, entityId } from '../../registry/entities.ts';
import type { EntityStore } from '../../registry/entity-store.ts';
import type { MultiPolygonGeometry, PolygonGeometry } from '../../registry/geometry.ts';
import type { TokenIdentity } from '../../registry/tokens.ts';
import { READ_ALL, READ_WITH_ENFORCEMENT } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { instant } from './time.ts';

const DAY_MS = 86_400_000;

const window = z.object({
  from: instant.optional().describe('Default: 24 h before `to`'),
  to: instant.optional().describe('Default: now'),
});

const fix = z.object({
  time: z.string(),
  lat: z.number(),
  lon: z.number(),
  speed_kmh: z.number(),
  heading: z.number(),
  ignition: z.boolean().nullish(),
  tipper_up: z.boolean().nullish(),
  cover_closed: z.boolean().nullish(),
  load_kg: z.number().nullish(),
});
const level = z.object({
  time: z.string(),
  fill_pct: z.number().nullish(),
  distance_mm: z.number().nullish(),
  temp_c: z.number().nullish(),
  tilt_deg: z.number().nullish(),
  tilted: z.boolean().nullish(),
  battery_v: z.number().nullish(),
  battery_pct: z.number().nullish(),
});

function span(query: { from?: string | undefined; to?: string | undefined }): { from: string; to: string } {
  const to = query.to ? new Date(query.to) : new Date();
  const from = query.from ? new Date(query.from) : new Date(to.getTime() - DAY_MS);
  if (from > to) throw new ApiError(400, 'invalid_request', 'from must not be after to', ['querystring', 'from']);
  return { from: from.toISOString(), to: to.toISOString() };
}

function fixView(f: Fix): z.infer<typeof fix> {
  const { time, lat, lon, speed_kmh, heading, ignition, tipper_up, cover_closed, load_kg } = f;
  return { time, lat, lon, speed_kmh, heading, ignition, tipper_up, cover_closed, load_kg };
}

export const telemetryRoutes: FastifyPluginAsyncZod<{ reader: TelemetryReader; entities: EntityStore }> = async (app, { reader, entities }) => {
  /** For an enforcement token, a test of whether a position lies in its jurisdictions. */
  const scope = (identity: TokenIdentity | null): ((lon: number, lat: number) => boolean) | null => {
    if (identity?.role !== 'enforcement') return null;
    const areas = identity.jurisdictions
      .map((id) => entities.get(ENTITIES.jurisdictions, id)?.geometry as PolygonGeometry | MultiPolygonGeometry | undefined)
      .filter((g) => g !== undefined);
    return (lon, lat) => areas.some((area) => booleanPointInPolygon([lon, lat], area));
  };
  const byDevice = (name: 'trucks' | 'bins') =>
    new Map(entities.list(ENTITIES[name], {}, 1_000_000, 0).items.filter((item) => item.device_id).map((item) => [item.device_id as string, item]));

  app.get(
    '/positions',
    {
      config: { roles: READ_WITH_ENFORCEMENT },
      schema: { tags: ['state'], response: { 200: z.object({ items: z.array(fix.extend({ truck_id: z.string(), plate: z.string(), device_id: z.string() })) }) } },
    },
    async (request) => {
      const trucks = byDevice('trucks');
      const inside = scope(request.identity);
      const items = (await reader.latestPositions())
        .filter((f) => trucks.has(f.device_id) && (!inside || inside(f.lon, f.lat)))
        .map((f) => ({ ...fixView(f), truck_id: trucks.get(f.device_id)!.id, plate: trucks.get(f.device_id)!.plate as string, device_id: f.device_id }));
      return { items };
    },
  );

  app.get(
    '/trucks/:id/track',
    {
      config: { roles: READ_WITH_ENFORCEMENT },
      schema: { tags: ['history'], params: z.object({ id: entityId }), querystring: window, response: { 200: z.object({ truck_id: z.string(), device_id: z.string().nullable(), from: z.string(), to: z.string(), fixes: z.array(fix) }) } },
    },
    async (request) => {
      const { from, to } = span(request.query);
      const inside = scope(request.identity);
      const truck = entities.get(ENTITIES.trucks, request.params.id);
      const unseen = () =>
        inside
          ? new ApiError(404, 'not_found', `no truck ${request.params.id} with fixes in your jurisdictions between ${from} and ${to}`)
          : new ApiError(404, 'not_found', `no truck ${request.params.id}`);
      if (!truck) throw unseen();
      const deviceId = (truck.device_id as string | null) ?? null;
      const all = deviceId ? await reader.track(deviceId, from, to) : [];
      const fixes = inside ? all.filter((f) => inside(f.lon, f.lat)) : all;
      if (inside && fixes.length === 0) throw unseen();
      return { truck_id: truck.id, device_id: deviceId, from, to, fixes: fixes.map(fixView) };
    },
  );

  app.get(
    '/bin-levels',
    { config: { roles: READ_ALL }, schema: { tags: ['state'], response: { 200: z.object({ items: z.array(level.extend({ bin_id: z.string(), device_id: z.string() })) }) } } },
    async () => {
      const bins = byDevice('bins');
      const items = (await reader.latestLevels())
        .filter((l) => bins.has(l.device_id))
        .map(({ time, device_id, fill_pct, distance_mm, temp_c, tilt_deg, tilted, battery_v, battery_pct }) => ({ time, fill_pct, distance_mm, temp_c, tilt_deg, tilted, battery_v, battery_pct, device_id, bin_id: bins.get(device_id)!.id }));
      return { items };
    },
  );

  app.get(
    '/bins/:id/levels',
    {
      config: { roles: READ_ALL },
      schema: { tags: ['history'], params: z.object({ id: entityId }), querystring: window, response: { 200: z.object({ bin_id: z.string(), device_id: z.string().nullable(), from: z.string(), to: z.string(), levels: z.array(level) }) } },
    },
    async (request) => {
      const { from, to } = span(request.query);
      const bin = entities.get(ENTITIES.bins, request.params.id);
      if (!bin) throw new ApiError(404, 'not_found', `no bin ${request.params.id}`);
      const deviceId = (bin.device_id as string | null) ?? null;
      const levels = deviceId
        ? (await reader.levels(deviceId, from, to)).map(({ time, fill_pct, distance_mm, temp_c, tilt_deg, tilted, battery_v, battery_pct }) => ({ time, fill_pct, distance_mm, temp_c, tilt_deg, tilted, battery_v, battery_pct }))
        : [];
      return { bin_id: bin.id, device_id: deviceId, from, to, levels };
    },
  );
};
