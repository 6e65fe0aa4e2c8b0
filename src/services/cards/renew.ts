import { X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { AppError } from '../../domain/errors.ts';
import { authorize } from '../../domain/policy.ts';
import type { CardRow } from '../../storage/repositories/cards.ts';
import { appendAudit } from '../audit.ts';
import { issueAuthenticationCertificate, revokeCertificate } from '../certificates.ts';
import type { ServiceContext } from '../context.ts';
import type { NotificationOutbox } from '../notifications.ts';
import { personTarget } from '../targets.ts';
import { type Card, type CardConfig, fromRow, SELF_RENEWAL_WINDOW_DAYS } from './card.ts';
import { proveCard } from './sign-in.ts';

/** A card's certificate renewed (by its holder, or at the RA desk) and the warnings that it expires soon. */

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
  authorize(ctx.actor, 'card:renew', await personTarget(ctx.repos, ctx.clock, current.user_id));
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
    const person = await ctx.repos.people.findPersonByUserId(card.user_id);
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
