/** Server challenges (services/challenges.ts): stored by the hash of their id, consumed once. */
import type { Queryable } from '../database.ts';

export async function insertChallenge(
  q: Queryable,
  c: { challengeHash: string; kind: string; userId: string | null; challenge: string; data: string; expiresAt: Date },
): Promise<void> {
  await q.query(
    'INSERT INTO auth_challenges (challenge_id, kind, user_id, challenge, data, expires_at) VALUES ($1, $2, $3, $4, $5, $6)',
    [c.challengeHash, c.kind, c.userId, c.challenge, c.data, c.expiresAt],
  );
}

/** Marks an unused, unexpired challenge used and returns it; undefined if there is none. */
export async function takeChallenge(
  q: Queryable,
  challengeHash: string,
  kind: string,
  now: Date,
): Promise<{ challenge: string; user_id: string | null; data: Record<string, unknown> | string } | undefined> {
  const { rows } = await q.query<{ challenge: string; user_id: string | null; data: Record<string, unknown> | string }>(
    `UPDATE auth_challenges SET used_at = $3 WHERE challenge_id = $1 AND kind = $2 AND used_at IS NULL AND expires_at > $3
     RETURNING challenge, user_id, data`,
    [challengeHash, kind, now],
  );
  return rows[0];
}
