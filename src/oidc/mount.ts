import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type Provider from 'oidc-provider';
import { ukDate } from '../domain/dates.ts';
import { AppError } from '../domain/errors.ts';
import type { WebDeps } from '../http/deps.ts';
import { acceptQuality, storeFailure } from '../http/errors.ts';
import { outboundFetch, outboundPolicyFrom } from '../net/outbound.ts';
import { serviceContext } from '../services/context.ts';
import { postgresAdapterFactory } from './adapter.ts';
import { registerInteractionRoutes } from './interactions.ts';
import { ensureSigningKeys, KEY_RELOAD_SECONDS, loadSigningKeys } from './keys.ts';
import {
  endOidcSessionById,
  postgresSessionIndex,
  processSessionEndEvents,
  queueFailedDelivery,
  retryLogoutDeliveries,
} from './logout.ts';
import { createProvider } from './provider.ts';
import { redisAdapterFactory, redisSessionIndex } from './redis-adapter.ts';

export interface OidcOptions {
  /** Path of the issuer under PUBLIC_URL (CIS2's issuer is a path too). */
  mountPath: string;
  redis?: Redis;
  /** How often to look for rotated signing keys (ms). */
  keyCheckIntervalMs?: number;
  /** How often to act on ended sessions and retry back-channel logouts (ms). */
  logoutIntervalMs?: number;
}

export interface OidcHandle {
  issuer: string;
  provider(): Provider;
  /** Rebuilds the provider if the signing keys changed (after `opencis oidc rotate-keys` on any node). */
  reloadKeys(): Promise<boolean>;
  /** Ends one browser's SSO session (by its oidc-provider session cookie value) and tells its relying parties. */
  endBrowserSession(sessionId: string, reason: string): Promise<boolean>;
  /** Ends SSO sessions OpenCIS asked to end and retries failed back-channel logouts (also runs every second). */
  processLogouts(): Promise<number>;
  close(): void;
}

/**
 * Mounts the OpenID Connect provider at `${PUBLIC_URL}${mountPath}`. The library gets the raw request (with the mount
 * path stripped and `originalUrl` kept, as Express would) and its unparsed body: the /oidc scope registers no body
 * parsers. Interactions are OpenCIS routes under the same prefix.
 */
export async function mountOidc(app: FastifyInstance, deps: WebDeps, options: OidcOptions): Promise<OidcHandle> {
  const issuer = `${deps.config.PUBLIC_URL}${options.mountPath}`;
  const ctx = serviceContext({
    db: deps.db,
    clock: deps.clock,
    sealer: deps.sealer,
    actor: { kind: 'system' as const, id: 'system:oidc' },
    requestId: null,
    allowExampleNiPrefix: false,
  });
  await ensureSigningKeys(ctx);
  const adapter = options.redis
    ? redisAdapterFactory(options.redis)
    : postgresAdapterFactory(deps.db, () => ukDate(deps.clock.now()));
  const sessionIndex = options.redis ? redisSessionIndex(options.redis) : postgresSessionIndex(deps.repos);
  let keys = await loadSigningKeys(ctx);
  const fetch = outboundFetch(outboundPolicyFrom(deps.config));
  let provider = createProvider({
    issuer,
    mountPath: options.mountPath,
    repos: deps.repos,
    clock: deps.clock,
    sealer: deps.sealer,
    keys,
    adapter,
    fetch,
  });
  let callback = provider.callback();
  const watch = (p: Provider) => {
    // The library answers an unexpected throw with server_error and logs nothing: log it (a store failure is answered
    // 503 by store-failures.ts and logged as a warning).
    p.on('server_error', (ctx: { path?: string }, err: Error) => {
      const failure = storeFailure(err);
      if (failure) app.log.warn({ err: { message: err.message }, path: ctx.path, failure }, 'oidc: store unavailable');
      else app.log.error({ err, path: ctx.path }, 'oidc: server_error');
    });
    // The library's own back-channel deliveries (RP-initiated logout) that fail are queued for retry.
    p.on(
      'backchannel.error',
      (_ctx: unknown, err: Error, client: { clientId: string }, accountId: string, sid: string) => {
        queueFailedDelivery(ctx, client.clientId, accountId, sid, err.message).catch(() => {});
      },
    );
  };
  watch(provider);

  const handle: OidcHandle = {
    issuer,
    provider: () => provider,
    async reloadKeys() {
      const next = await loadSigningKeys(ctx);
      if (next.version === keys.version) return false;
      keys = next;
      provider = createProvider({
        issuer,
        mountPath: options.mountPath,
        repos: deps.repos,
        clock: deps.clock,
        sealer: deps.sealer,
        keys,
        adapter,
        fetch,
      });
      watch(provider);
      callback = provider.callback();
      return true;
    },
    endBrowserSession: (sessionId, reason) => endOidcSessionById(provider, ctx, sessionId, reason),
    async processLogouts() {
      const n = await processSessionEndEvents(provider, ctx, sessionIndex);
      await retryLogoutDeliveries(provider, ctx);
      return n;
    },
    close() {
      clearInterval(timer);
      clearInterval(logoutTimer);
    },
  };
  const timer = setInterval(
    () => {
      handle.reloadKeys().catch(() => {});
    },
    options.keyCheckIntervalMs ?? KEY_RELOAD_SECONDS * 1000,
  );
  timer.unref();
  let busy = false;
  const logoutTimer = setInterval(() => {
    if (busy) return;
    busy = true;
    handle
      .processLogouts()
      .catch(() => {})
      .finally(() => {
        busy = false;
      });
  }, options.logoutIntervalMs ?? 1_000);
  logoutTimer.unref();

  await app.register(
    async (scope) => {
      scope.removeAllContentTypeParsers();
      // Leave the body unread: oidc-provider parses it itself.
      scope.addContentTypeParser('*', (_req, _payload, done) => done(null));
      // Refusals before the library sees the request (the input guard's, on the query) answer in OAuth's error shape.
      scope.setErrorHandler((err, req, reply) => {
        if (!(err instanceof AppError) || err.status >= 500) throw err;
        const out = { error: 'invalid_request', error_description: err.message };
        const page = /\/(authorize|connect\/endSession)$/.test(req.url.split('?')[0]!);
        const accept = req.headers.accept ?? '';
        if (page && acceptQuality(accept, 'text/html') > acceptQuality(accept, 'application/json')) {
          return reply.page(
            'error.njk',
            { title: 'There is a problem', message: err.message, code: out.error },
            err.status,
          );
        }
        return reply.status(err.status).header('cache-control', 'no-store').send(out);
      });
      const pass = async (
        req: FastifyRequest<{ Body: unknown }>,
        reply: { hijack(): void; raw: import('node:http').ServerResponse },
      ) => {
        reply.hijack();
        const raw = req.raw as IncomingMessage & { originalUrl?: string };
        raw.originalUrl = raw.url;
        raw.url = raw.url!.slice(options.mountPath.length) || '/';
        // The library believes X-Forwarded-* (provider.proxy): hand it exactly what Fastify decided under TRUST_PROXY —
        // the forwarded protocol and host only from a trusted proxy, else the connection's own — never what a client
        // wrote. Otherwise a forged header would move the endpoints in discovery, the audience private_key_jwt
        // assertions are checked against, and every absolute URL the library builds.
        raw.headers['x-forwarded-proto'] = req.protocol;
        raw.headers['x-forwarded-host'] = req.host;
        raw.headers['x-forwarded-for'] = req.ip;
        await callback(raw, reply.raw);
      };
      scope.all('/*', { schema: { hide: true } }, pass);
      scope.all('/', { schema: { hide: true } }, pass);
    },
    { prefix: options.mountPath },
  );
  registerInteractionRoutes(app, { ...deps, provider: () => provider, mountPath: options.mountPath });
  return handle;
}
