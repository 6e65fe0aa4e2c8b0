/**
 * Who may use the RA console: a signed-in person at AAL3 (RA staff use a smartcard or a security key, DOMAIN §6) who
 * holds at least one RA role today (DOMAIN §5). Everyone else gets a 403 page that explains why; nothing about them is
 * logged. What each RA may do is then decided by the policy module, page by page and button by button.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../domain/errors.ts';
import { type Actor, mayAnywhere, type RaRole, raRolesOf, type Target } from '../../domain/policy.ts';
import {
  contextFor,
  recordDoorRefusal,
  rememberCaller,
  requireApiSession,
  requirePageSession,
  type WebDeps,
} from '../../http/deps.ts';
import type { ServiceContext } from '../../services/context.ts';
import { personActorWithPowers } from '../../services/ra-powers.ts';
import type { WebSession } from '../../services/sessions.ts';
import { personTarget as loadPersonTarget } from '../../services/targets.ts';
import { doneMessage } from './banners.ts';
import { type SignedInAs, signedInAsRa } from './signed-in.ts';

export interface RaCaller {
  session: WebSession;
  actor: Actor;
  roles: RaRole[];
  ctx: ServiceContext;
  /** Who the header says is signed in, and in which role and organisation. */
  header: SignedInAs;
}

/** For pages: the RA caller, or null when the request has been answered (redirect to sign in, or the 403 page). */
export async function raPage(deps: WebDeps, req: FastifyRequest, reply: FastifyReply): Promise<RaCaller | null> {
  const session = await requirePageSession(deps, req, reply, 3);
  if (!session) return null;
  const actor = await personActorWithPowers(deps.repos, session.userId, deps.clock.now());
  const roles = raRolesOf(actor);
  if (roles.length === 0) {
    // Answered with a page, not thrown: recorded here, by the same path as a thrown refusal.
    rememberCaller(deps, req, actor);
    await recordDoorRefusal(req, new AppError('auth.forbidden'));
    await reply.page(
      'ra/forbidden.njk',
      {
        title: 'You do not have Registration Authority access',
        signedIn: true,
        signedInAs: await signedInAsRa(deps.repos, session.userId, deps.clock.now()),
      },
      403,
    );
    return null;
  }
  const header = await signedInAsRa(deps.repos, session.userId, deps.clock.now());
  return { session, actor, roles, ctx: contextFor(deps, req, actor), header };
}

/** For the console's JSON endpoints (called by its scripts): the RA caller, or a catalogued 401/403. */
export async function raApi(deps: WebDeps, req: FastifyRequest): Promise<RaCaller> {
  const session = await requireApiSession(deps, req, 3);
  const actor = await personActorWithPowers(deps.repos, session.userId, deps.clock.now());
  const roles = raRolesOf(actor);
  if (roles.length === 0) {
    rememberCaller(deps, req, actor);
    throw new AppError('auth.forbidden');
  }
  return { session, actor, roles, ctx: contextFor(deps, req, actor), header: { name: '' } };
}

export { mayAnywhere };

/** A person as a policy target: who they are, where they work, what access they hold (services/targets.ts). */
export function personTarget(deps: WebDeps, userId: string): Promise<Target> {
  return loadPersonTarget(deps.repos, deps.clock, userId);
}

export interface NavItem {
  href: string;
  text: string;
  current: boolean;
}

/** The console's menu: only what the caller's powers allow. */
export function navFor(actor: Actor, path: string): NavItem[] {
  const items: [string, string, boolean][] = [
    ['/ra', 'RA home', true],
    ['/ra/people/search', 'Find a person', mayAnywhere(actor, 'person:read')],
    ['/ra/people/new', 'Register a person', mayAnywhere(actor, 'person:create')],
    ['/ra/requests', 'Access requests', mayAnywhere(actor, 'request:create') || mayAnywhere(actor, 'request:approve')],
    ['/ra/applications', 'Applications', mayAnywhere(actor, 'application:review')],
    ['/ra/reports', 'Reports', mayAnywhere(actor, 'report:view')],
    ['/ra/audit', 'Audit trail', mayAnywhere(actor, 'audit:read')],
    ['/ra/clients', 'Relying parties', mayAnywhere(actor, 'client:register')],
  ];
  const current = items
    .filter(([href]) => path === href || (href !== '/ra' && path.startsWith(`${href}/`)))
    .map(([href]) => href)
    .at(-1);
  return items
    .filter(([, , shown]) => shown)
    .map(([href, text]) => ({ href, text, current: href === (current ?? (path === '/ra' ? '/ra' : '')) }));
}

/** Renders a console page with the signed-in chrome (menu, sign out). */
export function renderRa(
  reply: FastifyReply,
  caller: RaCaller,
  template: string,
  context: Record<string, unknown>,
  status = 200,
): FastifyReply {
  const path = reply.request.url.split('?')[0] ?? '/ra';
  return reply.page(
    template,
    {
      signedIn: true,
      signedInAs: caller.header,
      nav: navFor(caller.actor, path),
      done: status < 400 ? doneMessage(reply.request) : undefined,
      ...context,
    },
    status,
  );
}

/** Route parameters, as strings. */
export function param(req: FastifyRequest, name: string): string {
  const v = (req.params as Record<string, unknown>)[name];
  return typeof v === 'string' ? v : '';
}
