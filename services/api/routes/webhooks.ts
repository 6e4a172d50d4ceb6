// /api/v1/webhooks: HTTP receivers of a jurisdiction's alerts, for admins. The signing secret is
// returned once, at creation (docs/alerts.md shows how to check a signature). A URL whose host is
// not public (loopback, private, link-local...) or is this service is refused with a 400 saying
// why, unless alerts.webhookAllowTargets allows it (alerts/webhooks.ts).
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { WebhookStore, WebhookTargets } from '../../alerts/webhooks.ts';
import { entityId } from '../../registry/entities.ts';
import { ADMIN } from '../auth.ts';

const webhook = z.object({
  id: z.string(),
  jurisdiction_id: z.string(),
  url: z.string(),
  enabled: z.boolean(),
  created_at: z.string(),
  pending: z.number().int(),
  last_error: z.string().nullable().describe('Why the latest message not delivered did not go through, if it did not'),
});

export const webhookRoutes: FastifyPluginAsyncZod<{ webhooks: WebhookStore; targets: WebhookTargets }> = async (app, { webhooks, targets }) => {
  app.get('/webhooks', { config: { roles: ADMIN }, schema: { tags: ['alerts'], response: { 200: z.object({ items: z.array(webhook) }) } } }, async () => ({ items: webhooks.list() }));

  app.post('/webhooks', {
    config: { roles: ADMIN },
    schema: {
      tags: ['alerts'],
      body: z.object({ jurisdiction_id: entityId, url: z.url(), secret: z.string().min(16).max(200).optional().describe('Default: 32 random bytes') }),
      response: { 201: webhook.extend({ secret: z.string().describe('Shown once.') }) },
    },
  }, async (request, reply) => reply.code(201).send(await webhooks.create(request.body, targets)));

  app.delete('/webhooks/:id', { config: { roles: ADMIN }, schema: { tags: ['alerts'], params: z.object({ id: z.string() }) } }, async (request, reply) => {
    webhooks.remove(request.params.id);
    return reply.code(204).send();
  });
};
