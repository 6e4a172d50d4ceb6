// Bin fill forecasts, for collection crews planning a round:
//   GET /bins/forecast?community_id&limit   bins by predicted time to overflow, soonest first
//   GET /bins/{id}/forecast                 one bin
// The forecast is the rules engine's (rules/forecast.ts), from the readings judged so far.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ENTITIES, entityId } from '../../registry/entities.ts';
import type { EntityRecord, EntityStore } from '../../registry/entity-store.ts';
import type { Forecast } from '../../rules/forecast.ts';
import { READ_ALL } from '../auth.ts';
import { ApiError } from '../errors.ts';

const forecastView = z.object({
  bin_id: z.string(),
  device_id: z.string().nullable(),
  community_id: z.string().nullable(),
  category: z.string(),
  fill_pct: z.number().nullable(),
  read_at: z.string().nullable(),
  rate_pct_per_h: z.number().nullable().describe('Fill rate fitted over the latest readings since the last emptying'),
  overflow_at: z.string().nullable().describe('When the fill reaches rules.overflowRaisePct at that rate'),
  full_at: z.string().nullable().describe('When it reaches 100 %'),
});

export type ForecastOf = (deviceId: string) => Forecast | null;

function view(bin: EntityRecord, forecastOf: ForecastOf): z.infer<typeof forecastView> {
  const deviceId = (bin.device_id as string | null | undefined) ?? null;
  const f = deviceId ? forecastOf(deviceId) : null;
  return {
    bin_id: bin.id,
    device_id: deviceId,
    community_id: (bin.community_id as string | null | undefined) ?? null,
    category: bin.category as string,
    fill_pct: f?.fill_pct ?? null,
    read_at: f?.read_at ?? null,
    rate_pct_per_h: f?.rate_pct_per_h ?? null,
    overflow_at: f?.overflow_at ?? null,
    full_at: f?.full_at ?? null,
  };
}

export const binRoutes: FastifyPluginAsyncZod<{ entities: EntityStore; forecastOf: ForecastOf }> = async (app, { entities, forecastOf }) => {
  app.get('/bins/forecast', {
    config: { roles: READ_ALL },
    schema: {
      tags: ['bins'],
      querystring: z.object({ community_id: entityId.optional(), limit: z.coerce.number().int().min(1).max(5000).default(100) }),
      response: { 200: z.object({ items: z.array(forecastView), total: z.number().int() }) },
    },
  }, async (request) => {
    const filters: Record<string, string> = request.query.community_id ? { community_id: request.query.community_id } : {};
    const all = entities.all(ENTITIES.bins, filters).map((b) => view(b, forecastOf));
    // Soonest to overflow first; bins already over it, then those not filling, last.
    const key = (f: z.infer<typeof forecastView>) => (f.overflow_at ? Date.parse(f.overflow_at) : Number.POSITIVE_INFINITY);
    all.sort((a, b) => key(a) - key(b) || a.bin_id.localeCompare(b.bin_id));
    return { items: all.slice(0, request.query.limit), total: all.length };
  });

  app.get('/bins/:id/forecast', {
    config: { roles: READ_ALL },
    schema: { tags: ['bins'], params: z.object({ id: entityId }), response: { 200: forecastView } },
  }, async (request) => {
    const bin = entities.get(ENTITIES.bins, request.params.id);
    if (!bin) throw new ApiError(404, 'not_found', `no bin ${request.params.id}`);
    return view(bin, forecastOf);
  });
};
