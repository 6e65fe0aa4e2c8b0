import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { retryAfterSeconds, storeFailure } from '../http/errors.ts';
import { answerError } from './pages.ts';

type Failure = NonNullable<ReturnType<typeof storeFailure>>;

const DESCRIPTIONS: Record<Failure, string> = {
  unavailable: 'OpenCIS is temporarily unavailable. Try again in a few moments.',
  read_only: 'OpenCIS cannot record sign-ins just now (maintenance). Try again in a few minutes.',
};

/**
 * PostgreSQL or Redis down, restarting or read-only while oidc-provider serves a request (its storage adapter, the
 * client registry, account claims, the session checks) is not a bug, yet the library answers such a throw with
 * `server_error` (500) — which tells a relying party nothing and, at the authorization endpoint, shows a person a dead
 * end. Such requests are answered 503 with Retry-After instead, in the protocol's own words (RFC 6749 §4.1.2.1
 * `temporarily_unavailable`): JSON to relying parties (token, userinfo, introspection…), a page to a browser. Nothing
 * is kept from the failure, so the next request after the store is back succeeds (the pg pool and ioredis reconnect).
 *
 * The library catches errors inside each endpoint and reports them through its `server_error` event before the answer
 * is sent; errors thrown outside its endpoints (OpenCIS middleware) reach this middleware directly. Install it before
 * any other middleware so that it wraps them.
 */
export function answerStoreFailuresWith503(provider: Provider): void {
  provider.on('server_error', (ctx: KoaContextWithOIDC, err: unknown) => {
    const failure = storeFailure(err);
    if (failure) ctx.state.storeFailure = failure;
  });
  provider.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const failure = storeFailure(err);
      if (!failure) throw err;
      ctx.state.storeFailure = failure;
    }
    const failure = ctx.state.storeFailure as Failure | undefined;
    if (!failure) return;
    const out = { error: 'temporarily_unavailable', error_description: DESCRIPTIONS[failure] };
    ctx.status = 503;
    ctx.set('retry-after', String(retryAfterSeconds(failure)));
    ctx.set('cache-control', 'no-store');
    ctx.remove('location');
    await answerError(ctx as unknown as KoaContextWithOIDC, out);
  });
}
