import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, LogController } from 'fastify';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { z } from 'zod';
import { apiPlugin } from './api/index.ts';
import { registerCis1Routes } from './cis1/routes.ts';
import { type Config, trustProxyOption } from './config.ts';
import { cardConfigFrom, recordDoorRefusal, relyingPartyFrom, type WebDeps } from './http/deps.ts';
import { errorBody, installErrorHandling } from './http/errors.ts';
import { feature } from './http/features.ts';
import { installInputGuard } from './http/input-guard.ts';
import { installMetrics } from './http/metrics.ts';
import { completeOpenApi, installAuthChallenges, security, securitySchemes } from './http/openapi.ts';
import { installOperationsMetrics } from './http/operations-metrics.ts';
import { installRouteValidation, openApiTransform } from './http/validation.ts';
import { installWeb } from './http/web.ts';
import { transportFromConfig } from './notifications/transports.ts';
import { mountOidc, type OidcHandle } from './oidc/mount.ts';
import { registerPkiRoutes } from './pki/routes.ts';
import { registerCardRenewalPages } from './portal/renew.ts';
import { registerPortalRoutes } from './portal/routes.ts';
import { registerRaConsole } from './ra/console/index.ts';
import type { Sealer } from './secrets/sealer.ts';
import { listCatalogue } from './services/catalogue.ts';
import type { Clock } from './services/context.ts';
import { isDemoInstallation } from './services/demo.ts';
import { createOutbox, type NotificationTransport, type OutboxSender } from './services/notifications.ts';
import { registerSignInRoutes } from './signin/routes.ts';
import { registerUpstreamRoutes } from './signin/upstream.ts';
import type { Database } from './storage/database.ts';
import { migrationStatus } from './storage/migrate.ts';
import { repositoriesOn } from './storage/repositories/index.ts';
import { VERSION } from './version.ts';

declare module 'fastify' {
  interface FastifyInstance {
    oidc: OidcHandle;
    /** Set on SIGTERM (main.ts): readiness answers 503 so the load balancer stops sending new requests. */
    draining: boolean;
    /** This node's notification outbox: queues messages, delivers the due ones (polling from start to close). */
    outbox: OutboxSender;
  }
}

export interface AppDeps {
  config: Config;
  db: Database;
  clock: Clock;
  sealer: Sealer;
  logger: Logger | false;
  /** What the outbox sends messages to people through; default: the one NOTIFICATIONS_TRANSPORT names. */
  transport?: NotificationTransport;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** Builds the Fastify app without listening: tests inject requests, main.ts listens. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger === false ? undefined : (deps.logger as FastifyBaseLogger),
    // A caller's x-request-id is kept when it is well formed, so one id follows a request across services.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    logController: new LogController({ requestIdLogLabel: 'requestId' }),
    bodyLimit: 1_048_576,
    // Behind a load balancer the client address comes from X-Forwarded-For (rate limits are per client IP).
    trustProxy: trustProxyOption(deps.config.TRUST_PROXY),
    connectionTimeout: 30_000,
    requestTimeout: 30_000,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 200 },
    // Fastify's own early errors (bad URL, content-type parser failures) get the catalogued shape too.
    frameworkErrors: (_err, _req, reply) => {
      (reply as FastifyReply).status(400).send(errorBody('request.invalid'));
    },
    // Errors before a request exists (malformed HTTP, oversized headers): answer in our shape and close.
    clientErrorHandler: (err, socket) => {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      const [status, body] =
        code === 'HPE_HEADER_OVERFLOW'
          ? [431, errorBody('request.header_too_large')]
          : code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? [408, errorBody('request.timeout')]
            : [400, errorBody('request.invalid')];
      const text = JSON.stringify(body);
      socket.end(
        `HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\n` +
          `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
      );
    },
  });

  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-frame-options', 'DENY');
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
  });

  installErrorHandling(app, { recordRefusal: recordDoorRefusal });
  installInputGuard(app);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'OpenCIS API',
        version: VERSION,
        description:
          'OpenCIS REST API. A call authenticates as RA staff signed in at AAL3 (the `opencis_session` cookie, and on ' +
          'changes the `csrf-token` header with its `opencis_csrf` cookie), or as an organisation’s API client with an ' +
          'access token from the client-credentials grant (scope `opencis.ra_api`). Every error answers ' +
          '`{ "error": { "code", "message", "details" } }` with a stable dotted code from the catalogue.',
      },
      servers: [{ url: deps.config.PUBLIC_URL }],
      components: {
        securitySchemes: securitySchemes(`${deps.config.PUBLIC_URL}${deps.config.OIDC_PATH}/access_token`),
      },
    },
    transform: openApiTransform,
    transformObject: (documentObject) => completeOpenApi((documentObject as { openapiObject: unknown }).openapiObject),
  });
  installAuthChallenges(app);
  // Route schemas are zod: Fastify validates each request against them, and OpenAPI is generated from them.
  installRouteValidation(app);

  const registry = installMetrics(app);
  const repos = repositoriesOn(deps.db);
  const outbox = createOutbox({
    db: deps.db,
    sealer: deps.sealer,
    transport: deps.transport ?? transportFromConfig(deps.config),
    clock: deps.clock,
    maxAttempts: deps.config.NOTIFICATIONS_MAX_ATTEMPTS,
    logger: deps.logger === false ? undefined : deps.logger,
  });
  app.decorate('outbox', outbox);
  installOperationsMetrics(registry, { repos, clock: deps.clock, config: deps.config, outbox });
  app.addHook('onReady', async () => outbox.start());
  // Registered before the routes' hooks: the outbox stops (its pass in flight finished) before the database closes.
  app.addHook('onClose', async () => outbox.stop());
  await installWeb(app, { publicUrl: deps.config.PUBLIC_URL, cardAgentUrl: deps.config.CARD_AGENT_URL });
  // Demo mode (DEMO_DATA on and the demo data seeded) trusts Chromium's virtual security key too: the demo's way in.
  const demo = deps.config.DEMO_DATA ? await isDemoInstallation(repos) : false;
  const web: WebDeps = {
    config: deps.config,
    db: deps.db,
    repos,
    clock: deps.clock,
    sealer: deps.sealer,
    rp: relyingPartyFrom(deps.config, { demo }),
    card: cardConfigFrom(deps.config),
    outbox,
  };
  // The features, each an encapsulated plugin (src/http/features.ts); OpenID Connect and PKI below are too.
  await app.register(
    feature('signin', (scope, d) => {
      registerSignInRoutes(scope, d);
      registerUpstreamRoutes(scope, d);
    }),
    { deps: web },
  );
  await app.register(
    feature('portal', (scope, d) => {
      registerPortalRoutes(scope, d);
      registerCardRenewalPages(scope, d);
    }),
    { deps: web },
  );
  await app.register(feature('cis1', registerCis1Routes), { deps: web });
  await app.register(feature('api', apiPlugin), { deps: web });
  await app.register(feature('ra', registerRaConsole), { deps: web });
  // While Redis is down a request must fail fast (503 with Retry-After), not wait: a command waits for at most two
  // reconnection attempts (≤ 0.5 s apart) and one that gets no answer gives up after 2 s; ioredis keeps reconnecting.
  const redis = deps.config.REDIS_URL
    ? new Redis(deps.config.REDIS_URL, {
        lazyConnect: false,
        maxRetriesPerRequest: 1,
        retryStrategy: (attempt) => Math.min(attempt * 100, 500),
        connectTimeout: 2_000,
        commandTimeout: 2_000,
      })
    : undefined;
  redis?.on('error', (err) => app.log.warn({ err: { message: err.message } }, 'redis error'));
  const oidc = await mountOidc(app, web, { mountPath: deps.config.OIDC_PATH, redis });
  app.decorate('oidc', oidc);
  app.addHook('onClose', async () => {
    oidc.close();
    await redis?.quit().catch(() => {});
  });
  await app.register(
    feature('pki', (scope, d) =>
      registerPkiRoutes(scope, { db: d.db, clock: d.clock, sealer: d.sealer, publicUrl: d.config.PUBLIC_URL }),
    ),
    { deps: web },
  );

  const health = async (_req: unknown, reply: FastifyReply) => {
    const started = performance.now();
    try {
      await repos.operations.ping();
      const migrations = await migrationStatus(deps.db);
      const ok = migrations.pending.length === 0;
      return reply.status(ok ? 200 : 503).send({
        status: ok ? 'ok' : 'degraded',
        version: VERSION,
        database: {
          kind: deps.db.kind,
          reachable: true,
          latencyMs: Math.round((performance.now() - started) * 10) / 10,
        },
        migrations: {
          applied: migrations.applied.length,
          pending: migrations.pending.length,
          latest: migrations.latest,
        },
      });
    } catch {
      return reply.status(503).send({
        status: 'unavailable',
        version: VERSION,
        database: { kind: deps.db.kind, reachable: false, latencyMs: null },
        migrations: null,
      });
    }
  };
  const healthSchema200 = {
    response: {
      200: z.toJSONSchema(healthSchema),
      503: z.toJSONSchema(healthSchema),
    },
  };
  app.get(
    '/health',
    {
      schema: { summary: 'Health: database reachable, version, migrations', tags: ['operations'], ...healthSchema200 },
    },
    health,
  );
  // Readiness (same checks): a load balancer sends traffic only to nodes that answer 200; a draining node answers 503
  // while it goes on serving the requests still sent to it, until the load balancer has noticed (main.ts).
  app.decorate('draining', false);
  app.get(
    '/health/ready',
    {
      schema: {
        summary: 'Readiness: database reachable and migrations applied, not draining',
        tags: ['operations'],
        ...healthSchema200,
      },
    },
    async (req, reply) => {
      if (!app.draining) return health(req, reply);
      return reply.status(503).send({
        status: 'draining',
        version: VERSION,
        database: { kind: deps.db.kind, reachable: true, latencyMs: null },
        migrations: null,
      });
    },
  );

  // Liveness: the process answers (a load balancer or orchestrator restarts a node that does not).
  app.get('/health/live', { schema: { summary: 'Liveness: the process is up', tags: ['operations'] } }, async () => ({
    status: 'alive',
  }));

  app.get(
    '/api/v1/rbac/catalogue',
    {
      schema: {
        summary: 'The loaded National RBAC catalogue: job roles and activities',
        tags: ['rbac'],
        security: security.none,
      },
    },
    async () => listCatalogue(repos),
  );

  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.page('home.njk', { title: 'OpenCIS' }));

  return app;
}

const healthSchema = z.object({
  status: z.enum(['ok', 'degraded', 'unavailable', 'draining']),
  version: z.string(),
  database: z.object({
    kind: z.enum(['pglite', 'postgres']),
    reachable: z.boolean(),
    latencyMs: z.number().nullable(),
  }),
  migrations: z.object({ applied: z.number(), pending: z.number(), latest: z.number() }).nullable(),
});
