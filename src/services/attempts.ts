import { AppError } from '../domain/errors.ts';
import type { Repositories } from '../storage/repositories/index.ts';

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

/**
 * Takes one try from each counter before the secret is checked (as a card counts a passcode try before checking it),
 * so concurrent guesses cannot all slip in under the limit: the try that passes the limit is refused, and the counter
 * locks. A right answer gives the person's tries back (recordSuccess); a wrong one keeps them (recordFailure).
 */
export async function assertNotLocked(
  repos: Repositories,
  keys: { key: string; policy?: AttemptPolicy }[],
  now: Date,
): Promise<void> {
  let lockedUntil = 0;
  for (const { key, policy } of keys) {
    const p = policy ?? (key.includes(':ip:') ? attemptPolicies.ip : attemptPolicies.person);
    const row = await repos.attempts.takeTry(key, now, new Date(now.getTime() - p.windowMs));
    if (row.locked_until && new Date(row.locked_until) > now) {
      lockedUntil = Math.max(lockedUntil, new Date(row.locked_until).getTime());
    } else if (row.failures > p.limit) {
      const until = new Date(now.getTime() + p.lockMs);
      await repos.attempts.lockCounter(key, until, now);
      lockedUntil = Math.max(lockedUntil, until.getTime());
    }
  }
  if (lockedUntil > 0) {
    throw new AppError('auth.rate_limited', { retryAfterSeconds: Math.ceil((lockedUntil - now.getTime()) / 1000) });
  }
}

/** A wrong answer: the try taken by assertNotLocked stays counted; at the limit the counter locks now. */
export async function recordFailure(
  repos: Repositories,
  keys: { key: string; policy: AttemptPolicy }[],
  now: Date,
): Promise<boolean> {
  let locked = false;
  for (const { key, policy } of keys) {
    if (await repos.attempts.lockAtLimit(key, new Date(now.getTime() + policy.lockMs), now, policy.limit)) {
      locked = true;
    }
  }
  return locked;
}

/**
 * A right answer: the person's counter is cleared; the IP address's try is given back (one success must not reset the
 * count of a spraying attack from that address).
 */
export async function recordSuccess(repos: Repositories, keys: { key: string }[]): Promise<void> {
  const personal = keys.filter((k) => k.key.includes(':user:')).map((k) => k.key);
  const addresses = keys.filter((k) => k.key.includes(':ip:')).map((k) => k.key);
  if (personal.length > 0) await repos.attempts.clearCounters(personal);
  if (addresses.length > 0) await repos.attempts.giveTryBack(addresses);
}

/**
 * Sending one-time codes (self-service unlock, enrolment): each send is a try that success never gives back, so
 * nobody can flood a person's phone or mailbox, or keep voiding the code they are about to type, by asking again and
 * again. Per person 3 codes in 15 minutes; per address the address policy.
 */
export const codeSendPolicy: AttemptPolicy = { limit: 3, windowMs: 15 * 60_000, lockMs: 15 * 60_000 };

/**
 * Wrong long random secrets — enrolment links, card grants, CIS1 tickets and session secrets, client secrets at the
 * token endpoint. 256 random bits cannot be guessed, yet no address may try them without end (a weak or leaked
 * secret, a scan for stale links): each wrong one counts against the caller's address, and at the address limit it is
 * locked out for `lockMs`. A right secret costs nothing, so the check is one read on the way in.
 */
export function secretKey(kind: string, ip: string | null): { key: string; policy: AttemptPolicy } | null {
  return ip ? { key: `secret_${kind}:ip:${ip}`, policy: attemptPolicies.ip } : null;
}

/** Refuses (auth.rate_limited) while the address is locked out for this kind of secret; writes nothing. */
export async function assertSecretNotLocked(
  repos: Repositories,
  counter: { key: string } | null,
  now: Date,
): Promise<void> {
  if (!counter) return;
  const until = await repos.attempts.lockedUntil(counter.key);
  if (until && until > now) {
    throw new AppError('auth.rate_limited', { retryAfterSeconds: Math.ceil((until.getTime() - now.getTime()) / 1000) });
  }
}

/** A wrong secret: one more failure in the window; at the limit the address locks. */
export async function recordWrongSecret(
  repos: Repositories,
  counter: { key: string; policy: AttemptPolicy } | null,
  now: Date,
): Promise<void> {
  if (!counter) return;
  const { policy } = counter;
  await repos.attempts.countFailure(counter.key, now, new Date(now.getTime() - policy.windowMs));
  await repos.attempts.lockAtLimit(counter.key, new Date(now.getTime() + policy.lockMs), now, policy.limit);
}
