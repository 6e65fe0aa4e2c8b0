import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type Provider from 'oidc-provider';
import { jobRoleTitle } from '../domain/access/job-role-name.ts';
import { acrCandidates, meets, stepUpFor } from '../domain/credentials/acr.ts';
import { AppError } from '../domain/errors.ts';
import { sessionOf, type WebDeps } from '../http/deps.ts';
import { storeFailure } from '../http/errors.ts';
import { signedInAs } from '../http/signed-in.ts';
import { type EffectiveRole, effectiveRoles } from '../services/access.ts';
import type { WebSession } from '../services/sessions.ts';
import { asksForRole, saveGrantContext } from './claims.ts';

/**
 * OpenCIS's side of a CIS2 sign-in (DOMAIN §7): the library hands over at /oidc/interaction/{uid}; we make sure the
 * person is signed in at the level the relying party asked for (stepping up when the session is weaker, never
 * accepting it silently), let them choose a role profile when asked, and hand back who signed in, how, and the grant.
 */
type Details = Awaited<ReturnType<Provider['interactionDetails']>>;

export interface InteractionDeps extends WebDeps {
  provider: () => Provider;
  mountPath: string;
}

/** More than this many role profiles: the list gets a search box (CIS2 shows a list for 2–5). */
const SEARCH_ABOVE = 5;

function minimumAal(client: unknown): 1 | 2 | 3 {
  const v = Number((client as Record<string, unknown> | undefined)?.['urn:opencis:minimum_aal'] ?? 3);
  return v === 1 || v === 2 ? v : 3;
}

/**
 * The forms on the interaction pages (choose a role, return to the service) end, after OpenCIS's own redirects, at the
 * relying party's redirect URI. Browsers apply the page's CSP form-action to every redirect of a form submission, so
 * `form-action 'self'` alone blocks them: the origin of this request's redirect URI (checked by oidc-provider against
 * the client's registered URIs) is added for these pages.
 */
const formTargets = new WeakMap<FastifyRequest, string>();

function allowFormRedirect(req: FastifyRequest, d: Details): void {
  try {
    const origin = new URL(String(d.params.redirect_uri)).origin;
    if (origin !== 'null') formTargets.set(req, origin);
  } catch {
    // no usable redirect URI: the page keeps form-action 'self'
  }
}

async function widenFormAction(req: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
  const origin = formTargets.get(req);
  const csp = reply.getHeader('content-security-policy');
  if (origin && typeof csp === 'string') {
    reply.header('content-security-policy', csp.replace("form-action 'self'", `form-action 'self' ${origin}`));
  }
  return payload;
}

/** Set when an interaction sends a signed-in person to sign in again (prompt=login, max_age): its uid and the time. */
const REAUTH_COOKIE = 'opencis_reauth';

export function registerInteractionRoutes(app: FastifyInstance, deps: InteractionDeps): void {
  const base = `${deps.mountPath}/interaction/:uid`;
  const csrf = { preHandler: app.csrfProtection, schema: { hide: true }, onSend: widenFormAction };

  async function details(req: FastifyRequest, reply: FastifyReply): Promise<Details> {
    try {
      const d = await deps.provider().interactionDetails(req.raw, reply.raw);
      if (d.uid !== (req.params as { uid?: string }).uid) throw new Error('uid mismatch');
      return d;
    } catch (err) {
      // Redis or PostgreSQL down is not an expired sign-in: 503 from the error handler, and the person tries again.
      if (storeFailure(err)) throw err;
      throw new AppError('oidc.interaction_expired');
    }
  }

  /**
   * Hands the result to the library (provider.interactionResult: it stores the result on the interaction and answers
   * where the browser goes next, the authorization's resume), and sends the browser there.
   */
  async function finish(
    req: FastifyRequest,
    reply: FastifyReply,
    result: Parameters<Provider['interactionResult']>[2],
  ): Promise<FastifyReply> {
    const returnTo = await deps.provider().interactionResult(req.raw, reply.raw, result, {
      mergeWithLastSubmission: false,
    });
    return reply.redirect(returnTo, 303);
  }

  /** Where the person stands: signed in well enough for this request (and which acr value they meet), or not. */
  /**
   * Whether the person's sign-in is recent enough for this request (OpenID Connect Core §3.1.2.1): prompt=login (and
   * max_age=0, the same) needs a sign-in made for this request, after it began; max_age=N one within the last N
   * seconds — or one made for this request.
   */
  function freshEnough(d: Details, session: WebSession, askedAt: number | null): boolean {
    const signedInAt = session.authenticatedAt.getTime() / 1000;
    // A sign-in made for this request is one after this interaction sent the person to sign in (it noted when, to the
    // millisecond, in a cookie). The interaction's own iat is in whole seconds: a sign-in a moment before the request,
    // in the same second, would pass for one made for it.
    const duringThisRequest = askedAt !== null && signedInAt * 1000 > askedAt;
    const reasons = (d.prompt.reasons ?? []) as string[];
    const maxAge = d.params.max_age === undefined ? undefined : Number(d.params.max_age);
    if (reasons.includes('login_prompt') || maxAge === 0) return duringThisRequest;
    if (maxAge === undefined || !Number.isFinite(maxAge)) return true;
    return duringThisRequest || signedInAt >= deps.clock.now().getTime() / 1000 - maxAge;
  }

  /** When this interaction sent the person to sign in again (ms), from the cookie it set; null if it has not. */
  function reauthAskedAt(req: FastifyRequest, d: Details): number | null {
    const [uid, at] = String(req.cookies[REAUTH_COOKIE] ?? '').split('.');
    return uid === d.uid && /^[0-9]{13}$/.test(at ?? '') ? Number(at) : null;
  }

  function assess(d: Details, session: WebSession | null, client: unknown, askedAt: number | null = null) {
    const floor = minimumAal(client);
    const { candidates, unsupported } = acrCandidates(d.params.acr_values as string | undefined, floor);
    const acr =
      session && freshEnough(d, session, askedAt) ? candidates.find((c) => meets(c, session, floor)) : undefined;
    return { candidates, unsupported, acr, floor };
  }

  async function complete(
    req: FastifyRequest,
    reply: FastifyReply,
    d: Details,
    session: WebSession,
    acr: string,
    personRoleId: string | null,
  ) {
    const provider = deps.provider();
    const clientId = String(d.params.client_id);
    const grant = d.grantId
      ? ((await provider.Grant.find(d.grantId)) ?? new provider.Grant({ accountId: session.userId, clientId }))
      : new provider.Grant({ accountId: session.userId, clientId });
    if (grant.accountId !== session.userId) throw new AppError('oidc.interaction_expired');
    grant.addOIDCScope(String(d.params.scope ?? 'openid'));
    const grantId = await grant.save();
    // The sign-in itself is in the audit trail (session.started); which relying party it was used for is logged, off
    // the audit chain's lock, so sign-ins at relying parties do not queue behind each other.
    await saveGrantContext(deps.repos, grantId, session.userId, { aal: session.aal, personRoleId });
    req.log.info(
      {
        event: 'oidc.signed_in',
        userId: session.userId,
        clientId,
        acr,
        amr: session.amr,
        selectedRoleId: personRoleId,
      },
      'relying party sign-in',
    );
    return finish(req, reply, {
      login: {
        accountId: session.userId,
        acr,
        amr: session.amr,
        ts: Math.floor(session.authenticatedAt.getTime() / 1000),
        remember: true,
      },
      consent: { grantId },
    });
  }

  app.get(base, { schema: { hide: true }, onSend: widenFormAction }, async (req, reply) => {
    const d = await details(req, reply);
    allowFormRedirect(req, d);
    const client = await deps.provider().Client.find(String(d.params.client_id));
    const session = await sessionOf(deps, req);
    const { candidates, unsupported, acr, floor } = assess(d, session, client, reauthAskedAt(req, d));
    if (unsupported) {
      // OpenID Connect Unmet Authentication Requirements 1.0: an error the relying party can act on.
      return finish(req, reply, {
        error: 'unmet_authentication_requirements',
        error_description: 'none of the requested acr_values is offered by this OpenID Provider',
      });
    }
    if (!session || !acr) {
      // Step up (or sign in): ask for the weakest level that meets the relying party's first choice, through an
      // upstream identity provider when that is the only way to meet it (AAL2_NHSMAIL).
      const stepUp = stepUpFor(candidates[0]!, floor);
      const query = `${stepUp.aal === 3 ? '&aal=3' : ''}${stepUp.via === 'upstream' ? '&via=upstream' : ''}`;
      if (reauthAskedAt(req, d) === null) {
        reply.setCookie(REAUTH_COOKIE, `${d.uid}.${Date.now()}`, {
          path: deps.mountPath,
          httpOnly: true,
          sameSite: 'lax',
          secure: deps.config.PUBLIC_URL.startsWith('https://'),
          maxAge: 3_600,
        });
      }
      return reply.redirect(`/signin?return=${encodeURIComponent(req.url)}${query}`, 303);
    }
    if (!asksForRole(d.params.scope)) return complete(req, reply, d, session, acr, null);
    const roles = await effectiveRoles(deps.repos, session.userId, deps.clock.now());
    if (roles.length === 0) {
      return reply.page(
        'oidc-no-role.njk',
        {
          title: 'You have no role profile',
          uid: d.uid,
          mountPath: deps.mountPath,
          clientName: clientNameOf(client) ?? undefined,
        },
        403,
      );
    }
    if (roles.length === 1) return complete(req, reply, d, session, acr, roles[0]!.personRoleId);
    return renderRoles(reply, d, roles, (req.query as { q?: string }).q, clientNameOf(client), session.userId);
  });

  function clientNameOf(client: unknown): string | null {
    const name = (client as { clientName?: unknown } | undefined)?.clientName;
    return typeof name === 'string' && name ? name : null;
  }

  /** Roles as people read them: the job role's own name, not the quoted national triple (DOMAIN §4). */
  function readable(roles: EffectiveRole[]) {
    return roles.map((r) => ({ ...r, jobRoles: r.jobRoles.map((j) => ({ ...j, title: jobRoleTitle(j.roleName) })) }));
  }

  async function renderRoles(
    reply: FastifyReply,
    d: Details,
    roles: EffectiveRole[],
    q: string | undefined,
    clientName: string | null,
    userId: string,
  ) {
    const term = typeof q === 'string' ? q.trim().toLowerCase().slice(0, 100) : '';
    const shown = term
      ? roles.filter((r) =>
          `${r.positionName} ${r.orgName} ${r.odsCode} ${r.jobRoles.map((j) => j.roleName).join(' ')}`
            .toLowerCase()
            .includes(term),
        )
      : roles;
    return reply.page('oidc-select-role.njk', {
      title: 'Choose your role',
      uid: d.uid,
      mountPath: deps.mountPath,
      roles: readable(shown),
      total: roles.length,
      searchable: roles.length > SEARCH_ABOVE,
      q: term,
      clientName,
      signedIn: true,
      signedInAs: await signedInAs(deps.repos, userId),
    });
  }

  app.post(`${base}/role`, csrf, async (req, reply) => {
    const d = await details(req, reply);
    allowFormRedirect(req, d);
    const session = await sessionOf(deps, req);
    const client = await deps.provider().Client.find(String(d.params.client_id));
    const { acr } = assess(d, session, client, reauthAskedAt(req, d));
    if (!session || !acr) return reply.redirect(`${deps.mountPath}/interaction/${d.uid}`, 303);
    const chosen = String(((req.body ?? {}) as Record<string, unknown>).personRoleId ?? '');
    const roles = await effectiveRoles(deps.repos, session.userId, deps.clock.now());
    if (!roles.some((r) => r.personRoleId === chosen)) {
      return reply.page(
        'oidc-select-role.njk',
        {
          title: 'Choose your role',
          uid: d.uid,
          mountPath: deps.mountPath,
          roles: readable(roles),
          total: roles.length,
          searchable: roles.length > SEARCH_ABOVE,
          clientName: clientNameOf(client),
          signedIn: true,
          signedInAs: await signedInAs(deps.repos, session.userId),
          errors: [{ field: 'role-list', message: 'Choose one of your roles' }],
        },
        400,
      );
    }
    return complete(req, reply, d, session, acr, chosen);
  });

  app.post(`${base}/abort`, csrf, async (req, reply) => {
    await details(req, reply);
    return finish(req, reply, {
      error: 'access_denied',
      error_description: 'The person has no role profile in effect',
    });
  });
}
