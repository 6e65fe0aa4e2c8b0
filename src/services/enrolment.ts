import { randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError } from '../domain/errors.ts';
import { normaliseNiNumber } from '../domain/identity/ni-number.ts';
import { authorize } from '../domain/policy.ts';
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
  if (!(await mayRequestCode(ctx.repos, 'enrolment', email, input.ip, ctx.clock.now()))) return;
  const rows = await ctx.repos.people.activeUserIdsWithVerifiedEmail(email);
  // Same answer whether or not a code was sent: the page never reveals who is registered.
  if (rows.length !== 1) return;
  const person = (await ctx.repos.people.findPersonByUserId(rows[0]!.user_id))!;
  await sendOneTimeCode(ctx, outbox, { ...person, mobile: null }, 'enrolment', null);
}

export async function verifyEnrolment(
  ctx: ServiceContext,
  input: { email: unknown; code: unknown; niNumber: unknown; ip: string | null },
): Promise<SignInResult> {
  const email = typeof input.email === 'string' ? input.email.trim().toLowerCase() : '';
  const rows = await ctx.repos.people.activePeopleWithVerifiedEmail(email);
  if (rows.length !== 1) {
    // An unknown address costs the caller's IP a try, like a wrong code would.
    const keys = counterKeys('otc_enrolment', null, input.ip);
    await assertNotLocked(ctx.repos, keys, ctx.clock.now());
    await recordFailure(ctx.repos, keys, ctx.clock.now());
    throw new AppError('one_time_code.invalid');
  }
  const person = rows[0]!;
  await redeemOneTimeCode(ctx, { userId: person.user_id, purpose: 'enrolment', code: input.code, ip: input.ip });
  const keys = counterKeys('ni_check', person.user_id, input.ip);
  await assertNotLocked(ctx.repos, keys, ctx.clock.now());
  const given = typeof input.niNumber === 'string' ? normaliseNiNumber(input.niNumber).slice(0, 20) : '';
  const stored = person.ni_number ?? '';
  const match =
    stored.length > 0 && given.length === stored.length && timingSafeEqual(Buffer.from(given), Buffer.from(stored));
  if (!match) {
    await recordFailure(ctx.repos, keys, ctx.clock.now());
    await ctx.transaction((tx) =>
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
  await recordSuccess(ctx.repos, keys);
  return { userId: person.user_id, aal: 1, amr: [ENROLMENT_AMR], authenticatorId: 'enrolment' };
}

/** An RA or operator invites a person to enrol their first authenticator (up to `maxAal`) with a one-time link. */
export async function createEnrolmentInvitation(
  ctx: ServiceContext,
  input: { userId: string; maxAal: 2 | 3; ttlHours?: number },
): Promise<string> {
  authorize(ctx.actor, 'authenticator:enrol', await personTarget(ctx.repos, ctx.clock, input.userId));
  const token = randomBytes(32).toString('base64url');
  const now = ctx.clock.now();
  await ctx.transaction(async (tx) => {
    await tx.enrolment.insertInvitation({
      tokenHash: hashToken(token),
      userId: input.userId,
      maxAal: input.maxAal,
      createdBy: ctx.actor.id,
      now,
      expiresAt: new Date(now.getTime() + (input.ttlHours ?? 24) * 3_600_000),
    });
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
  const invitation = await ctx.repos.enrolment.liveInvitation(hashToken(token), ctx.clock.now());
  if (!invitation) throw new AppError('card.grant_invalid');
  return { userId: invitation.user_id, maxAal: invitation.max_aal as 2 | 3 };
}

/** Uses an invitation up (once). */
export async function consumeInvitation(ctx: ServiceContext, token: string): Promise<void> {
  if (!(await ctx.repos.enrolment.useInvitation(hashToken(token), ctx.clock.now()))) {
    throw new AppError('card.grant_invalid');
  }
}
