import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { type PendingFlow, UpstreamClient } from '../authenticators/upstream/openid.ts';
import { AppError } from '../domain/errors.ts';
import { contextFor, personActor, requirePageSession, sessionOf, type WebDeps } from '../http/deps.ts';
import { clientInfo, SESSION_COOKIE, safeReturnPath, setSessionCookie } from '../http/web.ts';
import { startSession } from '../services/sessions.ts';
import { activeUpstreamProvider, listUpstreamIdps, type UpstreamIdp } from '../services/upstream-idps.ts';
import { linkUpstreamAccount, signInWithUpstream, unlinkUpstreamAccount } from '../services/upstream-links.ts';

/**
 * Signing in through an organisation's upstream identity provider (CIS2's AAL2_NHSMAIL), and linking an account there
 * to one's own record. The browser is sent to the provider with state, nonce and PKCE, kept sealed in a short-lived
 * cookie bound to this browser; the answer comes back to /signin/upstream/callback, where the ID token is verified
 * (authenticators/upstream/openid.ts) before anything else is done. Every failure is a page saying what to do — the
 * provider being down included — never a 500.
 */
const FLOW_COOKIE = 'opencis_upstream';
const FLOW_PURPOSE = 'upstream.flow';
const FLOW_TTL_S = 600;
const CALLBACK_PATH = '/signin/upstream/callback';

interface Flow extends PendingFlow {
  idpId: string;
  purpose: 'signin' | 'link';
  /** Where to go after signing in (a path on this server). */
  returnTo: string;
  /** For a link: the person signed in when it was started (the account is linked to them only). */
  userId?: string;
  exp: number;
}

const flowSchema = z.object({
  idpId: z.string(),
  purpose: z.enum(['signin', 'link']),
  returnTo: z.string(),
  userId: z.string().optional(),
  state: z.string(),
  nonce: z.string(),
  verifier: z.string(),
  exp: z.number(),
});

/** The origins a form on this page may end at after redirects: the providers' (their issuers' origins). */
export function upstreamOrigins(idps: readonly UpstreamIdp[]): string[] {
  return [...new Set(idps.map((i) => new URL(i.issuer).origin))];
}

export function registerUpstreamRoutes(app: FastifyInstance, deps: WebDeps): void {
  const csrf = { preHandler: app.csrfProtection, schema: { hide: true } };
  const upstream = new UpstreamClient();
  const redirectUri = `${deps.config.PUBLIC_URL}${CALLBACK_PATH}`;
  const secure = deps.config.PUBLIC_URL.startsWith('https://');

  function problem(reply: FastifyReply, err: AppError, back: string): FastifyReply {
    return reply.page(
      'error.njk',
      { title: 'Sign-in problem', heading: 'You are not signed in', message: err.message, code: err.code, back },
      err.status,
    );
  }

  async function begin(
    req: FastifyRequest,
    reply: FastifyReply,
    idpId: string,
    flow: Pick<Flow, 'purpose' | 'returnTo' | 'userId'>,
  ): Promise<FastifyReply> {
    const idp = await activeUpstreamProvider(contextFor(deps, req), idpId);
    const { url, pending } = await upstream.start(idp, redirectUri);
    const sealed = deps.sealer.seal(
      JSON.stringify({ ...flow, ...pending, idpId: idp.idpId, exp: Math.floor(Date.now() / 1000) + FLOW_TTL_S }),
      FLOW_PURPOSE,
    );
    reply.setCookie(FLOW_COOKIE, sealed, {
      path: '/signin/upstream',
      httpOnly: true,
      sameSite: 'lax',
      secure,
      maxAge: FLOW_TTL_S,
    });
    req.log.info({ event: 'upstream.started', idpId: idp.idpId, purpose: flow.purpose }, 'upstream sign-in started');
    return reply.redirect(url, 303);
  }

  app.post('/signin/upstream/:idpId', csrf, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const returnTo = safeReturnPath(body.return);
    try {
      return await begin(req, reply, String((req.params as { idpId?: string }).idpId ?? ''), {
        purpose: 'signin',
        returnTo,
      });
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      return problem(reply, err, `/signin?return=${encodeURIComponent(returnTo)}`);
    }
  });

  app.post('/account/upstream/:idpId/link', csrf, async (req, reply) => {
    const session = await requirePageSession(deps, req, reply, 1);
    if (!session) return reply;
    try {
      return await begin(req, reply, String((req.params as { idpId?: string }).idpId ?? ''), {
        purpose: 'link',
        returnTo: '/account',
        userId: session.userId,
      });
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      return problem(reply, err, '/account');
    }
  });

  app.post('/account/upstream/remove', csrf, async (req, reply) => {
    const session = await requirePageSession(deps, req, reply, 2);
    if (!session) return reply;
    const linkId = String(((req.body ?? {}) as Record<string, unknown>).linkId ?? '').slice(0, 40);
    await unlinkUpstreamAccount(contextFor(deps, req, personActor(session)), session.userId, linkId);
    return reply.redirect('/account', 303);
  });

  app.get(CALLBACK_PATH, { schema: { hide: true } }, async (req, reply) => {
    const sealed = req.cookies[FLOW_COOKIE];
    reply.clearCookie(FLOW_COOKIE, { path: '/signin/upstream' });
    let flow: Flow | undefined;
    try {
      flow = readFlow(sealed);
      const state = (req.query as Record<string, unknown>).state;
      if (typeof state !== 'string' || state !== flow.state) throw new AppError('upstream.flow_invalid');
      const idp = await activeUpstreamProvider(contextFor(deps, req), flow.idpId);
      const { subject } = await upstream.finish(idp, new URL(req.url, deps.config.PUBLIC_URL), flow);
      if (flow.purpose === 'link') {
        const session = await sessionOf(deps, req);
        if (!session || session.userId !== flow.userId) throw new AppError('upstream.flow_invalid');
        await linkUpstreamAccount(contextFor(deps, req, personActor(session)), idp, {
          userId: session.userId,
          subject,
        });
        return reply.redirect('/account', 303);
      }
      const ctx = contextFor(deps, req);
      const result = await signInWithUpstream(ctx, idp, subject);
      const { token } = await ctx.transaction((tx) =>
        startSession(tx, ctx, result, req.cookies[SESSION_COOKIE] ?? null, clientInfo(req)),
      );
      setSessionCookie(reply, token, deps.config.PUBLIC_URL);
      return reply.redirect(safeReturnPath(flow.returnTo), 303);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      req.log.warn({ event: 'upstream.refused', code: err.code, idpId: flow?.idpId }, 'upstream sign-in refused');
      const back =
        flow?.purpose === 'link' ? '/account' : `/signin?return=${encodeURIComponent(flow?.returnTo ?? '/account')}`;
      return problem(reply, err, back);
    }
  });

  function readFlow(sealed: string | undefined): Flow {
    if (!sealed || sealed.length > 4_000) throw new AppError('upstream.flow_invalid');
    let parsed: unknown;
    try {
      parsed = JSON.parse(deps.sealer.open(sealed, FLOW_PURPOSE).toString());
    } catch {
      throw new AppError('upstream.flow_invalid');
    }
    const flow = flowSchema.safeParse(parsed);
    if (!flow.success || flow.data.exp < Math.floor(Date.now() / 1000)) throw new AppError('upstream.flow_invalid');
    return flow.data;
  }
}

/** The providers to offer on the sign-in page. */
export async function upstreamChoices(deps: WebDeps): Promise<UpstreamIdp[]> {
  return listUpstreamIdps(deps.repos, 'active');
}
