// /api/v1/spillage/hotspots: grid cells ranked by spilling (uncovered transport, load-loss trips)
// in a time window, for street-cleaning and enforcement crews. Enforcement tokens see their
// jurisdictions' cells.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { SpillageStore } from '../../rules/spillage.ts';
import { DAY } from '../../contract/local-time.ts';
import { READ_WITH_ENFORCEMENT, jurisdictionScope } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { instant } from './time.ts';

const hotspot = z.object({
  cell: z.string(),
  location: z.object({ type: z.literal('Point'), coordinates: z.tuple([z.number(), z.number()]) }),
  jurisdiction: z.string().nullable(),
  uncovered_m: z.number(),
  trucks: z.number().int(),
  load_loss_trips: z.number().int(),
  last_at: z.string(),
});

export const spillageRoutes: FastifyPluginAsyncZod<{ spillage: SpillageStore }> = async (app, { spillage }) => {
  app.get('/spillage/hotspots', {
    config: { roles: READ_WITH_ENFORCEMENT },
    schema: {
      tags: ['alerts'],
      querystring: z.object({
        from: instant.optional().describe('Default: 7 days before `to`'),
        to: instant.optional().describe('Default: now'),
        kind: z.enum(['uncovered', 'load_loss']).optional(),
        jurisdiction: z.string().optional(),
        limit: z.coerce.number().int().min(1).max(500).default(50),
      }),
      response: { 200: z.object({ items: z.array(hotspot) }) },
    },
  }, async (request) => {
    const q = request.query;
    const to = q.to ? Date.parse(q.to) : Date.now();
    const from = q.from ? Date.parse(q.from) : to - 7 * DAY;
    if (from > to) throw new ApiError(400, 'invalid_request', 'from must not be after to', ['querystring', 'from']);
    return { items: spillage.hotspots({ from, to, kind: q.kind, jurisdictions: jurisdictionScope(request.identity, q.jurisdiction), limit: q.limit }) };
  });
};
