import { X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { AppError } from '../../domain/errors.ts';
import { isNationalId } from '../../domain/identity/user-id.ts';
import { authorize } from '../../domain/policy.ts';
import type { Repositories } from '../../storage/repositories/index.ts';
import { appendAudit } from '../audit.ts';
import { revokeCertificate } from '../certificates.ts';
import type { ServiceContext } from '../context.ts';
import type { NotificationOutbox } from '../notifications.ts';
import { mayRequestCode, redeemOneTimeCode, sendOneTimeCode } from '../one-time-codes.ts';
import { endSessionsOf } from '../sessions.ts';
import { personTarget } from '../targets.ts';
import { type CancelReason, type Card, createGrant, fromRow } from './card.ts';

/** A card in use (DOMAIN §6): unlocked at the desk or by the holder, locked by the card, cancelled. */

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
  const person = await ctx.repos.people.findPersonByUserId(input.userId);
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
  tx: Repositories,
  ctx: ServiceContext,
  cardId: string,
  reason: CancelReason,
  note: string | null = null,
): Promise<Card> {
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
