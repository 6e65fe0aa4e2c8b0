/** Authenticator apps (services/totp.ts): the sealed secret and the last time step used (RFC 6238 §5.2). */
import type { Queryable } from '../database.ts';

export async function insertPendingTotp(
  q: Queryable,
  t: { totpId: string; userId: string; secretSealed: string; nickname: string; now: Date },
): Promise<void> {
  await q.query(
    `INSERT INTO totp_authenticators (totp_id, user_id, secret_sealed, status, nickname, created_at)
     VALUES ($1, $2, $3, 'pending', $4, $5)`,
    [t.totpId, t.userId, t.secretSealed, t.nickname, t.now],
  );
}

export async function pendingTotpSecret(q: Queryable, totpId: string, userId: string): Promise<string | undefined> {
  const { rows } = await q.query<{ secret_sealed: string }>(
    "SELECT secret_sealed FROM totp_authenticators WHERE totp_id = $1 AND user_id = $2 AND status = 'pending'",
    [totpId, userId],
  );
  return rows[0]?.secret_sealed;
}

export async function activateTotp(q: Queryable, totpId: string, step: number): Promise<void> {
  await q.query("UPDATE totp_authenticators SET status = 'active', last_step = $2 WHERE totp_id = $1", [totpId, step]);
}

export async function activeTotpSecrets(
  q: Queryable,
  userId: string,
): Promise<{ totp_id: string; secret_sealed: string; last_step: string }[]> {
  const { rows } = await q.query<{ totp_id: string; secret_sealed: string; last_step: string }>(
    "SELECT totp_id, secret_sealed, last_step FROM totp_authenticators WHERE user_id = $1 AND status = 'active'",
    [userId],
  );
  return rows;
}

/** Moves last_step forward to `step` if it is behind; false when another request used that step first. */
export async function advanceTotpStep(q: Queryable, totpId: string, step: number, now: Date): Promise<boolean> {
  const { rowCount } = await q.query(
    'UPDATE totp_authenticators SET last_step = $2, last_used_at = $3 WHERE totp_id = $1 AND last_step < $2',
    [totpId, step, now],
  );
  return rowCount > 0;
}

/** Marks an app removed; false when the person has no such app (or it was removed already). */
export async function removeTotpOf(q: Queryable, totpId: string, userId: string): Promise<boolean> {
  const { rowCount } = await q.query(
    "UPDATE totp_authenticators SET status = 'removed' WHERE totp_id = $1 AND user_id = $2 AND status <> 'removed'",
    [totpId, userId],
  );
  return rowCount > 0;
}

export async function activeTotpsOf(
  q: Queryable,
  userId: string,
): Promise<{ totp_id: string; nickname: string; created_at: Date; last_used_at: Date | null }[]> {
  const { rows } = await q.query<{
    totp_id: string;
    nickname: string;
    created_at: Date;
    last_used_at: Date | null;
  }>(
    "SELECT totp_id, nickname, created_at, last_used_at FROM totp_authenticators WHERE user_id = $1 AND status = 'active' ORDER BY created_at",
    [userId],
  );
  return rows;
}
