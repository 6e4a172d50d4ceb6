// POST /api/v1/import: a registry bundle (docs/registry-bundle.md), all or nothing; ?dry_run=true
// checks it without writing. Bounded: the body is read up to registry.importMaxBytes and refused
// with 413 past it (before more is read); one import runs at a time; the bundle is parsed,
// checked and written on a worker thread (registry/bundle-thread.ts), so the event loop only
// receives the bytes and sends the report.
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { validatorCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { importBundle, SPLIT_ADVICE, type ImportReport } from '../../registry/bundle.ts';
import { importOffThread, InvalidJsonError } from '../../registry/bundle-thread.ts';
import type { RegistryDb } from '../../registry/db.ts';
import type { DeviceStore } from '../../registry/devices.ts';
import type { EntityStore } from '../../registry/entity-store.ts';
import { WRITE_REGISTRY } from '../auth.ts';
import { ApiError } from '../errors.ts';

const outcome = z.object({ created: z.number(), updated: z.number(), unchanged: z.number() });

/** For the documentation only: the body is parsed and checked on the worker thread. */
const bundleBody = z.object({ format: z.literal('waste-registry-bundle'), version: z.literal(1) }).passthrough();

/** " (64 MiB)" after a limit in bytes, when it is a MiB or more. */
const inMib = (bytes: number) => (bytes >= 2 ** 20 ? ` (${Math.round((bytes / 2 ** 20) * 10) / 10} MiB)` : '');

export const importRoutes: FastifyPluginAsyncZod<{ db: RegistryDb; devices: DeviceStore; entities: EntityStore; registryChanged?: () => Promise<void> }> = async (app, deps) => {
  const { limits } = deps.entities;
  const tooLarge = () =>
    new ApiError(413, 'bundle_too_large', `the bundle is larger than ${limits.importMaxBytes} bytes${inMib(limits.importMaxBytes)}, the most one import takes (registry.importMaxBytes); ${SPLIT_ADVICE}`);

  // One import at a time: each holds its body and a worker's heap, and all of them write to the
  // same tables. Taken before the body is read, so a second upload is refused before it is read.
  let holder: FastifyRequest | null = null;
  const release = (request: FastifyRequest) => {
    if (holder === request) holder = null;
  };
  app.addHook('onResponse', async (request) => release(request));

  // Within this plugin only (fastify encapsulation): the body is kept as bytes for the worker,
  // read up to the limit and no further.
  // Every other type is refused (415): fastify's text parser would hand the route a string, of
  // which a Uint8Array of that many zero bytes was made, outside the size cap and the lock.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', async (request: FastifyRequest, payload: NodeJS.ReadableStream) => {
    const declared = Number(request.headers['content-length']);
    if (declared > limits.importMaxBytes) throw tooLarge();
    if (holder !== null) throw new ApiError(409, 'import_in_progress', 'another import is running; send this one when it has finished');
    holder = request;
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of payload as AsyncIterable<Buffer>) {
        size += chunk.length;
        // Stop reading: the rest of an oversized body is never buffered (the connection is
        // closed after the answer, as fastify does past its own body limit).
        if (size > limits.importMaxBytes) throw tooLarge();
        chunks.push(chunk);
      }
    } catch (error) {
      release(request);
      throw error;
    }
    // A buffer of its own (not a slice of Node's pool), so it can be transferred to the worker.
    const body = Buffer.allocUnsafeSlow(size);
    let offset = 0;
    for (const chunk of chunks) offset += chunk.copy(body, offset);
    return body;
  });

  app.post(
    '/import',
    {
      config: { roles: WRITE_REGISTRY },
      // The body is a Buffer here: its schema documents it, the worker checks it. fastify calls
      // this once per part with that part's schema, which its types give as the route's.
      validatorCompiler: (route) =>
        route.httpPart === 'body' ? (data: unknown) => ({ value: data }) : validatorCompiler(route as unknown as Parameters<typeof validatorCompiler>[0]),
      schema: {
        tags: ['import'],
        description:
          `Imports a registry bundle. Nothing is written unless every item is valid; problems are listed with their paths (the first ${limits.importMaxProblems}, ` +
          `with the count of all). At most ${limits.importMaxBytes} bytes and ${limits.importMaxItems} items (413 past either); one import at a time (409 while one runs).`,
        querystring: z.object({ dry_run: z.enum(['true', 'false']).default('false') }),
        body: bundleBody,
        response: {
          200: z.object({
            dryRun: z.boolean(),
            counts: z.record(z.string(), outcome),
            deviceSecrets: z.array(z.object({ id: z.string(), secret: z.string() })).describe('Secrets of devices this import created; shown once'),
          }),
        },
      },
    },
    async (request, reply) => {
      const body = request.body as unknown;
      if (!Buffer.isBuffer(body)) {
        release(request);
        throw new ApiError(415, 'unsupported_media_type', 'send the bundle as a body with content-type: application/json');
      }
      const dryRun = request.query.dry_run === 'true';
      try {
        if (deps.db.location === ':memory:') {
          // An in-memory registry exists on this connection only; no worker can open it.
          let input: unknown;
          try {
            input = JSON.parse(body.toString('utf8'));
          } catch (error) {
            throw new InvalidJsonError(`the body is not JSON: ${(error as Error).message.slice(0, 200)}`);
          }
          const report: ImportReport = await importBundle(deps, input, { dryRun });
          return report;
        }
        const { json, devicesCreated } = await importOffThread({ location: deps.db.location, body, dryRun, limits });
        if (devicesCreated > 0 && !dryRun) deps.devices.announceChange();
        // Written whatever happens next: a view that cannot be brought up to date now is at the next poll.
        if (!dryRun) await deps.registryChanged?.().catch((error: Error) => request.log.warn({ error: error.message }, 'the registry view did not take the import in at once; it does at its next look'));
        // Serialised by the worker; fastify sends a string with a JSON content type as it is,
        // which the typed reply cannot express.
        return reply.type('application/json; charset=utf-8').send(json as unknown as ImportReport);
      } finally {
        release(request);
      }
    },
  );
};
