/** Self-service enrolment (services/enrolment.ts): who a verified address belongs to, and enrolment invitations. */
import type { Queryable } from '../database.ts';

/** Active people whose verified email is `email` (at most two: more than one means the address is ambiguous). */
export async function activePeopleWithVerifiedEmail(
  q: Queryable,
  email: string,
): Promise<{ user_id: string; ni_number: string | null }[]> {
  const { rows } = await q.query<{ user_id: string; ni_number: string | null }>(
    "SELECT user_id, ni_number FROM people WHERE email = $1 AND status = 'active' AND email_verified_at IS NOT NULL LIMIT 2",
    [email],
  );
  return rows;
}

/** The user IDs only (the start of enrolment needs nothing more). */
export async function activeUserIdsWithVerifiedEmail(q: Queryable, email: string): Promise<{ user_id: string }[]> {
  const { rows } = await q.query<{ user_id: string }>(
    "SELECT user_id FROM people WHERE email = $1 AND status = 'active' AND email_verified_at IS NOT NULL LIMIT 2",
    [email],
  );
  return rows;
}

export async function insertInvitation(
  q: Queryable,
  i: { tokenHash: string; userId: string; maxAal: number; createdBy: string; now: Date; expiresAt: Date },
): Promise<void> {
  await q.query(
    `INSERT INTO enrolment_invitations (token_hash, user_id, max_aal, created_by, created_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6)`,
    [i.tokenHash, i.userId, i.maxAal, i.createdBy, i.now, i.expiresAt],
  );
}

export async function liveInvitation(
  q: Queryable,
  tokenHash: string,
  now: Date,
): Promise<{ user_id: string; max_aal: number } | undefined> {
  const { rows } = await q.query<{ user_id: string; max_aal: number }>(
    'SELECT user_id, max_aal FROM enrolment_invitations WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2',
    [tokenHash, now],
  );
  return rows[0];
}

/** Uses a live invitation up; false when there was none. */
export async function useInvitation(q: Queryable, tokenHash: string, now: Date): Promise<boolean> {
  const { rowCount } = await q.query(
    'UPDATE enrolment_invitations SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2',
    [tokenHash, now],
  );
  return rowCount > 0;
}
