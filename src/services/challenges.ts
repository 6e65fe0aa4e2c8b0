import { randomBytes } from 'node:crypto';
import { AppError } from '../domain/errors.ts';
import type { Queryable } from '../storage/database.ts';
import { hashToken } from './sessions.ts';

/** Server challenges live 5 minutes and are consumed by their first use, successful or not. */
export const CHALLENGE_TTL_MS = 5 * 60_000;

export async function createChallenge(
  q: Queryable,
  kind: string,
  userId: string | null,
  now: Date,
  data: Record<string, unknown> = {},
  challenge = randomBytes(32).toString('base64url'),
): Promise<{ challengeId: string; challenge: string }> {
  const challengeId = randomBytes(16).toString('base64url');
  await q.query(
    'INSERT INTO auth_challenges (challenge_id, kind, user_id, challenge, data, expires_at) VALUES ($1, $2, $3, $4, $5, $6)',
    [hashToken(challengeId), kind, userId, challenge, JSON.stringify(data), new Date(now.getTime() + CHALLENGE_TTL_MS)],
  );
  return { challengeId, challenge };
}

/** Takes a challenge for use: exactly one caller gets it, once, before it expires. */
export async function consumeChallenge(
  q: Queryable,
  kind: string,
  challengeId: unknown,
  now: Date,
): Promise<{ challenge: string; userId: string | null; data: Record<string, unknown> }> {
  if (typeof challengeId !== 'string' || !/^[A-Za-z0-9_-]{10,64}$/.test(challengeId)) {
    throw new AppError('webauthn.challenge_invalid');
  }
  const { rows } = await q.query<{ challenge: string; user_id: string | null; data: Record<string, unknown> | string }>(
    `UPDATE auth_challenges SET used_at = $3 WHERE challenge_id = $1 AND kind = $2 AND used_at IS NULL AND expires_at > $3
     RETURNING challenge, user_id, data`,
    [hashToken(challengeId), kind, now],
  );
  const row = rows[0];
  if (!row) throw new AppError('webauthn.challenge_invalid');
  const data = typeof row.data === 'string' ? (JSON.parse(row.data) as Record<string, unknown>) : (row.data ?? {});
  return { challenge: row.challenge, userId: row.user_id, data };
}
