/**
 * What a national leaver (src/services/ra/status.ts) locks and removes beyond the person and their role profiles: their
 * cards and valid certificates (locked, then cancelled and revoked by the card and CA services), WebAuthn and TOTP
 * authenticators (removed), and unused enrolment invitations and one-time codes (used up). Each returns the IDs it
 * touched, in a stable order. The caller takes these row locks before its first audit append.
 */
import type { Queryable } from '../database.ts';

async function ids(q: Queryable, sql: string, userId: string): Promise<string[]> {
  const { rows } = await q.query<{ id: string }>(sql, [userId]);
  return rows.map((r) => r.id);
}

/** The person's cards not cancelled, locked. */
export function lockCardsOf(q: Queryable, userId: string): Promise<string[]> {
  return ids(
    q,
    "SELECT card_id AS id FROM cards WHERE user_id = $1 AND status <> 'cancelled' ORDER BY card_id FOR UPDATE",
    userId,
  );
}

/** The person's valid certificates (serials), locked. */
export function lockValidCertificatesOf(q: Queryable, userId: string): Promise<string[]> {
  return ids(
    q,
    "SELECT serial AS id FROM pki_certificates WHERE user_id = $1 AND status = 'valid' ORDER BY serial FOR UPDATE",
    userId,
  );
}

/** Removes the person's active WebAuthn credentials: `webauthn:<credential id>` for each. */
export function removeWebauthnCredentialsOf(q: Queryable, userId: string): Promise<string[]> {
  return ids(
    q,
    "UPDATE webauthn_credentials SET status = 'removed' WHERE user_id = $1 AND status = 'active' RETURNING 'webauthn:' || credential_id AS id",
    userId,
  );
}

/** Removes the person's TOTP authenticators: `totp:<id>` for each. */
export function removeTotpAuthenticatorsOf(q: Queryable, userId: string): Promise<string[]> {
  return ids(
    q,
    "UPDATE totp_authenticators SET status = 'removed' WHERE user_id = $1 AND status <> 'removed' RETURNING 'totp:' || totp_id AS id",
    userId,
  );
}

/** Uses up the person's unused enrolment invitations, then their unused one-time codes. */
export async function useUpInvitationsAndCodesOf(q: Queryable, userId: string, now: Date): Promise<void> {
  await q.query('UPDATE enrolment_invitations SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL', [userId, now]);
  await q.query('UPDATE one_time_codes SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL', [userId, now]);
}
