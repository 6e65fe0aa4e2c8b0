import Provider from 'oidc-provider';

/**
 * Reading together, within one request of the provider (PostgreSQL only; see migration 0015 and the adapter).
 *
 * The token and userinfo endpoints read a token (or code), then its grant, then the SSO session it is bound to, then
 * the claims of its account. The adapter reads all four in the statement that finds the token and leaves the other
 * three here, on the request (the library's Koa context, `Provider.ctx`), for the library's next reads in the same
 * request to take. Each is taken at most once; any write to the provider's artefacts in the request drops what is
 * left, so what a request reads after its own writes always comes from the database. Nothing outlives the request: the
 * next request — on this node or another — reads the database again, so a revoked grant, an ended session or an ended
 * role profile takes effect at once.
 */

/** A row as the adapter reads it: the payload, and its times in ms since the epoch. */
export interface TogetherRow {
  payload: Record<string, unknown>;
  consumed_at: number | null;
  expires_at: number | null;
}

export type ClaimsUse = 'id_token' | 'userinfo';

/** A code's (or refresh token's) use, recorded with the request's next write (see the adapter). */
export interface DeferredConsume {
  model: string;
  id: string;
  /** Records the use on its own, now (the request wrote nothing after it, or is about to do something else). */
  now(): Promise<void>;
}

interface Together {
  rows: Map<string, TogetherRow>;
  claims?: { userId: string; day: string; grantId: string | null; use: ClaimsUse; state: unknown };
  consume?: DeferredConsume;
}

const byRequest = new WeakMap<object, Together>();

/** The library's context of the request being served, if any (undefined outside the provider's own routes). */
export function currentRequest(): object | undefined {
  return (Provider as unknown as { ctx?: object }).ctx;
}

/** Which claims the request will ask for, from the provider's route: the token endpoint's ID token, or userinfo. */
export function claimsUseOf(ctx: object): ClaimsUse | null {
  const route = (ctx as { oidc?: { route?: string } }).oidc?.route;
  return route === 'token' ? 'id_token' : route === 'userinfo' ? 'userinfo' : null;
}

function together(ctx: object): Together {
  let t = byRequest.get(ctx);
  if (!t) {
    t = { rows: new Map() };
    byRequest.set(ctx, t);
  }
  return t;
}

export const rowKey = {
  id: (model: string, id: string) => `${model}\u0000id\u0000${id}`,
  uid: (model: string, uid: string) => `${model}\u0000uid\u0000${uid}`,
};

export function leaveRow(ctx: object, key: string, row: TogetherRow): void {
  together(ctx).rows.set(key, row);
}

/** A row read together earlier in this request, once. */
export function takeRow(ctx: object | undefined, key: string): TogetherRow | undefined {
  if (!ctx) return undefined;
  const t = byRequest.get(ctx);
  const row = t?.rows.get(key);
  if (row) t!.rows.delete(key);
  return row;
}

/** After a write to the provider's artefacts: nothing read before it is handed out. */
export function dropRows(ctx: object | undefined): void {
  if (ctx) byRequest.get(ctx)?.rows.clear();
}

export function leaveClaims(
  ctx: object,
  userId: string,
  day: string,
  grantId: string | null,
  use: ClaimsUse,
  state: unknown,
): void {
  together(ctx).claims = { userId, day, grantId, use, state };
}

/**
 * The claims state read together for exactly this person, day, grant and use, once; undefined when there is none (the
 * caller reads it). Claims are not provider artefacts: the request's own writes to those do not change them.
 */
export function takeClaims(
  ctx: object | undefined,
  userId: string,
  day: string,
  grantId: string | null,
  use: ClaimsUse,
): { state: unknown } | undefined {
  if (!ctx) return undefined;
  const t = byRequest.get(ctx);
  const c = t?.claims;
  if (!c || c.userId !== userId || c.day !== day || c.grantId !== grantId || c.use !== use) return undefined;
  t!.claims = undefined;
  return { state: c.state };
}

/** Defers a use to the request's next write. A second one in the same request first records the earlier one. */
export async function deferConsume(ctx: object, consume: DeferredConsume): Promise<void> {
  const t = together(ctx);
  const earlier = t.consume;
  t.consume = undefined;
  if (earlier) await earlier.now();
  t.consume = consume;
}

/** The use deferred in this request, handed over once (to be recorded with a write, or on its own). */
export function takeDeferredConsume(ctx: object | undefined): DeferredConsume | undefined {
  if (!ctx) return undefined;
  const t = byRequest.get(ctx);
  const c = t?.consume;
  if (t) t.consume = undefined;
  return c;
}
