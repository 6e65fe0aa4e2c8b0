import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../domain/errors.ts';
import { contextFor, sessionOf, type WebDeps } from '../http/deps.ts';
import { signedInAs } from '../http/signed-in.ts';
import { clearSessionCookie, clientInfo, SESSION_COOKIE, safeReturnPath, setSessionCookie } from '../http/web.ts';
import { explainBelowAal3 } from '../services/assurance-explained.ts';
import { finishCardSignIn, startCardChallenge } from '../services/cards.ts';
import { endSession, type SignInResult, startSession } from '../services/sessions.ts';
import { signInWithTotp } from '../services/totp.ts';
import { finishWebauthnAuthentication, startWebauthnAuthentication } from '../services/webauthn.ts';
import { upstreamChoices, upstreamOrigins } from './upstream.ts';

/**
 * The sign-in pages: smartcard (through the card agent), WebAuthn (security keys, Windows Hello, passkeys) and
 * authenticator apps. A successful sign-in starts a fresh session at the level the method reached; signing in again
 * with a stronger method steps the session up. `?aal=3` asks for AAL3 (step-up).
 */
export function registerSignInRoutes(app: FastifyInstance, deps: WebDeps): void {
  const csrf = { preHandler: app.csrfProtection, schema: { hide: true } };

  /** During an OpenID Connect sign-in, the name of the service the person is signing in to. */
  async function relyingPartyName(returnTo: string): Promise<string | null> {
    const prefix = `${deps.config.OIDC_PATH}/interaction/`;
    const uid = returnTo.startsWith(prefix) ? returnTo.slice(prefix.length) : '';
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(uid) || !app.hasDecorator('oidc')) return null;
    try {
      const interaction = await app.oidc.provider().Interaction.find(uid);
      const clientId = interaction?.params?.client_id;
      if (typeof clientId !== 'string') return null;
      const client = await app.oidc.provider().Client.find(clientId);
      return (client as { clientName?: string } | undefined)?.clientName ?? null;
    } catch {
      return null;
    }
  }

  /** During an OpenID Connect sign-in, the relying party the flow will end at (its redirect URI's origin). */
  async function relyingPartyOrigins(returnTo: string): Promise<string[]> {
    const prefix = `${deps.config.OIDC_PATH}/interaction/`;
    const uid = returnTo.startsWith(prefix) ? returnTo.slice(prefix.length) : '';
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(uid) || !app.hasDecorator('oidc')) return [];
    try {
      const interaction = await app.oidc.provider().Interaction.find(uid);
      const uri = interaction?.params?.redirect_uri;
      return typeof uri === 'string' ? [new URL(uri).origin] : [];
    } catch {
      return [];
    }
  }

  app.get('/signin', { schema: { hide: true } }, async (req, reply) => {
    const q = req.query as Record<string, unknown>;
    const session = await sessionOf(deps, req);
    const returnTo = safeReturnPath(q.return);
    const upstreamIdps = await upstreamChoices(deps);
    const requiredAal = q.aal === '3' ? 3 : 2;
    // Signed in, but below what the page asked for (the console, an AAL3 relying party): say which level was
    // reached, why, and what to do — rather than the same sign-in page again with no word (issue #14).
    const below =
      session && session.aal < requiredAal
        ? {
            reached: session.aal,
            needed: requiredAal,
            ...(await explainBelowAal3(deps.repos, deps.rp, session.authenticatorId)),
            demo: deps.rp.demo === true,
          }
        : null;
    return reply.page('signin.njk', {
      title: 'Sign in',
      returnTo,
      requiredAal,
      below,
      // A relying party asked for AAL2_NHSMAIL: only the organisations' own sign-in services meet it.
      onlyUpstream: q.via === 'upstream',
      upstreamIdps,
      signedIn: session !== null,
      signedInAs: session ? await signedInAs(deps.repos, session.userId) : undefined,
      relyingParty: await relyingPartyName(returnTo),
      // The upstream sign-in buttons are forms whose redirects end at the provider.
      formActionOrigins: [...(await relyingPartyOrigins(returnTo)), ...upstreamOrigins(upstreamIdps)],
    });
  });

  async function complete(req: FastifyRequest, reply: FastifyReply, result: SignInResult, returnTo: unknown) {
    const ctx = contextFor(deps, req);
    const { token } = await ctx.transaction((tx) =>
      startSession(tx, ctx, result, req.cookies[SESSION_COOKIE] ?? null, clientInfo(req)),
    );
    setSessionCookie(reply, token, deps.config.PUBLIC_URL);
    return safeReturnPath(returnTo);
  }

  app.post('/signin/totp', csrf, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    try {
      const result = await signInWithTotp(contextFor(deps, req), { userId: body.userId, code: body.code, ip: req.ip });
      return reply.redirect(await complete(req, reply, result, body.return), 303);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      return reply.page(
        'signin.njk',
        {
          title: 'Sign in',
          returnTo: safeReturnPath(body.return),
          userId: typeof body.userId === 'string' ? body.userId.slice(0, 12) : '',
          errors: [{ field: 'code', message: err.message }],
          formActionOrigins: await relyingPartyOrigins(safeReturnPath(body.return)),
        },
        err.status,
      );
    }
  });

  app.post('/signin/webauthn/options', csrf, async (req) => {
    return startWebauthnAuthentication(contextFor(deps, req), deps.rp, {});
  });

  app.post('/signin/webauthn/verify', csrf, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const result = await finishWebauthnAuthentication(contextFor(deps, req), deps.rp, {
      challengeId: body.challengeId,
      response: body.response,
    });
    return { redirect: await complete(req, reply, result, body.return), aal: result.aal, amr: result.amr };
  });

  app.post('/signin/card/challenge', csrf, async (req) => startCardChallenge(contextFor(deps, req), 'signin'));

  app.post('/signin/card/verify', csrf, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const result = await finishCardSignIn(contextFor(deps, req), deps.card, body);
    return { redirect: await complete(req, reply, result, body.return), aal: result.aal, amr: result.amr };
  });

  app.post('/signout', csrf, async (req, reply) => {
    const token = req.cookies[SESSION_COOKIE];
    if (token) await endSession(deps.repos, token, deps.clock.now());
    // Signing out of OpenCIS signs this browser out of the relying parties too (their single sign-on session ends and
    // they get back-channel logout tokens).
    const oidcSession = req.cookies._session;
    if (oidcSession && app.hasDecorator('oidc'))
      await app.oidc.endBrowserSession(oidcSession, 'signed_out').catch(() => {});
    clearSessionCookie(reply);
    return reply.redirect('/signin', 303);
  });
}
