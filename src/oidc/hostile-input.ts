import type Provider from 'oidc-provider';
import { type Adapter, type AdapterPayload, errors, type KoaContextWithOIDC } from 'oidc-provider';
import { isStorableText } from '../domain/text.ts';
import { codeForDatabaseRefusal } from '../http/errors.ts';
import { textProblem } from '../http/input-guard.ts';
import { answerError } from './pages.ts';

/**
 * Hostile text at the OpenID Connect endpoints. oidc-provider reads its own request bodies, so OpenCIS's input guard
 * (src/http/input-guard.ts) sees only their query; what arrives in a body — a `client_id`, `code`, `refresh_token` or
 * `token` with a NUL, a `state` or `nonce` the library would store — meets OpenCIS where the library hands it over,
 * through its documented extension points:
 *
 * - the storage adapter (and the client registry lookup in provider.ts): an id that no artefact can have is not found
 *   (so the library answers invalid_client / invalid_grant / an inactive token, as for any unknown value), and a
 *   payload holding such text is refused with invalid_request before it reaches the database;
 * - a `server_error` the database caused by refusing a value (SQLSTATE 22021, 22P05…) is answered 400 invalid_request
 *   instead (the net under the above, as store-failures.ts does for outages);
 * - a path the library has no route for gets an OAuth-shaped JSON 404, not Koa's plain-text "Not Found".
 */
type AdapterFactory = (name: string) => Adapter;

export function refusingUnstorableText(factory: AdapterFactory): AdapterFactory {
  return (name) => {
    const inner = factory(name);
    const storable = (value: unknown) => typeof value !== 'string' || isStorableText(value);
    return {
      async upsert(id: string, payload: AdapterPayload, expiresIn: number) {
        if (!storable(id) || textProblem(payload) !== null) {
          throw new errors.InvalidRequest('the request contains text that cannot be accepted');
        }
        await inner.upsert(id, payload, expiresIn);
      },
      async find(id: string) {
        return storable(id) ? inner.find(id) : undefined;
      },
      async findByUid(uid: string) {
        return storable(uid) ? inner.findByUid(uid) : undefined;
      },
      async findByUserCode(userCode: string) {
        return storable(userCode) ? inner.findByUserCode(userCode) : undefined;
      },
      async consume(id: string) {
        if (storable(id)) await inner.consume(id);
      },
      async destroy(id: string) {
        if (storable(id)) await inner.destroy(id);
      },
      async revokeByGrantId(grantId: string) {
        if (storable(grantId)) await inner.revokeByGrantId(grantId);
      },
    };
  };
}

const INVALID_TEXT = {
  error: 'invalid_request',
  error_description: 'the request contains text that cannot be accepted',
} as const;

/** Answers a refused value with 400 invalid_request (a page to a browser), in place of the library's server_error. */
export function answerInvalidInputWith400(provider: Provider): void {
  provider.on('server_error', (ctx: KoaContextWithOIDC, err: unknown) => {
    if (codeForDatabaseRefusal(err)) ctx.state.invalidInput = true;
  });
  provider.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (!codeForDatabaseRefusal(err)) throw err;
      ctx.state.invalidInput = true;
    }
    if (ctx.state.invalidInput) {
      ctx.status = 400;
      ctx.set('cache-control', 'no-store');
      ctx.remove('location');
      await answerError(ctx as unknown as KoaContextWithOIDC, INVALID_TEXT);
      return;
    }
    if (ctx.status === 404 && ctx.body === undefined) {
      ctx.status = 404;
      ctx.body = { error: 'invalid_request', error_description: 'unrecognized route or not allowed method' };
    }
  });
}
