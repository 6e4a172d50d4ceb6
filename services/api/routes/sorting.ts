// Household waste sorting figures (services/sorting/), as JSON or, with ?format=csv, CSV:
//   GET  /sorting/rates?day&window&scope          separation rate and tonnage per scope
//   GET  /sorting/trends?month&scope&id           month-over-month and year-over-year, 三增一减
//   GET  /sorting/rankings?scope&from&to&by        districts or communities ranked
//   POST /sorting/recompute {"from", "to"?}        count past days again from the tickets
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { addDays, localDate, localDayStart } from '../../contract/local-time.ts';
import { ENTITIES, entityId } from '../../registry/entities.ts';
import type { EntityStore } from '../../registry/entity-store.ts';
import type { RegistryDb } from '../../registry/db.ts';
import { ranking, trend } from '../../sorting/reports.ts';
import { MAX_RECOMPUTE_DAYS, type SortingService } from '../../sorting/sorting-service.ts';
import { daysBetween } from '../../sorting/sorting-store.ts';
import { CITY } from '../../sorting/tonnage.ts';
import { toCsv } from '../csv.ts';
import { READ_ALL } from '../auth.ts';
import { day, month } from './time.ts';
import { ApiError } from '../errors.ts';

const format = z.enum(['json', 'csv']).default('json').describe('csv: a spreadsheet (UTF-8 with BOM)');

const RATE_COLUMNS = ['day', 'window', 'scope', 'scope_id', 'district_id', 'kitchen_kg', 'recyclable_kg', 'hazardous_kg', 'other_kg', 'rate', 'target', 'below_target', 'days_counted'];
const RANK_COLUMNS = ['rank', 'scope', 'scope_id', 'district_id', 'separation_rate', 'target', 'kitchen_kg', 'other_kg', 'overflow_hours', 'missed_collections'];

export const sortingRoutes: FastifyPluginAsyncZod<{ sorting: SortingService; db: RegistryDb; entities: EntityStore }> = async (app, { sorting, db, entities }) => {
  const yesterday = () => addDays(localDate(Date.now()), -1);

  app.get('/sorting/rates', {
    config: { roles: READ_ALL },
    schema: {
      tags: ['sorting'],
      querystring: z.object({
        day: day.optional().describe('Local date (China Standard Time); default yesterday'),
        window: z.enum(['day', '7d']).default('day').describe('The day, or the 7 days ending with it'),
        scope: z.enum(['community', 'district', 'city']).optional(),
        format,
      }),
    },
  }, async (request, reply) => {
    const q = request.query;
    const items = sorting.store.figures(q.day ?? yesterday(), q.window, q.scope);
    if (q.format === 'csv') return reply.type('text/csv; charset=utf-8').send(toCsv(RATE_COLUMNS, items as unknown as Record<string, unknown>[]));
    return { denominator: sorting.denominator, items };
  });

  app.get('/sorting/trends', {
    config: { roles: READ_ALL },
    schema: {
      tags: ['sorting'],
      querystring: z.object({
        month: month.optional().describe('Default: the current month'),
        scope: z.enum(['community', 'district', 'city']).default('city'),
        id: entityId.optional().describe('The community or district (not for the city)'),
        format,
      }),
    },
  }, async (request, reply) => {
    const q = request.query;
    if (q.scope !== 'city' && !q.id) throw new ApiError(400, 'invalid_request', `id is required for scope ${q.scope}`, ['querystring', 'id']);
    const result = trend(sorting.store, q.scope, q.scope === 'city' ? CITY : q.id!, q.month ?? localDate(Date.now()).slice(0, 7));
    if (q.format === 'csv') {
      const rows = (['kitchen', 'recyclable', 'hazardous', 'other'] as const).map((c) => ({
        category: c,
        [`${result.month.month}_kg`]: result.month.kg[c],
        [`${result.previous_month.month}_kg`]: result.previous_month.kg[c],
        [`${result.previous_year.month}_kg`]: result.previous_year.kg[c],
        month_over_month: result.month_over_month[c],
        year_over_year: result.year_over_year[c],
      }));
      return reply.type('text/csv; charset=utf-8').send(toCsv(Object.keys(rows[0]!), rows));
    }
    return result;
  });

  app.get('/sorting/rankings', {
    config: { roles: READ_ALL },
    schema: {
      tags: ['sorting'],
      querystring: z.object({
        scope: z.enum(['district', 'community']).default('district'),
        from: day.optional().describe('First local date; default 6 days before `to`'),
        to: day.optional().describe('Last local date; default yesterday'),
        by: z.enum(['separation_rate', 'overflow_hours', 'missed_collections']).default('separation_rate').describe('Highest rate first; fewest overflow hours or missed collections first'),
        format,
      }),
    },
  }, async (request, reply) => {
    const q = request.query;
    const to = q.to ?? yesterday();
    const from = q.from ?? addDays(to, -6);
    if (from > to) throw new ApiError(400, 'invalid_request', 'from must not be after to', ['querystring', 'from']);
    const def = q.scope === 'district' ? ENTITIES.districts : ENTITIES.communities;
    const scopeIds = entities.all(def).map((e) => e.id);
    const items = ranking(sorting.store, db, { scope: q.scope, from, to, by: q.by, fromMs: localDayStart(from), toMs: localDayStart(addDays(to, 1)), now: Date.now(), scopeIds });
    if (q.format === 'csv') return reply.type('text/csv; charset=utf-8').send(toCsv(RANK_COLUMNS, items as unknown as Record<string, unknown>[]));
    return { from, to, by: q.by, denominator: sorting.denominator, items };
  });

  app.post('/sorting/recompute', {
    config: { roles: ['admin', 'operator'] },
    schema: {
      tags: ['sorting'],
      body: z.object({ from: day, to: day.optional().describe('Default: from') }),
      response: { 200: z.object({ days: z.array(z.object({ day: z.string(), tickets: z.number().int() })) }) },
    },
  }, async (request) => {
    const { from } = request.body;
    const to = request.body.to ?? from;
    const days = daysBetween(from, to);
    if (days.length === 0) throw new ApiError(400, 'invalid_request', 'from must not be after to', ['body', 'from']);
    if (days.length > MAX_RECOMPUTE_DAYS) throw new ApiError(400, 'invalid_request', `at most ${MAX_RECOMPUTE_DAYS} days at once`, ['body', 'to']);
    if (to > localDate(Date.now())) throw new ApiError(400, 'invalid_request', 'to must not be in the future', ['body', 'to']);
    try {
      return { days: await sorting.computeDays(days) };
    } catch (error) {
      throw new ApiError(503, 'unavailable', `could not count the tickets: ${(error as Error).message}`);
    }
  });
};
