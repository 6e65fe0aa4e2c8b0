import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError } from '../domain/errors.ts';
import { isNationalId } from '../domain/identity/user-id.ts';
import { authorize } from '../domain/policy.ts';
import { csrfCheck, raActorOf } from '../http/api-auth.ts';
import { contextFor, requireApiSession, type WebDeps } from '../http/deps.ts';
import { security } from '../http/openapi.ts';
import { proofField } from '../http/validation.ts';
import {
  type CancelReason,
  cancelCard,
  cardsOf,
  getCard,
  passcodeGrant,
  renewCardAtDesk,
  renewCardCertificate,
  startCardChallenge,
  startCardIssue,
  unlockGrant,
} from '../services/cards.ts';
import { createEnrolmentInvitation } from '../services/enrolment.ts';
import type { WebSession } from '../services/sessions.ts';
import { personTarget } from '../services/targets.ts';
import { removeTotp, totpAuthenticatorsOf } from '../services/totp.ts';
import { parseInput } from '../services/validation.ts';
import { removeWebauthnCredential, webauthnCredentialsOf } from '../services/webauthn.ts';

/**
 * The authenticator lifecycle API (for the RA console and scripts). Callers are signed-in RA staff at AAL3; what each
 * may do, to whom, is decided by the policy module from their role profiles. Cookie-authenticated calls carry the CSRF
 * token in a `csrf-token` header.
 */
const cardIssueBody = z.object({ kind: z.enum(['physical', 'virtual']).default('physical') });
const unlockBody = z.object({ reason: z.string().trim().min(1).max(500) });
const cancelBody = z.object({ reason: z.enum(['lost', 'stolen', 'damaged', 'leaver', 'replaced', 'other']) });
const invitationBody = z.object({ maxAal: z.union([z.literal(2), z.literal(3)]).default(3) });
/**
 * A card's proof of possession: the service parses it, and audits a malformed one as a refused renewal
 * (`card.renewal_refused`), so the route documents its shape and leaves the refusal to it (proofBody).
 */
const proofFields = {
  challengeId: proofField({ type: 'string' }),
  certificate: proofField({
    type: 'string',
    description: 'the certificate on the card (base64 DER), as the card agent reads it',
  }),
  signature: proofField({ type: 'string', description: 'the card’s signature over the challenge (base64url)' }),
  algorithm: proofField({ type: 'string', enum: ['ES256', 'RS256'] }),
};
const proofRequired = ['challengeId', 'certificate', 'signature', 'algorithm'];
const deskRenewalBody = z
  .object({
    ...proofFields,
    holderSeen: proofField({ type: 'boolean', description: 'the RA has checked the holder in person' }),
  })
  .meta({ required: [...proofRequired, 'holderSeen'] });
const selfRenewalBody = z.object(proofFields).meta({ required: proofRequired });

export function registerAuthenticatorApi(app: FastifyInstance, deps: WebDeps): void {
  const tags = ['authenticators'];
  // The holder's own card: CSRF, then a session at AAL2, before route validation (the RA routes have theirs from the
  // API plugin's authenticateRaCalls).
  const csrf = csrfCheck(app);
  const holders = new WeakMap<FastifyRequest, WebSession>();
  const holder = {
    preValidation: async (req: FastifyRequest, reply: FastifyReply) => {
      await csrf(req, reply);
      holders.set(req, await requireApiSession(deps, req, 2));
    },
  };
  const holderSession = async (req: FastifyRequest) => holders.get(req) ?? requireApiSession(deps, req, 2);

  async function raContext(req: FastifyRequest) {
    return contextFor(deps, req, await raActorOf(app, deps, req));
  }
  function userIdParam(req: FastifyRequest): string {
    const userId = (req.params as { userId?: string }).userId ?? '';
    if (!isNationalId(userId)) throw new AppError('person.invalid_user_id');
    return userId;
  }
  function cardIdParam(req: FastifyRequest): string {
    const cardId = (req.params as { cardId?: string }).cardId ?? '';
    if (!/^[0-9]{16}$/.test(cardId)) throw new AppError('card.not_found');
    return cardId;
  }

  app.get(
    '/api/v1/people/:userId/authenticators',
    {
      schema: {
        tags,
        security: security.raRead,
        summary: "A person's cards, security keys, passkeys and authenticator apps",
      },
    },
    async (req) => {
      const ctx = await raContext(req);
      const userId = userIdParam(req);
      authorize(ctx.actor, 'person:read', await personTarget(deps.repos, deps.clock, userId));
      return {
        cards: await cardsOf(deps.repos, userId),
        webauthn: await webauthnCredentialsOf(ctx, userId),
        totp: await totpAuthenticatorsOf(ctx, userId),
      };
    },
  );

  app.post(
    '/api/v1/people/:userId/cards',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Start issuing a smartcard; returns a one-time grant for the card agent',
        body: cardIssueBody,
      },
    },
    async (req, reply) => {
      const ctx = await raContext(req);
      const body = parseInput(cardIssueBody, req.body ?? {});
      const res = await startCardIssue(ctx, deps.card, { userId: userIdParam(req), kind: body.kind });
      return reply.status(201).send(res);
    },
  );

  app.get(
    '/api/v1/cards/:cardId',
    { schema: { tags, security: security.raRead, summary: 'A smartcard and its status' } },
    async (req) => {
      const ctx = await raContext(req);
      const card = await getCard(deps.repos, cardIdParam(req));
      authorize(ctx.actor, 'person:read', await personTarget(deps.repos, deps.clock, card.userId));
      return card;
    },
  );

  app.post(
    '/api/v1/cards/:cardId/passcode-grant',
    {
      schema: { tags, security: security.raWrite, summary: 'Grant for the holder to set the first passcode' },
    },
    async (req) => {
      return { grant: await passcodeGrant(await raContext(req), cardIdParam(req)) };
    },
  );

  app.post(
    '/api/v1/cards/:cardId/unlock-grant',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Unlock with the holder present: grant to set a new passcode',
        body: unlockBody,
      },
    },
    async (req) => {
      const body = parseInput(unlockBody, req.body ?? {});
      return { grant: await unlockGrant(await raContext(req), cardIdParam(req), body.reason) };
    },
  );

  // Renewal at the RA desk, the holder present with the card in the reader: any time, also after expiry (DOMAIN §6).
  app.post(
    '/api/v1/cards/:cardId/renewal-challenge',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Challenge for the card in the reader to sign before renewal at the RA desk',
      },
    },
    async (req) => {
      const ctx = await raContext(req);
      const card = await getCard(deps.repos, cardIdParam(req));
      authorize(ctx.actor, 'card:renew', await personTarget(deps.repos, deps.clock, card.userId));
      return startCardChallenge(ctx, 'renew');
    },
  );

  app.post(
    '/api/v1/cards/:cardId/renew',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary:
          'Renew the certificate on a card at the RA desk (also an expired one): the card signs the challenge, the RA confirms the holder was checked in person',
        body: deskRenewalBody,
      },
    },
    async (req) => {
      const res = await renewCardAtDesk(await raContext(req), deps.card, cardIdParam(req), req.body ?? {});
      return { certificate: res.certificate.toString('base64'), card: res.card };
    },
  );

  app.post(
    '/api/v1/cards/:cardId/cancel',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Cancel a card (lost, stolen, damaged, leaver…): revokes its certificate at once',
        body: cancelBody,
      },
    },
    async (req) => {
      const body = parseInput(cancelBody, req.body ?? {});
      return cancelCard(await raContext(req), cardIdParam(req), body.reason as CancelReason);
    },
  );

  app.post(
    '/api/v1/people/:userId/enrolment-invitations',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary: 'One-time link for the person to register a security key (AAL3) or passkey',
        body: invitationBody,
      },
    },
    async (req, reply) => {
      const body = parseInput(invitationBody, req.body ?? {});
      const token = await createEnrolmentInvitation(await raContext(req), {
        userId: userIdParam(req),
        maxAal: body.maxAal,
      });
      return reply.status(201).send({ link: `${deps.config.PUBLIC_URL}/enrol/invite?t=${token}`, expiresInHours: 24 });
    },
  );

  app.delete(
    '/api/v1/people/:userId/authenticators/:authenticatorId',
    {
      schema: { tags, security: security.raWrite, summary: 'Remove a security key, passkey or authenticator app' },
    },
    async (req, reply) => {
      const ctx = await raContext(req);
      const userId = userIdParam(req);
      authorize(ctx.actor, 'authenticator:enrol', await personTarget(deps.repos, deps.clock, userId));
      const id = String((req.params as { authenticatorId?: string }).authenticatorId ?? '');
      if (id.startsWith('webauthn:')) await removeWebauthnCredential(ctx, userId, id.slice(9));
      else if (id.startsWith('totp:')) await removeTotp(ctx, userId, id.slice(5));
      else throw new AppError('authenticator.not_found');
      return reply.status(204).send();
    },
  );

  // The holder's own card: self-renewal in the last 90 days (proof of possession through the card agent).
  app.post(
    '/api/v1/me/card/renewal-challenge',
    {
      ...holder,
      schema: { tags, security: security.sessionWrite, summary: 'Challenge for the card to sign before self-renewal' },
    },
    async (req) => {
      await holderSession(req);
      return startCardChallenge(contextFor(deps, req), 'renew');
    },
  );

  app.post(
    '/api/v1/me/card/renew',
    {
      ...holder,
      schema: {
        tags,
        security: security.sessionWrite,
        summary: 'Self-renew the certificate on my card (last 90 days before expiry only)',
        body: selfRenewalBody,
      },
    },
    async (req) => {
      const session = await holderSession(req);
      const res = await renewCardCertificate(contextFor(deps, req), deps.card, req.body ?? {}, session.userId);
      return { certificate: res.certificate.toString('base64'), card: res.card };
    },
  );
}
