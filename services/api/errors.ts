// Every API error is JSON: {"error": {"code", "message", "path"?}}, with the HTTP status of its kind.
import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { WebhookTargetError } from '../alerts/webhooks.ts';
import { BundleError } from '../registry/bundle.ts';
import { DatabaseUnreachableError, DatabaseValueError } from '../registry/db.ts';
import { RegistryError } from '../registry/devices.ts';
import { GeometryError } from '../registry/geometry.ts';

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly path?: (string | number)[],
  ) {
    super(message);
  }
}

export interface ErrorBody {
  error: { code: string; message: string; path?: (string | number)[]; problems?: { path: (string | number)[]; message: string }[] };
}

const REGISTRY_STATUS = { not_found: 404, conflict: 409, invalid: 400 } as const;

export function registerErrorHandler(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ error: { code: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` } } satisfies ErrorBody);
  });
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const send = (status: number, body: ErrorBody['error']) => reply.code(status).send({ error: body } satisfies ErrorBody);
    if (hasZodFastifySchemaValidationErrors(error)) {
      const first = error.validation[0]!;
      const where = error.validationContext ?? 'body';
      const path = [where, ...first.instancePath.split('/').filter(Boolean)];
      return send(400, { code: 'invalid_request', message: `${path.join('.')}: ${first.message}`, path });
    }
    if (error instanceof ApiError) return send(error.statusCode, { code: error.code, message: error.message, ...(error.path ? { path: error.path } : {}) });
    if (error instanceof RegistryError) return send(REGISTRY_STATUS[error.code], { code: error.code, message: error.message });
    if (error instanceof BundleError) return send(400, { code: 'invalid_bundle', message: error.message, problems: error.problems });
    if (error instanceof WebhookTargetError) return send(400, { code: 'target_refused', message: error.message, path: ['body', 'url'] });
    if (error instanceof GeometryError) return send(400, { code: 'invalid_geometry', message: error.message, path: ['body', ...error.path] });
    if (error.statusCode === 429) return send(429, { code: 'rate_limited', message: error.message });
    if (error instanceof DatabaseValueError) return send(400, { code: 'invalid_request', message: 'a value holds a character that cannot be stored (NUL)' });
    if (error instanceof DatabaseUnreachableError) {
      request.log.error({ err: error }, 'request failed: the registry database is unreachable');
      void reply.header('retry-after', '5');
      return send(503, { code: 'database_unavailable', message: 'the registry database does not answer; retry shortly (the service log says where it is)' });
    }
    if (error.statusCode && error.statusCode < 500) return send(error.statusCode, { code: error.code?.toLowerCase() ?? 'bad_request', message: error.message });
    request.log.error({ err: error }, 'request failed');
    return send(500, { code: 'internal', message: 'internal error; see the service log' });
  });
}
