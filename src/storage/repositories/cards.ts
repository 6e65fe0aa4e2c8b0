/**
 * Smartcards (cards) with the expiry of their current certificate, and the one-time grants a card agent redeems to act
 * on one card (card_grants, kept by the hash of the grant).
 */
import type { Queryable } from '../database.ts';

export interface CardRow {
  card_id: string;
  user_id: string;
  kind: 'physical' | 'virtual';
  status: 'issuing' | 'awaiting_passcode' | 'active' | 'locked' | 'cancelled';
  token_serial: string | null;
  certificate_serial: string | null;
  not_after: Date | null;
  cancel_reason: 'lost' | 'stolen' | 'damaged' | 'leaver' | 'replaced' | 'other' | null;
  unblock_secret_sealed: string;
  created_at: Date;
  updated_at: Date;
}

export type GrantActionName = 'issue' | 'set_passcode' | 'unlock';

const CARD_SELECT = `SELECT c.*, pc.not_after FROM cards c LEFT JOIN pki_certificates pc ON pc.serial = c.certificate_serial`;

async function cardsWhere(q: Queryable, where: string, params: unknown[]): Promise<CardRow[]> {
  return (await q.query<CardRow>(`${CARD_SELECT} WHERE ${where}`, params)).rows;
}

export async function findCard(q: Queryable, cardId: string): Promise<CardRow | undefined> {
  return (await cardsWhere(q, 'c.card_id = $1', [cardId]))[0];
}

/** The card, locked for the rest of the transaction (the card services; a CIS1 sign-in, until its session is written). */
export async function lockCard(q: Queryable, cardId: string): Promise<CardRow | undefined> {
  return (await cardsWhere(q, 'c.card_id = $1 FOR UPDATE OF c', [cardId]))[0];
}

export async function cardsOfPerson(q: Queryable, userId: string): Promise<CardRow[]> {
  return cardsWhere(q, 'c.user_id = $1 ORDER BY c.created_at', [userId]);
}

/** The card a self-service unlock is for: a locked one first, else the most recently changed active one. */
export async function cardToUnlock(q: Queryable, userId: string): Promise<CardRow | undefined> {
  return (
    await cardsWhere(
      q,
      "c.user_id = $1 AND c.status IN ('locked', 'active') ORDER BY c.status = 'locked' DESC, c.updated_at DESC LIMIT 1",
      [userId],
    )
  )[0];
}

/** The card (not cancelled) with this token serial, locked for the rest of the transaction. */
export async function lockCardOfToken(q: Queryable, tokenSerial: string): Promise<CardRow | undefined> {
  return (await cardsWhere(q, "c.token_serial = $1 AND c.status <> 'cancelled' FOR UPDATE OF c", [tokenSerial]))[0];
}

/** Active or locked cards whose certificate ends in (now, until]. */
export async function cardsExpiringBetween(q: Queryable, now: Date, until: Date): Promise<CardRow[]> {
  return cardsWhere(q, "c.status IN ('active', 'locked') AND pc.not_after > $1 AND pc.not_after <= $2", [now, until]);
}

export async function insertCard(
  q: Queryable,
  c: { cardId: string; userId: string; kind: string; unblockSecretSealed: string; issuedBy: string; now: Date },
): Promise<void> {
  await q.query(
    `INSERT INTO cards (card_id, user_id, kind, status, unblock_secret_sealed, issued_by, created_at, updated_at)
       VALUES ($1, $2, $3, 'issuing', $4, $5, $6, $6)`,
    [c.cardId, c.userId, c.kind, c.unblockSecretSealed, c.issuedBy, c.now],
  );
}

export async function insertGrant(
  q: Queryable,
  g: { grantHash: string; cardId: string; action: GrantActionName; expiresAt: Date; createdBy: string; now: Date },
): Promise<void> {
  await q.query(
    `INSERT INTO card_grants (grant_hash, card_id, action, state, expires_at, created_by, created_at)
     VALUES ($1, $2, $3, 'new', $4, $5, $6)`,
    [g.grantHash, g.cardId, g.action, g.expiresAt, g.createdBy, g.now],
  );
}

/** Redeems a new, unexpired grant: an issue grant becomes 'redeemed' (a certificate step follows), others 'used'. */
export async function redeemGrant(
  q: Queryable,
  grantHash: string,
  now: Date,
): Promise<{ card_id: string; action: GrantActionName } | undefined> {
  const { rows } = await q.query<{ card_id: string; action: GrantActionName }>(
    `UPDATE card_grants SET state = CASE WHEN action = 'issue' THEN 'redeemed' ELSE 'used' END
       WHERE grant_hash = $1 AND state = 'new' AND expires_at > $2 RETURNING card_id, action`,
    [grantHash, now],
  );
  return rows[0];
}

/** Uses up a redeemed issue grant for the certificate step; its card, or undefined. */
export async function useRedeemedIssueGrant(q: Queryable, grantHash: string, now: Date): Promise<string | undefined> {
  const { rows } = await q.query<{ card_id: string }>(
    "UPDATE card_grants SET state = 'used' WHERE grant_hash = $1 AND state = 'redeemed' AND action = 'issue' AND expires_at > $2 RETURNING card_id",
    [grantHash, now],
  );
  return rows[0]?.card_id;
}

/** Whether another card that is not cancelled has this token serial. */
export async function tokenSerialInUse(q: Queryable, tokenSerial: string, exceptCardId: string): Promise<boolean> {
  const inUse = await q.query('SELECT 1 FROM cards WHERE token_serial = $1 AND status <> $2 AND card_id <> $3', [
    tokenSerial,
    'cancelled',
    exceptCardId,
  ]);
  return inUse.rows.length > 0;
}

export async function setTokenSerial(q: Queryable, cardId: string, tokenSerial: string, now: Date): Promise<void> {
  await q.query('UPDATE cards SET token_serial = $2, updated_at = $3 WHERE card_id = $1', [cardId, tokenSerial, now]);
}

export async function activateCard(q: Queryable, cardId: string, now: Date): Promise<void> {
  await q.query("UPDATE cards SET status = 'active', updated_at = $2, version = version + 1 WHERE card_id = $1", [
    cardId,
    now,
  ]);
}

export async function setAwaitingPasscode(
  q: Queryable,
  cardId: string,
  certificateSerial: string,
  now: Date,
): Promise<void> {
  await q.query(
    "UPDATE cards SET status = 'awaiting_passcode', certificate_serial = $2, updated_at = $3, version = version + 1 WHERE card_id = $1",
    [cardId, certificateSerial, now],
  );
}

export async function markCardLocked(q: Queryable, cardId: string, now: Date): Promise<void> {
  await q.query("UPDATE cards SET status = 'locked', updated_at = $2, version = version + 1 WHERE card_id = $1", [
    cardId,
    now,
  ]);
}

export async function markCardCancelled(q: Queryable, cardId: string, reason: string, now: Date): Promise<void> {
  await q.query(
    "UPDATE cards SET status = 'cancelled', cancel_reason = $2, updated_at = $3, version = version + 1 WHERE card_id = $1",
    [cardId, reason, now],
  );
}

/** Every grant of the card that is not used yet becomes used. */
export async function useGrantsOfCard(q: Queryable, cardId: string): Promise<void> {
  await q.query("UPDATE card_grants SET state = 'used' WHERE card_id = $1 AND state <> 'used'", [cardId]);
}

/**
 * Points an active card at its new certificate, only if it still holds `previousSerial`; false otherwise (a renewal
 * racing another one).
 */
export async function replaceCardCertificate(
  q: Queryable,
  cardId: string,
  serial: string,
  now: Date,
  previousSerial: string,
): Promise<boolean> {
  const updated = await q.query(
    `UPDATE cards SET certificate_serial = $2, updated_at = $3, version = version + 1
       WHERE card_id = $1 AND certificate_serial = $4 AND status = 'active'`,
    [cardId, serial, now, previousSerial],
  );
  return updated.rowCount === 1;
}
