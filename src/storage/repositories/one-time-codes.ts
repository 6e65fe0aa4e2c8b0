/** One-time codes (services/one-time-codes.ts), kept by the hash of purpose and code. */
import type { Queryable } from '../database.ts';

/** Voids a person's unused codes for one purpose. */
export async function voidUnusedCodes(q: Queryable, userId: string, purpose: string, now: Date): Promise<void> {
  await q.query('UPDATE one_time_codes SET used_at = $3 WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL', [
    userId,
    purpose,
    now,
  ]);
}

export async function insertCode(
  q: Queryable,
  c: {
    codeId: string;
    userId: string;
    purpose: string;
    subjectId: string | null;
    channel: string;
    codeHash: string;
    expiresAt: Date;
    now: Date;
  },
): Promise<void> {
  await q.query(
    `INSERT INTO one_time_codes (code_id, user_id, purpose, subject_id, channel, code_hash, expires_at, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [c.codeId, c.userId, c.purpose, c.subjectId, c.channel, c.codeHash, c.expiresAt, c.now],
  );
}

/** The newest live code of a person for a purpose. */
export async function latestLiveCode(
  q: Queryable,
  userId: string,
  purpose: string,
  now: Date,
): Promise<{ code_id: string; code_hash: string; subject_id: string | null; attempts: number } | undefined> {
  const { rows } = await q.query<{
    code_id: string;
    code_hash: string;
    subject_id: string | null;
    attempts: number;
  }>(
    `SELECT code_id, code_hash, subject_id, attempts FROM one_time_codes
     WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 ORDER BY created_at DESC LIMIT 1`,
    [userId, purpose, now],
  );
  return rows[0];
}

/** One more wrong try; at `maxTries` the code is voided. */
export async function countWrongTry(q: Queryable, codeId: string, maxTries: number, now: Date): Promise<void> {
  await q.query(
    `UPDATE one_time_codes SET attempts = attempts + 1, used_at = CASE WHEN attempts + 1 >= $2 THEN $3 ELSE used_at END
         WHERE code_id = $1`,
    [codeId, maxTries, now],
  );
}

/** Uses the code if nobody has; true for the one caller that did. */
export async function useCode(q: Queryable, codeId: string, now: Date): Promise<boolean> {
  const { rowCount } = await q.query('UPDATE one_time_codes SET used_at = $2 WHERE code_id = $1 AND used_at IS NULL', [
    codeId,
    now,
  ]);
  return rowCount > 0;
}
