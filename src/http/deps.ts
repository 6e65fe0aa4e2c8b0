import type { FastifyReply, FastifyRequest } from 'fastify';
import { attestationRootsFromFile } from '../authenticators/webauthn/attestation-trust.ts';
import { DEMO_AAGUID, withDemoRoot } from '../authenticators/webauthn/demo-trust.ts';
import type { Config } from '../config.ts';
import type { Aal } from '../domain/credentials/assurance.ts';
import { AppError } from '../domain/errors.ts';
import type { Actor } from '../domain/policy.ts';
import { outboundPolicyFrom } from '../net/outbound.ts';
import type { Sealer } from '../secrets/sealer.ts';
import type { CardConfig } from '../services/cards.ts';
import { type Clock, type ServiceContext, serviceContext } from '../services/context.ts';
import type { NotificationOutbox } from '../services/notifications.ts';
import { recordUnaudited } from '../services/refusals.ts';
import { currentSession, type WebSession } from '../services/sessions.ts';
import type { RelyingPartyConfig } from '../services/webauthn.ts';
import type { Database } from '../storage/database.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { SESSION_COOKIE } from './web.ts';

/** Everything route handlers need, built once per app from the configuration. */
export interface WebDeps {
  config: Config;
  /**
   * The database itself: only for what needs the handle (a request's service context, the OpenID Connect adapter,
   * migrations, its kind). Doors read and write through `repos` and `contextFor(…).transaction`.
   */
  db: Database;
  /** The repositories on `db`: what doors pass to services that read (or that run in the caller's statement). */
  repos: Repositories;
  clock: Clock;
  sealer: Sealer;
  rp: RelyingPartyConfig;
  card: CardConfig;
  outbox: NotificationOutbox;
}

/**
 * The WebAuthn relying party and which keys count as AAL3: the configured roots and models, and — in demo mode only
 * (DEMO_DATA on and the demo data seeded, `demo` here) — Chromium's virtual security key too.
 */
export function relyingPartyFrom(config: Config, options: { demo?: boolean } = {}): RelyingPartyConfig {
  const url = new URL(config.PUBLIC_URL);
  const roots = attestationRootsFromFile(config.WEBAUTHN_ATTESTATION_ROOTS);
  const aaguids = config.WEBAUTHN_AAL3_AAGUIDS.split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  const demo = options.demo === true && config.DEMO_DATA;
  return {
    rpId: config.WEBAUTHN_RP_ID ?? url.hostname,
    rpName: 'OpenCIS',
    origin: url.origin,
    attestationRoots: demo ? withDemoRoot(roots) : roots,
    aal3Aaguids: new Set(demo ? [...aaguids, DEMO_AAGUID] : aaguids),
    demo,
  };
}

export function cardConfigFrom(config: Config): CardConfig {
  return {
    origin: new URL(config.PUBLIC_URL).origin,
    publicUrl: config.PUBLIC_URL,
    transportSoPin: config.CARD_TRANSPORT_SO_PIN,
    expirySpreadDays: config.CARD_EXPIRY_SPREAD_DAYS,
  };
}

/** The service context for a request: who acts (the signed-in person, or the anonymous web client) and its request id. */
export function contextFor(deps: WebDeps, req: FastifyRequest, actor?: Actor): ServiceContext {
  const ctx = serviceContext({
    db: deps.db,
    clock: deps.clock,
    sealer: deps.sealer,
    actor: actor ?? { kind: 'system', id: 'web:anonymous' },
    requestId: req.id,
    allowExampleNiPrefix: deps.config.ALLOW_EXAMPLE_NI_PREFIX,
    outbound: outboundPolicyFrom(deps.config),
  });
  // The last actor known for the request: its refusals are recorded as theirs (recordDoorRefusal).
  if (actor) requestContexts.set(req, ctx);
  return ctx;
}

const requestContexts = new WeakMap<FastifyRequest, ServiceContext>();

/**
 * The web doors' part of the one refusal path (services/refusals.ts): a 403 that reached the error handler without
 * a record — an `authorize` denial outside an RA action, a door's guard — is recorded as `access.refused` against the
 * caller the request had established (a 403 always follows one), naming the route.
 */
export async function recordDoorRefusal(req: FastifyRequest, err: unknown): Promise<void> {
  const ctx = requestContexts.get(req);
  if (!ctx) return;
  await recordUnaudited(ctx, err, `${req.method} ${req.routeOptions.url ?? req.url.split('?')[0]}`);
}

/** Records `actor` as the caller of `req` for its refusals, where a door knows the caller but builds no context. */
export function rememberCaller(deps: WebDeps, req: FastifyRequest, actor: Actor): void {
  contextFor(deps, req, actor);
}

export async function sessionOf(deps: WebDeps, req: FastifyRequest): Promise<WebSession | null> {
  return currentSession(deps.repos, req.cookies[SESSION_COOKIE], deps.clock.now());
}

export function personActor(session: WebSession): Actor {
  return { kind: 'person', id: session.userId, userId: session.userId };
}

/**
 * For pages: the session at or above `aal`, or a redirect to sign in (with step-up when the session is too weak).
 * Returns null when it has answered the request.
 */
export async function requirePageSession(
  deps: WebDeps,
  req: FastifyRequest,
  reply: FastifyReply,
  aal: Aal,
): Promise<WebSession | null> {
  const session = await sessionOf(deps, req);
  if (session && session.aal >= aal) return session;
  const back = encodeURIComponent(req.url.split('?')[0] ?? '/account');
  await reply.redirect(`/signin?return=${back}${aal === 3 ? '&aal=3' : ''}`, 303);
  return null;
}

/** For JSON endpoints: the session at or above `aal`, or a catalogued 401/403. */
export async function requireApiSession(deps: WebDeps, req: FastifyRequest, aal: Aal): Promise<WebSession> {
  const session = await sessionOf(deps, req);
  if (!session) throw new AppError('auth.required');
  if (session.aal < aal) throw new AppError('auth.step_up_required');
  return session;
}
