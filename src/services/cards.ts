import { createPublicKey, randomBytes, randomInt, verify as verifySignature, X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { authenticationMethods } from '../domain/credentials/assurance.ts';
import { CARD_CHALLENGE_PATTERN, cardLoginMessage } from '../domain/credentials/card-login.ts';
import { AppError } from '../domain/errors.ts';
import { isNationalId } from '../domain/identity/user-id.ts';
import { authorize } from '../domain/policy.ts';
import { issueAuthenticationCertificate, revokeCertificate, verifyAuthenticationCertificate } from '../pki/ca.ts';
import type { Queryable } from '../storage/database.ts';
import { findPersonByUserId } from '../storage/people.ts';
import type { CardRow } from '../storage/repositories/cards.ts';
import { type Repositories, reposOf } from '../storage/repositories/index.ts';
import { appendAudit } from './audit.ts';
import { consumeChallenge, createChallenge } from './challenges.ts';
import type { ServiceContext } from './context.ts';
import type { NotificationOutbox } from './notifications.ts';
import { mayRequestCode, redeemOneTimeCode, sendOneTimeCode } from './one-time-codes.ts';
import { endSessionsOf, hashToken, type SignInResult } from './sessions.ts';
import { personTarget } from './targets.ts';

/**
 * The smartcard lifecycle (DOMAIN §6), for physical cards and virtual smartcards alike. The server never sees a
 * passcode: the card checks it. What the server holds is the card's unblock secret (the token's SO PIN), sealed, and
 * released only to a card agent that redeems a one-time grant the server issued for that card and that action.
 */
export type CardKind = 'physical' | 'virtual';
export type CardStatus = 'issuing' | 'awaiting_passcode' | 'active' | 'locked' | 'cancelled';
export type CancelReason = 'lost' | 'stolen' | 'damaged' | 'leaver' | 'replaced' | 'other';
type GrantAction = 'issue' | 'set_passcode' | 'unlock';

export interface CardConfig {
  /** The origin the server signs for (PUBLIC_URL's origin): proofs of possession are bound to it. */
  origin: string;
  publicUrl: string;
  transportSoPin: string | undefined;
  /** Expiry waves: certificates end on the least busy day within ± this many days of two years (default 0). */
  expirySpreadDays?: number;
}

export interface Card {
  cardId: string;
  userId: string;
  kind: CardKind;
  status: CardStatus;
  tokenSerial: string | null;
  certificateSerial: string | null;
  certificateNotAfter: string | null;
  cancelReason: CancelReason | null;
  createdAt: string;
  updatedAt: string;
}

const UNBLOCK_PURPOSE = 'card.unblock-secret';
const GRANT_TTL_MS = 10 * 60_000;
/** Holders may renew their own certificate only in its last 90 days (DOMAIN §6). */
export const SELF_RENEWAL_WINDOW_DAYS = 90;

function fromRow(r: CardRow): Card {
  return {
    cardId: r.card_id,
    userId: r.user_id,
    kind: r.kind,
    status: r.status,
    tokenSerial: r.token_serial,
    certificateSerial: r.certificate_serial,
    certificateNotAfter: r.not_after ? new Date(r.not_after).toISOString() : null,
    cancelReason: r.cancel_reason,
    createdAt: new Date(r.created_at).toISOString(),
    updatedAt: new Date(r.updated_at).toISOString(),
  };
}

export async function getCard(q: Queryable | Repositories, cardId: string): Promise<Card> {
  const row = await reposOf(q).cards.findCard(cardId);
  if (!row) throw new AppError('card.not_found');
  return fromRow(row);
}

export async function cardsOf(q: Queryable | Repositories, userId: string): Promise<Card[]> {
  return (await reposOf(q).cards.cardsOfPerson(userId)).map(fromRow);
}

function newCardId(): string {
  // 16 digits, like the number printed on a card; random so card numbers reveal nothing.
  return String(randomInt(1, 10)) + Array.from({ length: 15 }, () => randomInt(0, 10)).join('');
}

export async function createGrant(
  tx: Repositories,
  ctx: Pick<ServiceContext, 'clock' | 'actor'>,
  cardId: string,
  action: GrantAction,
): Promise<string> {
  const grant = randomBytes(32).toString('base64url');
  const now = ctx.clock.now();
  await tx.cards.insertGrant({
    grantHash: hashToken(grant),
    cardId,
    action,
    expiresAt: new Date(now.getTime() + GRANT_TTL_MS),
    createdBy: ctx.actor.id,
    now,
  });
  return grant;
}

/** RA desk: start issuing a card to a verified person. Returns the grant the RA's page hands to the card agent. */
export async function startCardIssue(
  ctx: ServiceContext,
  config: CardConfig,
  input: { userId: string; kind: CardKind },
): Promise<{ card: Card; grant: string }> {
  if (!config.transportSoPin) throw new AppError('card.not_configured');
  if (!isNationalId(input.userId)) throw new AppError('person.invalid_user_id');
  return ctx.transaction(async (tx) => {
    // TRANSITIONAL (issue 16): the people storage still takes a raw handle; this one is the transaction's.
    const person = await findPersonByUserId(tx.handle, input.userId, true);
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
  let keyOk = false;
  try {
    const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    keyOk = verifySignature(
      'sha256',
      cardLoginMessage(config.origin, grant),
      algorithm === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key,
      Buffer.from(proof, 'base64url'),
    );
  } catch {
    keyOk = false;
  }
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

/** RA, LSA or unlocker with the holder present: a grant to unlock the card and set a new passcode. */
export async function unlockGrant(ctx: ServiceContext, cardId: string, reason: string): Promise<string> {
  return ctx.transaction(async (tx) => {
    const card = await tx.cards.lockCard(cardId);
    if (!card) throw new AppError('card.not_found');
    authorize(ctx.actor, 'card:unlock', await personTarget(tx, ctx.clock, card.user_id));
    if (card.status !== 'locked' && card.status !== 'active') throw new AppError('card.invalid_state');
    const grant = await createGrant(tx, ctx, cardId, 'unlock');
    await appendAudit(tx, ctx, {
      action: 'card.unlock_authorised',
      targetType: 'person',
      targetId: card.user_id,
      before: { cardId, status: card.status },
      after: null,
      reason,
    });
    return grant;
  });
}

/**
 * Self-service unlock, step 1: the holder gives the user ID printed on their card; a one-time code goes to their
 * verified mobile or email. The answer is the same whether or not anything was sent, so it reveals nothing.
 */
export async function requestSelfServiceUnlock(
  ctx: ServiceContext,
  outbox: NotificationOutbox,
  input: { userId: unknown; ip?: string | null },
): Promise<void> {
  if (typeof input.userId !== 'string' || !isNationalId(input.userId)) throw new AppError('person.invalid_user_id');
  if (!(await mayRequestCode(ctx.repos, 'card_unlock', input.userId, input.ip, ctx.clock.now()))) return;
  const person = await findPersonByUserId(ctx.db, input.userId);
  if (person?.status !== 'active') return;
  const card = await ctx.repos.cards.cardToUnlock(person.userId);
  if (!card) return;
  try {
    await sendOneTimeCode(ctx, outbox, person, 'card_unlock', card.card_id);
  } catch (err) {
    if (err instanceof AppError && err.code === 'one_time_code.no_contact') return;
    throw err;
  }
}

/** Self-service unlock, step 2: the right code gives a grant to unlock that card and set a new passcode. */
export async function completeSelfServiceUnlock(
  ctx: ServiceContext,
  input: { userId: unknown; code: unknown; ip: string | null },
): Promise<{ grant: string; cardId: string }> {
  if (typeof input.userId !== 'string' || !isNationalId(input.userId)) throw new AppError('one_time_code.invalid');
  const { subjectId } = await redeemOneTimeCode(ctx, {
    userId: input.userId,
    purpose: 'card_unlock',
    code: input.code,
    ip: input.ip,
  });
  const cardId = subjectId!;
  const holder = { ...ctx, actor: { kind: 'person' as const, id: input.userId, userId: input.userId } };
  return ctx.transaction(async (tx) => {
    const card = await tx.cards.lockCard(cardId);
    if (!card || card.user_id !== input.userId || (card.status !== 'locked' && card.status !== 'active')) {
      throw new AppError('card.invalid_state');
    }
    const grant = await createGrant(tx, holder, cardId, 'unlock');
    await appendAudit(tx, holder, {
      action: 'card.self_service_unlock',
      targetType: 'person',
      targetId: card.user_id,
      before: { cardId, status: card.status },
      after: null,
    });
    return { grant, cardId };
  });
}

const eventSchema = z.object({
  tokenSerial: z.string().regex(/^[\x21-\x7e]{1,64}$/),
  event: z.enum(['passcode_incorrect', 'locked']),
  certificate: z
    .string()
    .regex(/^[A-Za-z0-9+/]+={0,2}$/)
    .max(8_000)
    .nullable(),
});

/**
 * A card agent reports a wrong passcode or a card that locked itself. Recorded in the audit trail; a lock is applied
 * only when the report names the card's current certificate, so a report cannot lock somebody else's card by guessing a
 * token serial.
 */
export async function reportCardEvent(ctx: ServiceContext, input: unknown): Promise<void> {
  const parsed = eventSchema.safeParse(input);
  if (!parsed.success) throw new AppError('request.invalid');
  const { tokenSerial, event, certificate } = parsed.data;
  let serial: string | null = null;
  try {
    serial = certificate ? new X509Certificate(Buffer.from(certificate, 'base64')).serialNumber.toLowerCase() : null;
  } catch {
    serial = null;
  }
  const now = ctx.clock.now();
  await ctx.transaction(async (tx) => {
    const card = await tx.cards.lockCardOfToken(tokenSerial);
    if (!card) return;
    const matches = serial !== null && card.certificate_serial?.toLowerCase() === serial;
    const agentCtx = { ...ctx, actor: { kind: 'system' as const, id: `card-agent:${tokenSerial}` } };
    if (event === 'locked' && matches && card.status === 'active') {
      await tx.cards.markCardLocked(card.card_id, now);
      await endSessionsOf(tx, card.user_id, now, 'card_locked', `card:${card.card_id}`);
    }
    await appendAudit(tx, agentCtx, {
      action: event === 'locked' ? 'card.locked' : 'card.passcode_incorrect',
      targetType: 'person',
      targetId: card.user_id,
      before: { cardId: card.card_id, status: card.status },
      after: { certificateMatches: matches },
    });
  });
}

/** Cancel a card (lost, stolen, damaged, leaver…): its certificate is revoked at once and its sessions end. */
/** Cancels a card; `note` (the RA's own words, e.g. "left on the bus") goes in the audit record's reason. */
export async function cancelCard(
  ctx: ServiceContext,
  cardId: string,
  reason: CancelReason,
  note: string | null = null,
): Promise<Card> {
  return ctx.transaction(async (tx) => cancelCardIn(tx, ctx, cardId, reason, note));
}

export async function cancelCardIn(
  q: Queryable | Repositories,
  ctx: ServiceContext,
  cardId: string,
  reason: CancelReason,
  note: string | null = null,
): Promise<Card> {
  const tx = reposOf(q);
  const card = await tx.cards.lockCard(cardId);
  if (!card) throw new AppError('card.not_found');
  authorize(ctx.actor, 'card:cancel', await personTarget(tx, ctx.clock, card.user_id));
  if (card.status === 'cancelled') return fromRow(card);
  const now = ctx.clock.now();
  if (card.certificate_serial) {
    const crlReason =
      reason === 'lost' || reason === 'stolen'
        ? 'keyCompromise'
        : reason === 'leaver'
          ? 'affiliationChanged'
          : reason === 'replaced'
            ? 'superseded'
            : 'cessationOfOperation';
    await revokeCertificate(tx, ctx, card.certificate_serial, crlReason);
  }
  await tx.cards.markCardCancelled(cardId, reason, now);
  await tx.cards.useGrantsOfCard(cardId);
  await endSessionsOf(tx, card.user_id, now, 'card_cancelled', `card:${cardId}`);
  await appendAudit(tx, ctx, {
    action: 'card.cancelled',
    targetType: 'person',
    targetId: card.user_id,
    before: { cardId, status: card.status },
    after: { cardId, status: 'cancelled', reason },
    reason: note ?? reason,
  });
  return fromRow((await tx.cards.findCard(cardId))!);
}

/** A one-time challenge for the card to sign (sign-in, or proof of possession for self-renewal). */
export async function startCardChallenge(
  ctx: ServiceContext,
  purpose: 'signin' | 'renew',
): Promise<{ challengeId: string; challenge: string }> {
  return createChallenge(ctx.repos, `card.${purpose}`, null, ctx.clock.now());
}

const signedChallengeSchema = z.object({
  challengeId: z.string().max(64),
  certificate: z
    .string()
    .regex(/^[A-Za-z0-9+/]+={0,2}$/)
    .max(8_000),
  signature: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .max(1_000),
  algorithm: z.enum(['ES256', 'RS256']),
});

interface ProvenCard {
  card: CardRow;
  certificateSerial: string;
}

/**
 * Checks a signed challenge: certificate from our CA, in date and not revoked; its card active; the signature over the
 * challenge bound to our origin. Any failure is `auth.failed` to the caller, with the precise reason in the audit.
 */
async function proveCard(
  ctx: ServiceContext,
  config: CardConfig,
  purpose: 'signin' | 'renew',
  input: unknown,
  options: { allowExpired?: boolean } = {},
): Promise<ProvenCard> {
  const parsed = signedChallengeSchema.safeParse(input);
  const fail = async (reason: string, userId: string | null = null) => {
    await ctx.transaction((tx) =>
      appendAudit(tx, ctx, {
        action: purpose === 'signin' ? 'signin.failed' : 'card.renewal_refused',
        targetType: 'person',
        targetId: userId,
        before: null,
        after: { method: 'smartcard' },
        reason,
      }),
    );
    return new AppError('auth.failed');
  };
  if (!parsed.success) throw await fail('malformed request');
  const now = ctx.clock.now();
  let challenge: string;
  try {
    challenge = (await consumeChallenge(ctx.repos, `card.${purpose}`, parsed.data.challengeId, now)).challenge;
  } catch {
    throw await fail('challenge expired, unknown or already used');
  }
  if (!CARD_CHALLENGE_PATTERN.test(challenge)) throw await fail('bad challenge');
  let verified: Awaited<ReturnType<typeof verifyAuthenticationCertificate>>;
  try {
    verified = await verifyAuthenticationCertificate(
      ctx.repos,
      Buffer.from(parsed.data.certificate, 'base64'),
      now,
      options,
    );
  } catch (err) {
    throw await fail(err instanceof AppError ? err.code : 'certificate unreadable');
  }
  const card = verified.cardId ? await ctx.repos.cards.findCard(verified.cardId) : undefined;
  if (!card || card.certificate_serial !== verified.serial)
    throw await fail('certificate is not the card’s current one', verified.userId);
  if (card.status !== 'active') throw await fail(`card ${card.status}`, card.user_id);
  const person = await findPersonByUserId(ctx.db, card.user_id);
  if (person?.status !== 'active') throw await fail(`person ${person?.status ?? 'missing'}`, card.user_id);
  const expected = verified.algorithm === 'ES256' ? 'ES256' : 'RS256';
  let ok = false;
  try {
    ok =
      parsed.data.algorithm === expected &&
      verifySignature(
        'sha256',
        cardLoginMessage(config.origin, challenge),
        expected === 'ES256' ? { key: verified.publicKey, dsaEncoding: 'ieee-p1363' } : verified.publicKey,
        Buffer.from(parsed.data.signature, 'base64url'),
      );
  } catch {
    ok = false;
  }
  if (!ok) throw await fail('signature does not verify with the certificate’s key', card.user_id);
  return { card, certificateSerial: verified.serial };
}

export async function finishCardSignIn(ctx: ServiceContext, config: CardConfig, input: unknown): Promise<SignInResult> {
  const { card } = await proveCard(ctx, config, 'signin', input);
  const method = card.kind === 'virtual' ? 'virtual_smartcard' : 'smartcard';
  return {
    userId: card.user_id,
    aal: 3,
    amr: [authenticationMethods[method].amr],
    authenticatorId: `card:${card.card_id}`,
  };
}

/**
 * Self-renewal (DOMAIN §6): the holder proves possession of the card (challenge signed after the passcode) and, if the
 * certificate is in its last 90 days and not expired, gets a new certificate for the same key to write to the card.
 * An expired certificate needs an RA in person (it fails the proof above).
 */
export async function renewCardCertificate(
  ctx: ServiceContext,
  config: CardConfig,
  input: unknown,
  holderUserId?: string,
): Promise<{ certificate: Buffer; card: Card }> {
  const { card, certificateSerial } = await proveCard(ctx, config, 'renew', input);
  if (holderUserId !== undefined && card.user_id !== holderUserId) throw new AppError('auth.forbidden');
  const now = ctx.clock.now();
  const notAfter = card.not_after ? new Date(card.not_after) : null;
  if (!notAfter || notAfter.getTime() - now.getTime() > SELF_RENEWAL_WINDOW_DAYS * 86_400_000) {
    throw new AppError('card.renewal_not_allowed', { notAfter: notAfter?.toISOString() ?? null });
  }
  const holder = { ...ctx, actor: { kind: 'person' as const, id: card.user_id, userId: card.user_id } };
  return replaceCardCertificate(holder, config, card, certificateSerial, input, {});
}

/**
 * Renewal at the RA desk (DOMAIN §5–6): an RA Agent, Advanced RA Agent, RA Manager or LSA with `card:renew` over the
 * holder renews the certificate on the holder's card, at any time — including after it has expired, which only an RA can
 * do, in person. The holder is at the desk with the card in the reader: the card signs a renewal challenge after the
 * holder's passcode (proof that this card and its key are there; the passcode goes only to the card agent), and the RA
 * confirms they have checked the holder is the person on the card. The certificate may be out of date; it must still be
 * the card's current one, unrevoked, from our CA, and the card and the person active (a locked card is unlocked first).
 */
export async function renewCardAtDesk(
  ctx: ServiceContext,
  config: CardConfig,
  cardId: string,
  input: unknown,
): Promise<{ certificate: Buffer; card: Card }> {
  const confirmed = z.object({ holderSeen: z.literal(true) }).safeParse(input);
  if (!confirmed.success) {
    throw new AppError('request.invalid', {
      problems: [{ field: 'holderSeen', message: 'Confirm you have checked the holder in person' }],
    });
  }
  const current = await ctx.repos.cards.findCard(cardId);
  if (!current) throw new AppError('card.not_found');
  authorize(ctx.actor, 'card:renew', await personTarget(ctx.db, ctx.clock, current.user_id));
  if (current.status !== 'active' || !current.certificate_serial) throw new AppError('card.invalid_state');
  const { card, certificateSerial } = await proveCard(ctx, config, 'renew', input, { allowExpired: true });
  if (card.card_id !== cardId) {
    // The card in the reader is another card (of this person or anyone else's): nothing is renewed.
    throw new AppError('card.not_in_reader');
  }
  const expired = card.not_after !== null && new Date(card.not_after).getTime() <= ctx.clock.now().getTime();
  return replaceCardCertificate(ctx, config, card, certificateSerial, input, { atDesk: true, expired });
}

/**
 * A new certificate for the key on the card (taken from the certificate it proved possession with), the old one revoked
 * as superseded, the card pointed at the new one, and the audit event — one transaction.
 */
async function replaceCardCertificate(
  ctx: ServiceContext,
  config: CardConfig,
  card: CardRow,
  certificateSerial: string,
  input: unknown,
  auditExtra: Record<string, unknown>,
): Promise<{ certificate: Buffer; card: Card }> {
  const now = ctx.clock.now();
  const old = new X509Certificate(Buffer.from((input as { certificate: string }).certificate, 'base64'));
  const spki = old.publicKey.export({ type: 'spki', format: 'der' });
  return ctx.transaction(async (tx) => {
    const cert = await issueAuthenticationCertificate(tx, ctx, {
      userId: card.user_id,
      cardId: card.card_id,
      publicKeySpki: spki,
      publicUrl: config.publicUrl,
      expirySpreadDays: config.expirySpreadDays,
    });
    await revokeCertificate(tx, ctx, certificateSerial, 'superseded');
    // Only if the card still holds the certificate proved with (a renewal racing another one fails whole).
    if (!(await tx.cards.replaceCardCertificate(card.card_id, cert.serial, now, certificateSerial))) {
      throw new AppError('card.invalid_state');
    }
    await appendAudit(tx, ctx, {
      action: 'card.renewed',
      targetType: 'person',
      targetId: card.user_id,
      before: { cardId: card.card_id, certificateSerial },
      after: { cardId: card.card_id, certificateSerial: cert.serial, ...auditExtra },
    });
    return { certificate: cert.der, card: fromRow((await tx.cards.findCard(card.card_id))!) };
  });
}

/**
 * Expiry warnings at 90, 30 and 7 days before a card certificate expires. Each threshold is sent once (a dedupe key per
 * certificate and threshold), and only the nearest one that applies: a card found at 20 days gets the 30-day warning.
 */
export async function sendExpiryWarnings(ctx: ServiceContext, outbox: NotificationOutbox): Promise<number> {
  const now = ctx.clock.now();
  const rows = await ctx.repos.cards.cardsExpiringBetween(now, new Date(now.getTime() + 90 * 86_400_000));
  let sent = 0;
  for (const card of rows) {
    const person = await findPersonByUserId(ctx.db, card.user_id);
    if (!person?.email) continue;
    const left = Math.ceil((new Date(card.not_after!).getTime() - now.getTime()) / 86_400_000);
    const threshold = [7, 30, 90].find((d) => left <= d)!;
    const didSend = await outbox.queue(
      ctx.repos,
      {
        userId: card.user_id,
        channel: 'email',
        to: person.email,
        template: `card.expiry_warning.${threshold}`,
        subject: 'Your smartcard certificate expires soon',
        text:
          `The certificate on your smartcard expires in ${left} day${left === 1 ? '' : 's'}. ` +
          'You can renew it yourself now: sign in and choose "Renew my card". After it expires you will need to visit your Registration Authority.',
      },
      now,
      { dedupeKey: `expiry:${card.certificate_serial}:${threshold}` },
    );
    if (didSend) sent++;
  }
  if (sent > 0) outbox.wake();
  return sent;
}
