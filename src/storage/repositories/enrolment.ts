/** Self-service enrolment (services/enrolment.ts): enrolment invitations. */
import type { Queryable } from '../database.ts';

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
