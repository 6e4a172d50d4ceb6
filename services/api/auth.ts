// Bearer-token authentication and role checks. Every /api/v1 route states the roles it admits in
// its config (`config: { roles: [...] }`); no token or an unknown one is a 401, a role the route
// does not admit is a 403.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Role, TokenIdentity, TokenStore } from '../registry/tokens.ts';
import { ApiError } from './errors.ts';

declare module 'fastify' {
  interface FastifyRequest {
    identity: TokenIdentity | null;
  }
  interface FastifyContextConfig {
    /** Roles admitted to the route; a route without it is public (health, docs). */
    roles?: readonly Role[];
  }
}

export const READ_ALL: readonly Role[] = ['admin', 'operator', 'integrator'];
export const WRITE_REGISTRY: readonly Role[] = ['admin', 'integrator'];
export const ADMIN: readonly Role[] = ['admin'];
/** Readers, and enforcement officers limited to their jurisdictions by the route. */
export const READ_WITH_ENFORCEMENT: readonly Role[] = [...READ_ALL, 'enforcement'];

/**
 * The jurisdictions a request may see: all (undefined), or an enforcement token's own; narrowed
 * to ?jurisdiction when given (none when that is not one of its own).
 */
export function jurisdictionScope(identity: TokenIdentity | null, requested: string | undefined): string[] | undefined {
  const own = identity?.role === 'enforcement' ? identity.jurisdictions : undefined;
  if (requested === undefined) return own;
  return own === undefined || own.includes(requested) ? [requested] : [];
}

function bearer(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (!header) return null;
  const [scheme, token] = header.split(' ');
  return scheme?.toLowerCase() === 'bearer' && token ? token : null;
}

export const authPlugin = fp<{ tokens: TokenStore }>(async (app: FastifyInstance, { tokens }) => {
  app.decorateRequest('identity', null);
  app.addHook('onRequest', async (request) => {
    const roles = request.routeOptions.config.roles;
    if (!roles) return;
    const token = bearer(request);
    if (!token) throw new ApiError(401, 'unauthenticated', 'an Authorization: Bearer <token> header is required');
    const identity = tokens.authenticate(token);
    if (!identity) throw new ApiError(401, 'unauthenticated', 'the token is unknown or revoked');
    request.identity = identity;
    if (!roles.includes(identity.role)) throw new ApiError(403, 'forbidden', `role ${identity.role} may not ${request.method} ${request.routeOptions.url}`);
  });
});
