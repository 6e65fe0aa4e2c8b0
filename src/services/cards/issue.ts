import { randomBytes, randomInt } from 'node:crypto';
import { z } from 'zod';
import { provesPossession } from '../../authenticators/smartcard/signature.ts';
import { cardLoginMessage } from '../../domain/credentials/card-login.ts';
import { AppError } from '../../domain/errors.ts';
import { isNationalId } from '../../domain/identity/user-id.ts';
import { authorize } from '../../domain/policy.ts';
import { appendAudit } from '../audit.ts';
import { issueAuthenticationCertificate, revokeCertificate } from '../certificates.ts';
import type { ServiceContext } from '../context.ts';
import { hashToken } from '../sessions.ts';
import { personTarget } from '../targets.ts';
import {
  type Card,
  type CardConfig,
  type CardKind,
  createGrant,
  fromRow,
  type GrantAction,
  newCardId,
  UNBLOCK_PURPOSE,
} from './card.ts';

/** Issuing a card (DOMAIN §6): the RA starts it, the card agent redeems the grant, the card's key is certified. */

/** RA desk: start issuing a card to a verified person. Returns the grant the RA's page hands to the card agent. */
export async function startCardIssue(
  ctx: ServiceContext,
  config: CardConfig,
  input: { userId: string; kind: CardKind },
): Promise<{ card: Card; grant: string }> {
  if (!config.transportSoPin) throw new AppError('card.not_configured');
  if (!isNationalId(input.userId)) throw new AppError('person.invalid_user_id');
  return ctx.transaction(async (tx) => {
    const person = await tx.people.findPersonByUserId(input.userId, true);
    if (!person) throw new AppError('person.not_found');
    authorize(ctx.actor, 'card:issue', await personTarget(tx, ctx.clock, person.userId));
    // A card is an AAL3 authenticator: its holder's identity must have been checked face to face (IAL3).
    if (person.status !== 'active' || person.identityAssuranceLevel < 3) {
      throw new AppError('card.invalid_state', { reason: 'the person must be active and verified face to face' });
    }
    const now = ctx.clock.now();
    const cardId = newCardId();
    const unblockSecret = String(randomInt(0, 100_000_000)).padStart(8, '0') + randomBytes(4).toString('hex');
    await tx.cards.insertCard({
      cardId,
      userId: person.userId,
      kind: input.kind,
      unblockSecretSealed: ctx.sealer.seal(unblockSecret, UNBLOCK_PURPOSE),
      issuedBy: ctx.actor.id,
      now,
    });
    const grant = await createGrant(tx, ctx, cardId, 'issue');
    await appendAudit(tx, ctx, {
      action: 'card.issue_started',
      targetType: 'person',
      targetId: person.userId,
      before: null,
      after: { cardId, kind: input.kind },
    });
    return { card: fromRow((await tx.cards.findCard(cardId))!), grant };
  });
}

const redeemSchema = z.object({
  grant: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  tokenSerial: z.string().regex(/^[\x21-\x7e]{1,64}$/),
});

/**
 * A card agent redeems a grant: it receives what it needs to act on that one card (the unblock secret; for issue, the
 * supplier's transport PIN too). Issue grants move to 'redeemed' (the certificate step follows); others are used up.
 */
export async function redeemCardGrant(
  ctx: ServiceContext,
  config: CardConfig,
  input: unknown,
): Promise<{ action: GrantAction; userId: string; unblockSecret: string; transportSoPin?: string }> {
  const parsed = redeemSchema.safeParse(input);
  if (!parsed.success) throw new AppError('card.grant_invalid');
  const { grant, tokenSerial } = parsed.data;
  const now = ctx.clock.now();
  return ctx.transaction(async (tx) => {
    const g = await tx.cards.redeemGrant(hashToken(grant), now);
    if (!g) throw new AppError('card.grant_invalid');
    const card = (await tx.cards.lockCard(g.card_id))!;
    const agentCtx = { ...ctx, actor: { kind: 'system' as const, id: `card-agent:${tokenSerial}` } };
    if (g.action === 'issue') {
      if (card.status !== 'issuing') throw new AppError('card.invalid_state');
      if (await tx.cards.tokenSerialInUse(tokenSerial, card.card_id)) throw new AppError('card.token_in_use');
      await tx.cards.setTokenSerial(card.card_id, tokenSerial, now);
    } else {
      if (card.token_serial !== tokenSerial) throw new AppError('card.grant_invalid');
      const allowed = g.action === 'set_passcode' ? ['awaiting_passcode', 'active'] : ['locked', 'active'];
      if (!allowed.includes(card.status)) throw new AppError('card.invalid_state');
      await tx.cards.activateCard(card.card_id, now);
    }
    await appendAudit(tx, agentCtx, {
      action: `card.grant_redeemed.${g.action}`,
      targetType: 'person',
      targetId: card.user_id,
      before: { cardId: card.card_id, status: card.status },
      after: { cardId: card.card_id, tokenSerial },
    });
    const unblockSecret = ctx.sealer.open(card.unblock_secret_sealed, UNBLOCK_PURPOSE).toString();
    return {
      action: g.action,
      userId: card.user_id,
      unblockSecret,
      ...(g.action === 'issue' ? { transportSoPin: config.transportSoPin } : {}),
    };
  });
}

const certifySchema = z.object({
  grant: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  tokenSerial: z.string().regex(/^[\x21-\x7e]{1,64}$/),
  publicKey: z
    .string()
    .regex(/^[A-Za-z0-9+/]+={0,2}$/)
    .max(2_000),
  proof: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .max(1_000),
  algorithm: z.enum(['ES256', 'RS256']).default('ES256'),
});

/**
 * The agent sends the public key generated on the card, with a signature by that key over the grant (proof of
 * possession). The certificate comes back for the agent to write to the card; the card then awaits its passcode.
 */
export async function certifyCard(
  ctx: ServiceContext,
  config: CardConfig,
  input: unknown,
): Promise<{ certificate: Buffer }> {
  const parsed = certifySchema.safeParse(input);
  if (!parsed.success) throw new AppError('card.grant_invalid');
  const { grant, tokenSerial, publicKey, proof, algorithm } = parsed.data;
  const spki = Buffer.from(publicKey, 'base64');
  const keyOk = provesPossession(
    spki,
    algorithm,
    cardLoginMessage(config.origin, grant),
    Buffer.from(proof, 'base64url'),
  );
  if (!keyOk) throw new AppError('card.proof_invalid');
  const now = ctx.clock.now();
  return ctx.transaction(async (tx) => {
    const grantCardId = await tx.cards.useRedeemedIssueGrant(hashToken(grant), now);
    if (!grantCardId) throw new AppError('card.grant_invalid');
    const card = (await tx.cards.lockCard(grantCardId))!;
    if (card.token_serial !== tokenSerial || card.status !== 'issuing') throw new AppError('card.grant_invalid');
    const agentCtx = { ...ctx, actor: { kind: 'system' as const, id: `card-agent:${tokenSerial}` } };
    const cert = await issueAuthenticationCertificate(tx, agentCtx, {
      userId: card.user_id,
      cardId: card.card_id,
      publicKeySpki: spki,
      publicUrl: config.publicUrl,
      expirySpreadDays: config.expirySpreadDays,
    });
    if (card.certificate_serial) await revokeCertificate(tx, agentCtx, card.certificate_serial, 'superseded');
    await tx.cards.setAwaitingPasscode(card.card_id, cert.serial, now);
    await appendAudit(tx, agentCtx, {
      action: 'card.certified',
      targetType: 'person',
      targetId: card.user_id,
      before: { cardId: card.card_id, status: card.status },
      after: { cardId: card.card_id, status: 'awaiting_passcode', certificateSerial: cert.serial },
    });
    return { certificate: cert.der };
  });
}

/** A grant for the holder to set the card's first passcode (RA desk, right after issue). */
export async function passcodeGrant(ctx: ServiceContext, cardId: string): Promise<string> {
  return ctx.transaction(async (tx) => {
    const card = await tx.cards.lockCard(cardId);
    if (!card) throw new AppError('card.not_found');
    authorize(ctx.actor, 'card:issue', await personTarget(tx, ctx.clock, card.user_id));
    if (card.status !== 'awaiting_passcode') throw new AppError('card.invalid_state');
    return createGrant(tx, ctx, cardId, 'set_passcode');
  });
}
