import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../domain/errors.ts';
import { type Actor, type ClientActor, clientRegistrarEntitled } from '../domain/policy.ts';
import { API_SCOPE, clientMetadataForProvider } from '../services/clients.ts';
import { subtreeOf } from '../services/organisations.ts';
import { personActorWithPowers } from '../services/ra-powers.ts';
import { rememberCaller, requireApiSession, type WebDeps } from './deps.ts';
import { CSRF_HEADER } from './openapi.ts';
import { CSRF_COOKIE, SESSION_COOKIE } from './web.ts';

/**
 * Who is calling the RA API: RA staff in the browser (an AAL3 session cookie, CSRF token in a header), or an
 * organisation's script with an OAuth access token from the client-credentials grant (`Authorization: Bearer …`,
 * registered by that organisation's RA Manager) — never a shared static password. The policy module then decides
 * what either may do.
 */
function bearerToken(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string' || !h.startsWith('Bearer ')) return null;
  const token = h.slice(7).trim();
  return /^[A-Za-z0-9._~+/=-]{10,4096}$/.test(token) ? token : null;
}

export async function apiActor(app: FastifyInstance, deps: WebDeps, req: FastifyRequest): Promise<Actor> {
  if (req.headers.authorization !== undefined) {
    const token = bearerToken(req);
    if (!token || !app.hasDecorator('oidc')) throw new AppError('auth.required');
    const found = (await app.oidc.provider().ClientCredentials.find(token)) as
      | { clientId: string; scope?: string; isExpired?: boolean }
      | undefined;
    if (
      !found ||
      found.isExpired ||
      !String(found.scope ?? '')
        .split(' ')
        .includes(API_SCOPE)
    ) {
      throw new AppError('auth.required');
    }
    const client = await clientMetadataForProvider(deps.repos, deps.sealer, found.clientId);
    const ods = client?.['urn:opencis:api_ods'];
    const activities = client?.['urn:opencis:api_activities'];
    if (typeof ods !== 'string' || !Array.isArray(activities)) throw new AppError('auth.required');
    const id = `client:${found.clientId}`;
    // Never more than its registrar holds now: the policy checks every action against the registrar's powers too.
    const registrarId = await deps.repos.accessFacts.registrarOfActor(id);
    const actor: ClientActor = {
      kind: 'client',
      id,
      odsCode: ods,
      powers: [{ activities: activities.map(String), odsCode: ods, odsCodes: await subtreeOf(deps.repos, ods) }],
      registrar: registrarId ? await personActorWithPowers(deps.repos, registrarId, deps.clock.now()) : null,
    };
    if (!clientRegistrarEntitled(actor)) {
      rememberCaller(deps, req, actor);
      throw new AppError('auth.forbidden', {
        reason: 'the person who registered this API client no longer holds the power to register it',
      });
    }
    return actor;
  }
  const session = await requireApiSession(deps, req, 3);
  return personActorWithPowers(deps.repos, session.userId, deps.clock.now());
}

/**
 * CSRF protects cookie-authenticated calls only: a call without the session cookie carries no ambient credential, so
 * there is nothing to forge. Such a call with a bearer token goes on to be authenticated by it; one with no credentials
 * at all is told to authenticate (401 `auth.required`, with the challenges), not that a form expired. A cookie-
 * authenticated call without the CSRF header is told which header it is missing (a script's mistake); one whose token
 * does not match keeps the page's message (a page left open too long).
 */
export function csrfUnlessBearer(app: FastifyInstance) {
  return (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
    if (req.cookies?.[SESSION_COOKIE] === undefined) {
      done(req.headers.authorization === undefined ? new AppError('auth.required') : undefined);
      return;
    }
    const sent = req.headers[CSRF_HEADER] || (req.body as { _csrf?: unknown } | undefined)?._csrf;
    if (typeof sent !== 'string' || sent === '') {
      done(
        new AppError(
          'auth.csrf_invalid',
          { header: CSRF_HEADER },
          `A change made with the session cookie needs the CSRF token of the signed-in page in the \`${CSRF_HEADER}\` header (with its ${CSRF_COOKIE} cookie). Scripts can use an API client's bearer token instead.`,
        ),
      );
      return;
    }
    app.csrfProtection(req, reply, done);
  };
}

const actors = new WeakMap<FastifyRequest, Actor>();

/** Runs the done-style CSRF check of csrfUnlessBearer as a promise. */
export function csrfCheck(app: FastifyInstance) {
  const check = csrfUnlessBearer(app);
  return (req: FastifyRequest, reply: FastifyReply) =>
    new Promise<void>((resolve, reject) => check(req, reply, (err) => (err ? reject(err) : resolve())));
}

/**
 * The RA API's `preValidation` hook: for a route whose OpenAPI `security` accepts RA staff or an API client, the CSRF
 * check of a cookie-authenticated change, then who is calling — both before route validation, so a call without
 * credentials is told to authenticate (401) and a forged one is refused (403) whatever its body, as before validation
 * was on. The actor is kept for the handler (`raActorOf`). Routes for a signed-in person only authenticate in their
 * own `preValidation`.
 */
export function authenticateRaCalls(app: FastifyInstance, deps: WebDeps) {
  const csrf = csrfCheck(app);
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const declared = (req.routeOptions.schema as { security?: Record<string, string[]>[] } | undefined)?.security;
    if (!declared?.some((r) => 'clientCredentials' in r)) return;
    if (declared.some((r) => 'csrfToken' in r)) await csrf(req, reply);
    actors.set(req, await apiActor(app, deps, req));
  };
}

/** The caller authenticated by `authenticateRaCalls` (or now, for a route it did not run on). */
export async function raActorOf(app: FastifyInstance, deps: WebDeps, req: FastifyRequest): Promise<Actor> {
  return actors.get(req) ?? apiActor(app, deps, req);
}
