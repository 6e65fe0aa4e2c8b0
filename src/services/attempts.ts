import { AppError } from '../domain/errors.ts';
import type { Queryable } from '../storage/database.ts';

/**
 * Brute-force limits for anything guessable (TOTP codes, one-time codes, sign-in attempts), kept in the database so
 * every node of a cluster counts the same failures. Each attempt is checked against two counters: the person's and the
 * client IP's. Passing `limit` failures within `windowMs` locks that counter for `lockMs`.
 */
export interface AttemptPolicy {
  limit: number;
  windowMs: number;
  lockMs: number;
}

export const attemptPolicies = {
  /** Per person: 5 wrong codes in 15 minutes lock the method for 15 minutes (NIST SP 800-63B-4 §3.2.2 allows ≤ 100). */
  person: { limit: 5, windowMs: 15 * 60_000, lockMs: 15 * 60_000 },
  /** Per IP address: generous enough for a busy ward sharing one NAT address, tight enough to stop spraying. */
  ip: { limit: 50, windowMs: 15 * 60_000, lockMs: 15 * 60_000 },
} as const satisfies Record<string, AttemptPolicy>;

export function counterKeys(
  kind: string,
  userId: string | null,
  ip: string | null,
): { key: string; policy: AttemptPolicy }[] {
  const keys: { key: string; policy: AttemptPolicy }[] = [];
  if (userId) keys.push({ key: `${kind}:user:${userId}`, policy: attemptPolicies.person });
  if (ip) keys.push({ key: `${kind}:ip:${ip}`, policy: attemptPolicies.ip });
  return keys;
}

/** Throws auth.rate_limited when any of the counters is locked. */
export async function assertNotLocked(q: Queryable, keys: { key: string }[], now: Date): Promise<void> {
  if (keys.length === 0) return;
  const { rows } = await q.query<{ counter_key: string; locked_until: Date | null }>(
    'SELECT counter_key, locked_until FROM attempt_counters WHERE counter_key = ANY($1) AND locked_until > $2',
    [keys.map((k) => k.key), now],
  );
  if (rows.length > 0) {
    const until = rows.map((r) => new Date(r.locked_until!).getTime()).reduce((a, b) => Math.max(a, b));
    throw new AppError('auth.rate_limited', { retryAfterSeconds: Math.ceil((until - now.getTime()) / 1000) });
  }
}

/** Counts a failure on each counter (atomically, safe under concurrency). Returns true if one is now locked. */
export async function recordFailure(
  q: Queryable,
  keys: { key: string; policy: AttemptPolicy }[],
  now: Date,
): Promise<boolean> {
  let locked = false;
  for (const { key, policy } of keys) {
    const { rows } = await q.query<{ failures: number }>(
      `INSERT INTO attempt_counters (counter_key, failures, window_start) VALUES ($1, 1, $2)
       ON CONFLICT (counter_key) DO UPDATE SET
         failures = CASE WHEN attempt_counters.window_start < $3 THEN 1 ELSE attempt_counters.failures + 1 END,
         window_start = CASE WHEN attempt_counters.window_start < $3 THEN $2 ELSE attempt_counters.window_start END
       RETURNING failures`,
      [key, now, new Date(now.getTime() - policy.windowMs)],
    );
    if ((rows[0]?.failures ?? 0) >= policy.limit) {
      await q.query(
        'UPDATE attempt_counters SET locked_until = $2, failures = 0, window_start = $3 WHERE counter_key = $1',
        [key, new Date(now.getTime() + policy.lockMs), now],
      );
      locked = true;
    }
  }
  return locked;
}

/** A success clears the person's counter (not the IP's: one success must not reset a spraying attack). */
export async function recordSuccess(q: Queryable, keys: { key: string }[]): Promise<void> {
  const personal = keys.filter((k) => k.key.includes(':user:')).map((k) => k.key);
  if (personal.length > 0) await q.query('DELETE FROM attempt_counters WHERE counter_key = ANY($1)', [personal]);
}
