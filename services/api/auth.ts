// Bearer-token authentication and role checks. Every /api/v1 route states the roles it admits in
// its config (`config: { roles: [...] }`); no token or an unknown one is a 401, a role the route
// does not admit is a 403.
//
// Guessing tokens is limited per client address: after api.authFailuresPerMinute requests with a
// token that does not authenticate, that address is answered 429 with Retry-After, without the
// token being looked at, until its minute is over. It is answered so whatever token it sends (a
// correct guess must not show as anything but 429), while other addresses, and the valid tokens
// they send, are not affected: an attacker can lock out only itself and whoever shares its address.
import net from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Role, TokenIdentity, TokenStore } from '../registry/tokens.ts';
import { ApiError } from './errors.ts';
import type { SharedWindows } from './shared-limits.ts';

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

/**
 * The client address failures are counted against: an IPv4 address (also when it comes as
 * ::ffff:a.b.c.d), or the /64 of an IPv6 one, since a single IPv6 client usually holds a whole /64
 * and could otherwise take a fresh address for every guess.
 */
export function clientKey(ip: string): string {
  if (!net.isIPv6(ip)) return ip;
  const canonical = new URL(`http://[${ip.replace(/%.*$/, '')}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (mapped) {
    const [high, low] = [parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)];
    return [high >> 8, high & 255, low >> 8, low & 255].join('.');
  }
  const [head = '', tail] = canonical.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  return `${groups.slice(0, 4).join(':')}::/64`;
}

/** Addresses tracked at most; past it the oldest windows are forgotten first (memory stays bounded whatever the number of addresses). */
const MAX_TRACKED = 100_000;
const WINDOW_MS = 60_000;

/** Failed authentications per client address, in fixed one-minute windows. */
export interface AuthFailures {
  readonly max: number;
  /** Milliseconds until the address may try again; 0 when it may now. */
  wait(key: string): number;
  fail(key: string): void;
}

/** Counted in this process's memory: the API of one process. */
export class FailedAuthentications implements AuthFailures {
  /** In order of window start, so the oldest (and expired) come first. */
  private readonly windows = new Map<string, { count: number; until: number }>();

  constructor(
    readonly max: number,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Milliseconds until the address may try again; 0 when it may now. */
  wait(key: string): number {
    const window = this.windows.get(key);
    if (!window) return 0;
    const left = window.until - this.clock();
    if (left <= 0) {
      this.windows.delete(key);
      return 0;
    }
    return window.count >= this.max ? left : 0;
  }

  fail(key: string): void {
    const now = this.clock();
    let window = this.windows.get(key);
    if (!window || window.until <= now) {
      this.windows.delete(key);
      window = { count: 0, until: now + WINDOW_MS };
      this.windows.set(key, window);
      this.sweep(now);
    }
    window.count++;
  }

  private sweep(now: number): void {
    for (const [key, window] of this.windows) {
      if (window.until > now && this.windows.size <= MAX_TRACKED) break;
      this.windows.delete(key);
    }
  }
}

/** Counted in the registry database: every API process sees the failures sent to the others. */
export class SharedFailedAuthentications implements AuthFailures {
  constructor(
    readonly max: number,
    private readonly windows: SharedWindows,
  ) {}

  wait(key: string): number {
    const { count, until } = this.windows.peek(`auth:${key}`, WINDOW_MS);
    return count >= this.max ? Math.max(1, until - Date.now()) : 0;
  }

  fail(key: string): void {
    this.windows.hit(`auth:${key}`, WINDOW_MS);
  }
}

export const authPlugin = fp<{ tokens: TokenStore; failures: AuthFailures }>(async (app: FastifyInstance, { tokens, failures }) => {
  app.decorateRequest('identity', null);
  app.addHook('onRequest', async (request, reply) => {
    const roles = request.routeOptions.config.roles;
    if (!roles) return;
    // A request without credentials guesses nothing; only a presented token that fails counts.
    if (!request.headers.authorization) throw new ApiError(401, 'unauthenticated', 'an Authorization: Bearer <token> header is required');
    const token = bearer(request);
    const identity = token ? tokens.authenticate(token) : null;
    if (!identity) {
      // A valid token always gets through: one address is often many clients (a NAT, a proxy),
      // and a token of 256 random bits is not guessed. What the limit stops is an address turning
      // the API into a token-checking service: past it, its failures get 429 instead of 401.
      const client = clientKey(request.ip);
      const wait = failures.wait(client);
      if (wait > 0) {
        const seconds = Math.ceil(wait / 1000);
        void reply.header('retry-after', String(seconds));
        throw new ApiError(429, 'rate_limited', `more than ${failures.max} requests with unknown or revoked tokens from ${client} within a minute; retry in ${seconds} s with a valid token`);
      }
      failures.fail(client);
      throw new ApiError(401, 'unauthenticated', token ? 'the token is unknown or revoked' : 'an Authorization: Bearer <token> header is required');
    }
    request.identity = identity;
    if (!roles.includes(identity.role)) throw new ApiError(403, 'forbidden', `role ${identity.role} may not ${request.method} ${request.routeOptions.url}`);
  });
});
