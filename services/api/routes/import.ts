// POST /api/v1/import: a registry bundle (docs/registry-bundle.md), all or nothing; ?dry_run=true
// checks it without writing.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { importBundle } from '../../registry/bundle.ts';
import type { RegistryDb } from '../../registry/db.ts';
import type { DeviceStore } from '../../registry/devices.ts';
import type { EntityStore } from '../../registry/entity-store.ts';
import { WRITE_REGISTRY } from '../auth.ts';

/** A city's whole registry in one request: tens of thousands of bins and trucks. */
const BUNDLE_LIMIT_BYTES = 64 * 1024 * 1024;

const outcome = z.object({ created: z.number(), updated: z.number(), unchanged: z.number() });

export const importRoutes: FastifyPluginAsyncZod<{ db: RegistryDb; devices: DeviceStore; entities: EntityStore }> = async (app, deps) => {
  app.post(
    '/import',
    {
      bodyLimit: BUNDLE_LIMIT_BYTES,
      config: { roles: WRITE_REGISTRY },
      schema: {
        tags: ['import'],
        description: 'Imports a registry bundle. Nothing is written unless every item is valid; every problem is listed with its path.',
        querystring: z.object({ dry_run: z.enum(['true', 'false']).default('false') }),
        body: z.object({ format: z.literal('waste-registry-bundle'), version: z.literal(1) }).passthrough(),
        response: {
          200: z.object({
            dryRun: z.boolean(),
            counts: z.record(z.string(), outcome),
            deviceSecrets: z.array(z.object({ id: z.string(), secret: z.string() })).describe('Secrets of devices this import created; shown once'),
          }),
        },
      },
    },
    async (request) => importBundle(deps, request.body, { dryRun: request.query.dry_run === 'true' }),
  );
};
