import { randomBytes } from 'node:crypto';
import { AppError } from '../domain/errors.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { hashToken } from './sessions.ts';

/** Server challenges live 5 minutes and are consumed by their first use, successful or not. */
export const CHALLENGE_TTL_MS = 5 * 60_000;

export async function createChallenge(
  repos: Repositories,
  kind: string,
  userId: string | null,
  now: Date,
  data: Record<string, unknown> = {},
  challenge = randomBytes(32).toString('base64url'),
): Promise<{ challengeId: string; challenge: string }> {
  const challengeId = randomBytes(16).toString('base64url');
  await repos.challenges.insertChallenge({
    challengeHash: hashToken(challengeId),
    kind,
    userId,
    challenge,
    data: JSON.stringify(data),
    expiresAt: new Date(now.getTime() + CHALLENGE_TTL_MS),
  });
  return { challengeId, challenge };
}

/** Takes a challenge for use: exactly one caller gets it, once, before it expires. */
export async function consumeChallenge(
  repos: Repositories,
  kind: string,
  challengeId: unknown,
  now: Date,
): Promise<{ challenge: string; userId: string | null; data: Record<string, unknown> }> {
  if (typeof challengeId !== 'string' || !/^[A-Za-z0-9_-]{10,64}$/.test(challengeId)) {
    throw new AppError('webauthn.challenge_invalid');
  }
  const row = await repos.challenges.takeChallenge(hashToken(challengeId), kind, now);
  if (!row) throw new AppError('webauthn.challenge_invalid');
  const data = typeof row.data === 'string' ? (JSON.parse(row.data) as Record<string, unknown>) : (row.data ?? {});
  return { challenge: row.challenge, userId: row.user_id, data };
}
