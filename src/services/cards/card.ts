import { randomBytes, randomInt } from 'node:crypto';
import { AppError } from '../../domain/errors.ts';
import type { CardRow } from '../../storage/repositories/cards.ts';
import type { Repositories } from '../../storage/repositories/index.ts';
import type { ServiceContext } from '../context.ts';
import { hashToken } from '../sessions.ts';

/**
 * The smartcard lifecycle (DOMAIN §6), for physical cards and virtual smartcards alike. The server never sees a
 * passcode: the card checks it. What the server holds is the card's unblock secret (the token's SO PIN), sealed, and
 * released only to a card agent that redeems a one-time grant the server issued for that card and that action.
 */
export type CardKind = 'physical' | 'virtual';
export type CardStatus = 'issuing' | 'awaiting_passcode' | 'active' | 'locked' | 'cancelled';
export type CancelReason = 'lost' | 'stolen' | 'damaged' | 'leaver' | 'replaced' | 'other';
export type GrantAction = 'issue' | 'set_passcode' | 'unlock';

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

export const UNBLOCK_PURPOSE = 'card.unblock-secret';
const GRANT_TTL_MS = 10 * 60_000;
/** Holders may renew their own certificate only in its last 90 days (DOMAIN §6). */
export const SELF_RENEWAL_WINDOW_DAYS = 90;

export function fromRow(r: CardRow): Card {
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

export async function getCard(repos: Repositories, cardId: string): Promise<Card> {
  const row = await repos.cards.findCard(cardId);
  if (!row) throw new AppError('card.not_found');
  return fromRow(row);
}

export async function cardsOf(repos: Repositories, userId: string): Promise<Card[]> {
  return (await repos.cards.cardsOfPerson(userId)).map(fromRow);
}

export function newCardId(): string {
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
