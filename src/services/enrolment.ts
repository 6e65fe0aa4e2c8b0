import { randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError } from '../domain/errors.ts';
import { normaliseNiNumber } from '../domain/identity/ni-number.ts';
import { authorize } from '../domain/policy.ts';
import { findPersonByUserId } from '../storage/people.ts';
import { assertNotLocked, counterKeys, recordFailure, recordSuccess } from './attempts.ts';
import { appendAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';
import type { NotificationOutbox } from './notifications.ts';
import { mayRequestCode, redeemOneTimeCode, sendOneTimeCode } from './one-time-codes.ts';
import { hashToken, type SignInResult } from './sessions.ts';
import { personTarget } from './targets.ts';

/**
 * Self-service enrolment (DOMAIN §6): a person who already has an identity record adds their first AAL2 authenticator
 * after two checks — a one-time code sent to their *verified* email address, and their National Insurance number
 * matching the record. Passing both gives an enrolment-only session (AAL1) that may add AAL2 authenticators and nothing
 * else. Adding an AAL3 authenticator needs an AAL3 session or an RA.
 */
export const ENROLMENT_AMR = 'ENROLMENT';

export async function startEnrolment(
  ctx: ServiceContext,
  outbox: NotificationOutbox,
  input: { email: unknown; ip?: string | null },
): Promise<void> {
  const email = typeof input.email === 'string' ? input.email.trim().toLowerCase() : '';
  if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email) || email.length > 254) {
    throw new AppError('request.invalid', { problems: [{ field: 'email', message: 'Enter an email address' }] });
  }
  if (!(await mayRequestCode(ctx.db, 'enrolment', email, input.ip, ctx.clock.now()))) return;
  const { rows } = await ctx.db.query<{ user_id: string }>(
    "SELECT user_id FROM people WHERE email = $1 AND status = 'active' AND email_verified_at IS NOT NULL LIMIT 2",
    [email],
  );
  // Same answer whether or not a code was sent: the page never reveals who is registered.
  if (rows.length !== 1) return;
  const person = (await findPersonByUserId(ctx.db, rows[0]!.user_id))!;
  await sendOneTimeCode(ctx, outbox, { ...person, mobile: null }, 'enrolment', null);
}

export async function verifyEnrolment(
  ctx: ServiceContext,
  input: { email: unknown; code: unknown; niNumber: unknown; ip: string | null },
): Promise<SignInResult> {
  const email = typeof input.email === 'string' ? input.email.trim().toLowerCase() : '';
  const { rows } = await ctx.db.query<{ user_id: string; ni_number: string | null }>(
    "SELECT user_id, ni_number FROM people WHERE email = $1 AND status = 'active' AND email_verified_at IS NOT NULL LIMIT 2",
    [email],
  );
  if (rows.length !== 1) {
    // An unknown address costs the caller's IP a try, like a wrong code would.
    const keys = counterKeys('otc_enrolment', null, input.ip);
    await assertNotLocked(ctx.db, keys, ctx.clock.now());
    await recordFailure(ctx.db, keys, ctx.clock.now());
    throw new AppError('one_time_code.invalid');
  }
  const person = rows[0]!;
  await redeemOneTimeCode(ctx, { userId: person.user_id, purpose: 'enrolment', code: input.code, ip: input.ip });
  const keys = counterKeys('ni_check', person.user_id, input.ip);
  await assertNotLocked(ctx.db, keys, ctx.clock.now());
  const given = typeof input.niNumber === 'string' ? normaliseNiNumber(input.niNumber).slice(0, 20) : '';
  const stored = person.ni_number ?? '';
  const match =
    stored.length > 0 && given.length === stored.length && timingSafeEqual(Buffer.from(given), Buffer.from(stored));
  if (!match) {
    await recordFailure(ctx.db, keys, ctx.clock.now());
    await ctx.db.transaction((tx) =>
      appendAudit(tx, ctx, {
        action: 'enrolment.checks_failed',
        targetType: 'person',
        targetId: person.user_id,
        before: null,
        after: null,
        reason: 'NI number does not match',
      }),
    );
    throw new AppError('enrolment.checks_failed');
  }
  await recordSuccess(ctx.db, keys);
  return { userId: person.user_id, aal: 1, amr: [ENROLMENT_AMR], authenticatorId: 'enrolment' };
}

/** An RA or operator invites a person to enrol their first authenticator (up to `maxAal`) with a one-time link. */
export async function createEnrolmentInvitation(
  ctx: ServiceContext,
  input: { userId: string; maxAal: 2 | 3; ttlHours?: number },
): Promise<string> {
  authorize(ctx.actor, 'authenticator:enrol', await personTarget(ctx.db, ctx.clock, input.userId));
  const token = randomBytes(32).toString('base64url');
  const now = ctx.clock.now();
  await ctx.db.transaction(async (tx) => {
    await tx.query(
      `INSERT INTO enrolment_invitations (token_hash, user_id, max_aal, created_by, created_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [
        hashToken(token),
        input.userId,
        input.maxAal,
        ctx.actor.id,
        now,
        new Date(now.getTime() + (input.ttlHours ?? 24) * 3_600_000),
      ],
    );
    await appendAudit(tx, ctx, {
      action: 'enrolment.invitation_created',
      targetType: 'person',
      targetId: input.userId,
      before: null,
      after: { maxAal: input.maxAal },
    });
  });
  return token;
}

/** Looks up (without using) an invitation. */
export async function peekInvitation(ctx: ServiceContext, token: unknown): Promise<{ userId: string; maxAal: 2 | 3 }> {
  if (typeof token !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(token)) throw new AppError('card.grant_invalid');
  const { rows } = await ctx.db.query<{ user_id: string; max_aal: number }>(
    'SELECT user_id, max_aal FROM enrolment_invitations WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2',
    [hashToken(token), ctx.clock.now()],
  );
  if (!rows[0]) throw new AppError('card.grant_invalid');
  return { userId: rows[0].user_id, maxAal: rows[0].max_aal as 2 | 3 };
}

/** Uses an invitation up (once). */
export async function consumeInvitation(ctx: ServiceContext, token: string): Promise<void> {
  const { rowCount } = await ctx.db.query(
    'UPDATE enrolment_invitations SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2',
    [hashToken(token), ctx.clock.now()],
  );
  if (rowCount === 0) throw new AppError('card.grant_invalid');
}
