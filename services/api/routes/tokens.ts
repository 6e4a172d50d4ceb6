// /api/v1/tokens: API tokens, for admins. The token itself is returned once, at creation.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ROLES, type TokenStore } from '../../registry/tokens.ts';
import { ADMIN } from '../auth.ts';

const token = z.object({
  id: z.string(),
  name: z.string(),
  role: z.enum(ROLES),
  jurisdictions: z.array(z.string()),
  created_at: z.string(),
  revoked_at: z.string().nullable(),
});

export const tokenRoutes: FastifyPluginAsyncZod<{ tokens: TokenStore }> = async (app, { tokens }) => {
  app.get('/tokens', { config: { roles: ADMIN }, schema: { tags: ['tokens'], response: { 200: z.object({ items: z.array(token) }) } } }, async () => ({ items: tokens.list() }));

  app.post('/tokens', {
    config: { roles: ADMIN },
    schema: {
      tags: ['tokens'],
      body: z.object({ name: z.string().min(1).max(200), role: z.enum(ROLES), jurisdictions: z.array(z.string().min(1)).optional() }),
      response: { 201: z.object({ id: z.string(), token: z.string().describe('Shown once; only a hash is stored.') }) },
    },
  }, async (request, reply) => reply.code(201).send(tokens.create(request.body)));

  app.delete('/tokens/:id', { config: { roles: ADMIN }, schema: { tags: ['tokens'], params: z.object({ id: z.string() }) } }, async (request, reply) => {
    tokens.revoke(request.params.id);
    return reply.code(204).send();
  });
};
