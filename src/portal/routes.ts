import type { FastifyInstance } from 'fastify';
import { jobRoleTitle } from '../domain/access/job-role-name.ts';
import { authenticationMethods } from '../domain/credentials/assurance.ts';
import { AppError } from '../domain/errors.ts';
import { contextFor, personActor, requireApiSession, requirePageSession, type WebDeps } from '../http/deps.ts';
import { limitWrongSecrets } from '../http/secret-limits.ts';
import { signedInAs } from '../http/signed-in.ts';
import { clientInfo, SESSION_COOKIE, setSessionCookie } from '../http/web.ts';
import { effectiveRoles } from '../services/access.ts';
import { explainBelowAal3 } from '../services/assurance-explained.ts';
import { cardsOf, completeSelfServiceUnlock, requestSelfServiceUnlock } from '../services/cards.ts';
import { consumeInvitation, peekInvitation, startEnrolment, verifyEnrolment } from '../services/enrolment.ts';
import { startSession } from '../services/sessions.ts';
import { confirmTotpEnrolment, removeTotp, startTotpEnrolment, totpAuthenticatorsOf } from '../services/totp.ts';
import { listUpstreamIdps } from '../services/upstream-idps.ts';
import { upstreamLinksOf, worksWhereProviderIsOffered } from '../services/upstream-links.ts';
import {
  finishWebauthnRegistration,
  removeWebauthnCredential,
  startWebauthnRegistration,
  type WebauthnKind,
  webauthnCredentialsOf,
} from '../services/webauthn.ts';
import { upstreamOrigins } from '../signin/upstream.ts';
import { withRenewal } from './renew.ts';

/**
 * The self-service portal: a person's own details, role profiles, cards and authenticators; self-service enrolment of
 * AAL2 authenticators; self-service card unlock. An enrolment-only session (AAL1) may add AAL2 authenticators and see
 * nothing else; adding an AAL3 authenticator needs an AAL3 session (or an RA).
 */
export function registerPortalRoutes(app: FastifyInstance, deps: WebDeps): void {
  const csrf = { preHandler: app.csrfProtection, schema: { hide: true } };
  const hidden = { schema: { hide: true } };

  app.get('/account', hidden, async (req, reply) => {
    const session = await requirePageSession(deps, req, reply, 1);
    if (!session) return reply;
    const ctx = contextFor(deps, req, personActor(session));
    const person = await deps.repos.people.findPersonByUserId(session.userId);
    if (!person) throw new AppError('person.not_found');
    const idps = await listUpstreamIdps(deps.repos, 'active');
    const links = await upstreamLinksOf(deps.repos, session.userId);
    const linkable = [];
    for (const idp of idps) {
      if (links.some((l) => l.idpId === idp.idpId)) continue;
      if (await worksWhereProviderIsOffered(deps.repos, idp, session.userId, deps.clock.now())) linkable.push(idp);
    }
    const roles = session.aal >= 2 ? await effectiveRoles(deps.repos, session.userId, deps.clock.now()) : [];
    return reply.page('account.njk', {
      upstreamLinks: links.map((l) => ({ ...l, idpName: idps.find((i) => i.idpId === l.idpId)?.name ?? l.idpId })),
      linkableIdps: linkable,
      // Linking starts with a form whose redirect ends at the provider.
      formActionOrigins: upstreamOrigins(linkable),
      title: 'Your account',
      signedIn: true,
      signedInAs: await signedInAs(deps.repos, session.userId),
      done:
        (req.query as Record<string, unknown>).done === 'removed'
          ? 'Removed. Sessions opened with it have ended.'
          : undefined,
      session,
      person,
      roles: roles.map((r) => ({ ...r, jobRoles: r.jobRoles.map((j) => ({ ...j, title: jobRoleTitle(j.roleName) })) })),
      cards: session.aal >= 2 ? withRenewal(await cardsOf(deps.repos, session.userId), deps.clock.now()) : [],
      // A key at AAL2 says why (its maker is not trusted, it is a synced passkey…): issue #14.
      credentials: await Promise.all(
        (await webauthnCredentialsOf(ctx, session.userId)).map(async (c) => ({
          ...c,
          why: c.aal < 3 ? (await explainBelowAal3(deps.repos, deps.rp, `webauthn:${c.credentialId}`)).why : null,
        })),
      ),
      totps: await totpAuthenticatorsOf(ctx, session.userId),
    });
  });

  app.post('/account/webauthn/options', csrf, async (req) => {
    const session = await requireApiSession(deps, req, 1);
    const body = (req.body ?? {}) as Record<string, unknown>;
    const kind: WebauthnKind = body.kind === 'security_key' || body.kind === 'platform' ? body.kind : 'passkey';
    return startWebauthnRegistration(contextFor(deps, req, personActor(session)), deps.rp, {
      userId: session.userId,
      kind,
    });
  });

  app.post('/account/webauthn/verify', csrf, async (req) => {
    const session = await requireApiSession(deps, req, 1);
    const body = (req.body ?? {}) as Record<string, unknown>;
    const credential = await finishWebauthnRegistration(contextFor(deps, req, personActor(session)), deps.rp, {
      userId: session.userId,
      challengeId: body.challengeId,
      response: body.response,
      nickname: typeof body.nickname === 'string' ? body.nickname : undefined,
      callerAal: session.aal,
    });
    return { credential };
  });

  app.post('/account/totp/start', csrf, async (req, reply) => {
    const session = await requirePageSession(deps, req, reply, 1);
    if (!session) return reply;
    const started = await startTotpEnrolment(contextFor(deps, req, personActor(session)), {
      userId: session.userId,
      issuer: 'OpenCIS',
    });
    return reply.page('totp-setup.njk', {
      title: 'Add an authenticator app',
      signedIn: true,
      signedInAs: await signedInAs(deps.repos, session.userId),
      ...started,
    });
  });

  app.post('/account/totp/confirm', csrf, async (req, reply) => {
    const session = await requirePageSession(deps, req, reply, 1);
    if (!session) return reply;
    const body = (req.body ?? {}) as Record<string, unknown>;
    const totpId = typeof body.totpId === 'string' ? body.totpId : '';
    try {
      await confirmTotpEnrolment(contextFor(deps, req, personActor(session)), {
        userId: session.userId,
        totpId,
        code: body.code,
        ip: req.ip,
      });
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== 'totp.invalid_code') throw err;
      return reply.page(
        'totp-setup.njk',
        {
          title: 'Add an authenticator app',
          signedIn: true,
          signedInAs: await signedInAs(deps.repos, session.userId),
          totpId,
          secret: '(as before)',
          uri: '',
          errors: [{ field: 'code', message: err.message }],
        },
        400,
      );
    }
    return reply.redirect('/account', 303);
  });

  app.post('/account/authenticators/remove', csrf, async (req, reply) => {
    const session = await requirePageSession(deps, req, reply, 2);
    if (!session) return reply;
    const id = String(((req.body ?? {}) as Record<string, unknown>).id ?? '');
    const ctx = contextFor(deps, req, personActor(session));
    if (id.startsWith('webauthn:')) await removeWebauthnCredential(ctx, session.userId, id.slice(9));
    else if (id.startsWith('totp:')) await removeTotp(ctx, session.userId, id.slice(5));
    else throw new AppError('authenticator.not_found');
    return reply.redirect('/account?done=removed', 303);
  });

  // Self-service enrolment: verified email + one-time code + NI number → enrolment-only session.
  app.get('/enrol', hidden, async (_req, reply) => reply.page('enrol.njk', { title: 'Set up a way to sign in' }));

  app.post('/enrol/start', csrf, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    try {
      await startEnrolment(contextFor(deps, req), deps.outbox, { email: body.email, ip: req.ip });
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== 'request.invalid') throw err;
      return reply.page(
        'enrol.njk',
        {
          title: 'Set up a way to sign in',
          errors: [{ field: 'email', message: 'Enter an email address, like name@example.nhs.uk' }],
        },
        400,
      );
    }
    return reply.page('enrol.njk', {
      title: 'Set up a way to sign in',
      step: 'code',
      email: String(body.email).trim().toLowerCase(),
    });
  });

  app.post('/enrol/verify', csrf, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    try {
      const result = await verifyEnrolment(contextFor(deps, req), {
        email: body.email,
        code: body.code,
        niNumber: body.niNumber,
        ip: req.ip,
      });
      const ctx = contextFor(deps, req);
      const { token } = await ctx.transaction((tx) =>
        startSession(tx, ctx, result, req.cookies[SESSION_COOKIE] ?? null, clientInfo(req)),
      );
      setSessionCookie(reply, token, deps.config.PUBLIC_URL);
      return reply.redirect('/account', 303);
    } catch (err) {
      if (!(err instanceof AppError) || err.status >= 500) throw err;
      return reply.page(
        'enrol.njk',
        {
          title: 'Set up a way to sign in',
          step: 'code',
          email: typeof body.email === 'string' ? body.email : '',
          errors: [{ field: 'code', message: err.message }],
        },
        err.status,
      );
    }
  });

  // One-time enrolment links (opencis bootstrap, RA invitations): register a security key at up to the invited level.
  // The link's token is a secret: wrong ones count against the caller's address.
  const invitation = limitWrongSecrets(deps, 'enrolment_invitation', ['card.grant_invalid']);
  app.get('/enrol/invite', { ...hidden, ...invitation }, async (req, reply) => {
    const token = (req.query as Record<string, unknown>).t;
    const invite = await peekInvitation(contextFor(deps, req), token);
    const person = await deps.repos.people.findPersonByUserId(invite.userId);
    return reply.page('invite.njk', { title: 'Set up your security key', token, person, maxAal: invite.maxAal });
  });

  app.post('/enrol/invite/options', { ...csrf, ...invitation }, async (req) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const invite = await peekInvitation(contextFor(deps, req), body.token);
    const kind: WebauthnKind = body.kind === 'platform' ? 'platform' : 'security_key';
    return startWebauthnRegistration(contextFor(deps, req), deps.rp, { userId: invite.userId, kind });
  });

  app.post('/enrol/invite/verify', { ...csrf, ...invitation }, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const ctx = contextFor(deps, req);
    const invite = await peekInvitation(ctx, body.token);
    const invitee = contextFor(deps, req, { kind: 'person', id: invite.userId, userId: invite.userId });
    const credential = await finishWebauthnRegistration(invitee, deps.rp, {
      userId: invite.userId,
      challengeId: body.challengeId,
      response: body.response,
      callerAal: invite.maxAal,
    });
    try {
      await consumeInvitation(ctx, body.token as string);
    } catch (err) {
      await removeWebauthnCredential(invitee, invite.userId, credential.credentialId);
      throw err;
    }
    const { token } = await ctx.transaction((tx) =>
      startSession(
        tx,
        ctx,
        {
          userId: invite.userId,
          aal: credential.aal,
          amr: [authenticationMethods[credential.aal === 3 ? credential.kind : 'passkey'].amr],
          authenticatorId: `webauthn:${credential.credentialId}`,
        },
        req.cookies[SESSION_COOKIE] ?? null,
        clientInfo(req),
      ),
    );
    setSessionCookie(reply, token, deps.config.PUBLIC_URL);
    return { credential, redirect: '/account' };
  });

  // Self-service card unlock: user ID → code to verified contact → code + new passcode (passcode to the agent only).
  app.get('/card/unlock', hidden, async (_req, reply) =>
    reply.page('card-unlock.njk', { title: 'Unlock your smartcard' }),
  );

  app.post('/card/unlock/request', csrf, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    try {
      await requestSelfServiceUnlock(contextFor(deps, req), deps.outbox, { userId: body.userId, ip: req.ip });
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== 'person.invalid_user_id') throw err;
      return reply.page(
        'card-unlock.njk',
        {
          title: 'Unlock your smartcard',
          errors: [{ field: 'userId', message: 'Enter the 12-digit user ID printed on your card' }],
        },
        400,
      );
    }
    return reply.page('card-unlock.njk', { title: 'Unlock your smartcard', step: 'code', userId: body.userId });
  });

  app.post('/card/unlock/verify', csrf, async (req) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const { grant } = await completeSelfServiceUnlock(contextFor(deps, req), {
      userId: body.userId,
      code: body.code,
      ip: req.ip,
    });
    return { grant };
  });
}
