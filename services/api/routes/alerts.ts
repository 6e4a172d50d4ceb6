// /api/v1/alerts: list and filter, one alert with its evidence and history, acknowledge, resolve,
// and a server-sent-events stream of changes. An enforcement token sees and handles only alerts
// that touch its jurisdictions.
//   GET  /alerts?type&status&jurisdiction&subject&from&to&limit&offset
//   GET  /alerts/stream?type&jurisdiction       text/event-stream, one `alert` event per change
//   GET  /alerts/{id}
//   POST /alerts/{id}/acknowledge
//   POST /alerts/{id}/resolve  {"note"?}
import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { UNSTORABLE } from '../../contract/payloads.ts';
import { ALERT_TYPES } from '../../contract/alerts.ts';
import type { AlertService } from '../../alerts/alert-service.ts';
import type { AlertView } from '../../alerts/alert-store.ts';
import type { TokenIdentity } from '../../registry/tokens.ts';
import { READ_WITH_ENFORCEMENT, jurisdictionScope } from '../auth.ts';
import { ApiError } from '../errors.ts';
import { page, pageQuery } from './pagination.ts';
import { instant } from './time.ts';

/**
 * An officer's note on a resolved case: lines of text (tabs and line breaks kept); other control
 * characters and unpaired surrogates are refused, as in every text the registry stores (a NUL
 * cannot be stored in PostgreSQL at all).
 */
const resolutionNote = z
  .string()
  .max(2000)
  .refine((note) => !UNSTORABLE.test(note.replace(/[\t\r\n]/g, ' ')), { error: 'must not contain control characters (other than tabs and line breaks) or unpaired surrogates' });

const HANDLERS = ['admin', 'operator', 'enforcement'] as const;
/** SSE comment sent this often so proxies keep an idle stream open. */
const HEARTBEAT_MS = 15_000;

const list = (values: readonly string[]) =>
  z
    .string()
    .transform((s) => s.split(',').map((v) => v.trim()).filter(Boolean))
    .pipe(z.array(z.enum(values as [string, ...string[]])));

const filters = z.object({
  type: list(ALERT_TYPES).optional().describe('Comma-separated alert types'),
  status: list(['open', 'acknowledged', 'resolved']).optional().describe('Comma-separated statuses'),
  jurisdiction: z.string().optional(),
  subject: z.string().optional().describe('Truck or bin id, device id or plate'),
  from: instant.optional().describe('Alerts going on at or after this instant'),
  to: instant.optional().describe('Alerts started at or before this instant'),
});

const alertView = z.object({
  id: z.string(),
  type: z.string(),
  severity: z.string(),
  status: z.string(),
  subject: z.object({ kind: z.string(), id: z.string(), device_id: z.string().optional(), plate: z.string().optional() }),
  jurisdictions: z.array(z.string()),
  location: z.object({ type: z.literal('Point'), coordinates: z.tuple([z.number(), z.number()]) }).nullable(),
  started_at: z.string(),
  ended_at: z.string().nullable(),
  raised_at: z.string(),
  updated_at: z.string(),
  version: z.number(),
  permit: z.object({ id: z.string(), number: z.string().nullable() }).nullable(),
  detail: z.record(z.string(), z.unknown()),
  acknowledged: z.object({ by: z.string(), at: z.string() }).nullable(),
  resolved: z.object({ by: z.string(), at: z.string(), note: z.string().nullable() }).nullable(),
});
const withEvidence = alertView.extend({
  evidence: z.array(z.record(z.string(), z.unknown())),
  history: z.array(z.object({ version: z.number(), at: z.string(), change: z.string(), status: z.string(), by: z.string().nullable(), note: z.string().nullable() })),
});

function visible(identity: TokenIdentity | null, alert: AlertView): boolean {
  return identity?.role !== 'enforcement' || alert.jurisdictions.some((j) => identity.jurisdictions.includes(j));
}

function summary(alert: AlertView): Omit<AlertView, 'evidence'> {
  const { evidence: _evidence, ...rest } = alert;
  return rest;
}

export const alertRoutes: FastifyPluginAsyncZod<{ alerts: AlertService }> = async (app, { alerts }) => {
  /** Open event streams: they never finish on their own, so stopping the API ends them. */
  const streams = new Set<ServerResponse>();
  app.addHook('preClose', (done) => {
    for (const stream of streams) stream.end(': the service is stopping; reconnect in a moment\n\n');
    done();
  });

  app.get('/alerts', {
    config: { roles: READ_WITH_ENFORCEMENT },
    schema: { tags: ['alerts'], querystring: filters.extend(pageQuery.shape), response: { 200: page(alertView) } },
  }, async (request) => {
    const q = request.query;
    const { items, total } = alerts.store.list({
      types: q.type,
      statuses: q.status,
      jurisdictions: jurisdictionScope(request.identity, q.jurisdiction),
      subject: q.subject,
      from: q.from ? Date.parse(q.from) : undefined,
      to: q.to ? Date.parse(q.to) : undefined,
      limit: q.limit,
      offset: q.offset,
    });
    return { items: items.map(summary), total, limit: q.limit, offset: q.offset };
  });

  app.get('/alerts/stream', {
    config: { roles: READ_WITH_ENFORCEMENT },
    schema: { tags: ['alerts'], querystring: filters.pick({ type: true, jurisdiction: true }), description: 'Server-sent events: `event: alert`, `id: <alert id>:<version>`, data the alert.' },
  }, async (request, reply) => {
    const jurisdictions = jurisdictionScope(request.identity, request.query.jurisdiction);
    const types = request.query.type;
    reply.hijack();
    const raw = reply.raw;
    // Connection: close, so that ending the stream (at stop) closes its socket instead of leaving
    // a kept-alive connection for the server to wait on.
    raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'close', 'x-accel-buffering': 'no' });
    raw.write(': connected\n\n');
    const unsubscribe = alerts.subscribe(({ alert, change }) => {
      if (types && !types.includes(alert.type)) return;
      if (jurisdictions && !alert.jurisdictions.some((j) => jurisdictions.includes(j))) return;
      raw.write(`event: alert\nid: ${alert.id}:${alert.version}\ndata: ${JSON.stringify({ change, alert: summary(alert) })}\n\n`);
    });
    const heartbeat = setInterval(() => raw.write(': heartbeat\n\n'), HEARTBEAT_MS);
    streams.add(raw);
    raw.on('close', () => {
      streams.delete(raw);
      clearInterval(heartbeat);
      unsubscribe();
    });
  });

  const findVisible = (id: string, identity: TokenIdentity | null): AlertView => {
    const alert = alerts.store.get(id);
    if (!alert || !visible(identity, alert)) throw new ApiError(404, 'not_found', `no alert ${id}`);
    return alert;
  };

  app.get('/alerts/:id', {
    config: { roles: READ_WITH_ENFORCEMENT },
    schema: { tags: ['alerts'], params: z.object({ id: z.string() }), response: { 200: withEvidence } },
  }, async (request) => ({ ...findVisible(request.params.id, request.identity), history: alerts.store.history(request.params.id) }));

  app.post('/alerts/:id/acknowledge', {
    config: { roles: HANDLERS },
    schema: { tags: ['alerts'], params: z.object({ id: z.string() }), response: { 200: alertView } },
  }, async (request) => {
    findVisible(request.params.id, request.identity);
    return summary(await alerts.acknowledge(request.params.id, request.identity!.name));
  });

  app.post('/alerts/:id/resolve', {
    config: { roles: HANDLERS },
    schema: { tags: ['alerts'], params: z.object({ id: z.string() }), body: z.object({ note: resolutionNote.optional() }).optional(), response: { 200: alertView } },
  }, async (request) => {
    findVisible(request.params.id, request.identity);
    return summary(await alerts.resolve(request.params.id, request.identity!.name, request.body?.note ?? null));
  });
};
