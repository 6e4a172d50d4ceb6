// The HTTP API (fastify): buildApp(deps) returns the app; whoever owns the process calls listen.
// Tests use app.inject(). Routes live under /api/v1; OpenAPI is served at /docs (UI) and
// /docs/json; /health answers without a token, /metrics (Prometheus) with an admin or operator token
// unless metrics.public.
//
// No client may hold the process: a request must arrive whole within api.requestTimeoutMs, a silent
// connection closes after api.connectionTimeoutMs, and close() (the service's stop) ends the event
// streams, closes idle connections at once and destroys whatever is still open after
// api.stopGraceMs: a client that stops reading its answer, or sends its body a byte at a time, is
// cut off rather than waited for.
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { AlertService } from '../alerts/alert-service.ts';
import type { TextDownlink } from '../contract/downlink.ts';
import { apiSchema, type ApiConfig } from '../config/schema.ts';
import type { TelemetryReader } from '../influx/reader.ts';
import type { RegistryDb } from '../registry/db.ts';
import type { DeviceStore } from '../registry/devices.ts';
import type { EntityStore } from '../registry/entity-store.ts';
import type { TokenStore } from '../registry/tokens.ts';
import type { SpillageStore } from '../rules/spillage.ts';
import type { SortingService } from '../sorting/sorting-service.ts';
import { FailedAuthentications, SharedFailedAuthentications, authPlugin } from './auth.ts';
import { registerErrorHandler } from './errors.ts';
import { SharedRateLimitStore, SharedWindows } from './shared-limits.ts';
import { alertRoutes } from './routes/alerts.ts';
import { deviceRoutes } from './routes/devices.ts';
import { downlinkRoutes } from './routes/downlink.ts';
import { entityRoutes } from './routes/entities.ts';
import { importRoutes } from './routes/import.ts';
import { telemetryRoutes } from './routes/telemetry.ts';
import { spillageRoutes } from './routes/spillage.ts';
import { sortingRoutes } from './routes/sorting.ts';
import { binRoutes, type ForecastOf } from './routes/bins.ts';
import { tokenRoutes } from './routes/tokens.ts';
import { brokerAuthRoutes, type BrokerAuthOptions } from './routes/broker-auth.ts';
import { webhookRoutes } from './routes/webhooks.ts';

export interface ApiDeps {
  db: RegistryDb;
  devices: DeviceStore;
  entities: EntityStore;
  tokens: TokenStore;
  /** Current state and history from InfluxDB. */
  reader: TelemetryReader;
  alerts: AlertService;
  spillage: SpillageStore;
  sorting: SortingService;
  forecastOf: ForecastOf;
  /**
   * Called after an import changed the registry, before the answer: the process's view of the
   * registry (the rules' city index) takes it in, so that readings sent right after the answer
   * are judged against it.
   */
  registryChanged?: () => Promise<void>;
  /** Text messages to trucks' terminals; null (the default) when the JT/T 808 gateway is disabled. */
  downlink?: TextDownlink | null;
  /** Prometheus metrics at /metrics; public, or for admin and operator tokens. */
  metrics?: { public: boolean; source: { contentType: string; text(): Promise<string> } };
  /** RabbitMQ's HTTP authentication backend at /broker/rabbitmq (rabbitmq.authBackend); not served when absent. */
  brokerAuth?: BrokerAuthOptions | null;
  /** Requests per minute per token (per address without one). */
  rateLimitPerMinute: number;
  /** Timeouts, body limit, failed-authentication limit and stop grace (api.*); the schema's defaults when not given. */
  limits?: Partial<Omit<ApiConfig, 'host' | 'port' | 'rateLimitPerMinute'>>;
  logger?: FastifyBaseLogger;
}

/** How often Node checks each connection against the request and header timeouts (its default, 30 s, would let them overrun by as much). */
const TIMEOUT_CHECK_MS = 1000;

export async function buildApp(deps: ApiDeps) {
  const limits = { ...apiSchema.parse({}), ...deps.limits };
  const app = Fastify({
    loggerInstance: deps.logger,
    // Per-request info lines would drown the telemetry log; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.connectionTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    bodyLimit: limits.bodyLimitBytes,
    http: { headersTimeout: Math.min(60_000, limits.requestTimeoutMs), connectionsCheckingInterval: TIMEOUT_CHECK_MS },
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandler(app);

  // close() runs this before it stops listening; fastify then closes the idle keep-alive
  // connections and waits for the rest, which is what the grace bounds. The event streams end in
  // their own preClose hook (routes/alerts.ts).
  app.addHook('preClose', (done) => {
    if (app.server.listening) {
      const force = setTimeout(() => app.server.closeAllConnections(), limits.stopGraceMs);
      force.unref();
      app.server.once('close', () => clearTimeout(force));
    }
    done();
  });
  // A webhook may not call this API (alerts/webhooks.ts): its port is known once it listens.
  app.addHook('onListen', (done) => {
    const address = app.server.address() as AddressInfo | null;
    if (address) deps.alerts.deliverer.targets.reserve(address.port, 'the HTTP API of this service');
    done();
  });

  await app.register(swagger, {
    openapi: {
      info: { title: 'waste-telemetry API', version: '1', description: 'Registry, provisioning, access control, telemetry, alerts, spillage routes, bin forecasts and sorting figures. Errors are {"error": {"code", "message", "path"}}.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  // Several API processes on PostgreSQL count every client's requests together (shared-limits.ts).
  const shared = deps.db.dialect === 'postgres' ? new SharedWindows(deps.db) : null;
  const failures = shared ? new SharedFailedAuthentications(limits.authFailuresPerMinute, shared) : new FailedAuthentications(limits.authFailuresPerMinute);
  await app.register(authPlugin, { tokens: deps.tokens, failures });
  await app.register(rateLimit, {
    ...(shared ? { store: SharedRateLimitStore.over(shared) } : {}),
    // After authentication, so the limit is per token.
    hook: 'preHandler',
    max: deps.rateLimitPerMinute,
    timeWindow: 60_000,
    keyGenerator: (request) => request.identity?.id ?? request.ip,
    errorResponseBuilder: (_request, context) => Object.assign(new Error(`rate limit of ${context.max} requests per minute reached; retry in ${context.after}`), { statusCode: 429 }),
  });

  app.get('/health', { schema: { hide: true } }, async () => ({ ok: true }));
  const metrics = deps.metrics;
  if (metrics) {
    app.get('/metrics', { schema: { hide: true }, config: metrics.public ? {} : { roles: ['admin', 'operator'] } }, async (_request, reply) =>
      reply.type(metrics.source.contentType).send(await metrics.source.text()),
    );
  }
  await app.register(
    async (v1) => {
      await v1.register(deviceRoutes, { devices: deps.devices });
      await v1.register(downlinkRoutes, { downlink: deps.downlink ?? null });
      await v1.register(entityRoutes, { entities: deps.entities });
      await v1.register(importRoutes, { db: deps.db, devices: deps.devices, entities: deps.entities, registryChanged: deps.registryChanged });
      await v1.register(telemetryRoutes, { reader: deps.reader, entities: deps.entities });
      await v1.register(tokenRoutes, { tokens: deps.tokens });
      await v1.register(alertRoutes, { alerts: deps.alerts });
      await v1.register(webhookRoutes, { webhooks: deps.alerts.webhooks, targets: deps.alerts.deliverer.targets });
      await v1.register(spillageRoutes, { spillage: deps.spillage });
      await v1.register(sortingRoutes, { sorting: deps.sorting, db: deps.db, entities: deps.entities });
      await v1.register(binRoutes, { entities: deps.entities, forecastOf: deps.forecastOf });
    },
    { prefix: '/api/v1' },
  );
  if (deps.brokerAuth) await app.register(brokerAuthRoutes, { ...deps.brokerAuth, prefix: '/broker/rabbitmq' });
  return app;
}
