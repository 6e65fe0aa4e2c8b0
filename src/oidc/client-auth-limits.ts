import type Provider from 'oidc-provider';
import { AppError } from '../domain/errors.ts';
import { secretGuard } from '../http/secret-limits.ts';
import type { Clock } from '../services/context.ts';
import type { Repositories } from '../storage/repositories/index.ts';

/** Where relying parties authenticate with their client secret or key (paths under the issuer). */
const CLIENT_AUTH_PATHS = new Set(['/access_token', '/introspect', '/token/revoke']);

/**
 * Client secrets are guessable secrets too: every failed client authentication at the token, introspection and
 * revocation endpoints (invalid_client) counts against the caller's address, and an address at the limit gets 429
 * until its lock ends (services/attempts.ts; looked up only for addresses that failed here lately: secret-limits.ts).
 * Counted per address only: a client ID is public, so a per-client lock
 * would let anyone shut a relying party out. A documented provider middleware, installed before the library's routes.
 */
export function limitClientAuthentication(provider: Provider, deps: { repos: Repositories; clock: Clock }): void {
  const guard = secretGuard(deps, 'client_secret');
  provider.use(async (ctx, next) => {
    if (ctx.method !== 'POST' || !CLIENT_AUTH_PATHS.has(ctx.path)) return next();
    try {
      await guard.assertNotLocked(ctx.ip);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      const { retryAfterSeconds } = err.details as { retryAfterSeconds: number };
      ctx.status = 429;
      ctx.set('retry-after', String(retryAfterSeconds));
      ctx.set('cache-control', 'no-store');
      ctx.body = {
        error: 'invalid_request',
        error_description: 'too many failed client authentications from this address; try again later',
      };
      return;
    }
    await next();
    const body = ctx.body as { error?: unknown } | undefined;
    if (ctx.status === 401 && body?.error === 'invalid_client') await guard.recordWrong(ctx.ip);
  });
}
