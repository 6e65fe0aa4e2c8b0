import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { AppError } from '../domain/errors.ts';
import type { Person } from '../domain/identity/person.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { assertNotLocked, codeSendPolicy, counterKeys, recordFailure, recordSuccess } from './attempts.ts';
import type { ServiceContext } from './context.ts';
import type { Channel, NotificationOutbox } from './notifications.ts';
import { hashToken } from './sessions.ts';

/** One-time codes: 8 digits, valid 15 minutes, single use (DOMAIN §6 self-service unlock); 5 wrong tries void one. */
export const CODE_TTL_MS = 15 * 60_000;
const MAX_TRIES_PER_CODE = 5;

export type CodePurpose = 'card_unlock' | 'enrolment';

/**
 * The verified contact a code goes to: the verified mobile first (faster) when text messages can be sent, else the
 * verified email.
 */
export function verifiedContact(
  person: Person & { emailVerifiedAt?: string | null; mobileVerifiedAt?: string | null },
  channels: ReadonlySet<Channel> = new Set(['email', 'mobile']),
) {
  if (person.mobile && person.mobileVerifiedAt && channels.has('mobile')) {
    return { channel: 'mobile' as const, to: person.mobile };
  }
  if (person.email && person.emailVerifiedAt) return { channel: 'email' as const, to: person.email };
  return null;
}

export async function contactVerification(repos: Repositories, userId: string) {
  const row = await repos.people.contactVerifiedAt(userId);
  return {
    emailVerifiedAt: row?.email_verified_at ? new Date(row.email_verified_at).toISOString() : null,
    mobileVerifiedAt: row?.mobile_verified_at ? new Date(row.mobile_verified_at).toISOString() : null,
  };
}

/**
 * Counts a request for a code before anything is looked up (services/attempts.ts codeSendPolicy). Over the address's
 * limit: 429 (it says nothing about anyone). Over the limit for the person asked about (a user ID or an email address,
 * recorded or not): false — send nothing and answer as usual, so the page still reveals nothing, the person's phone
 * or mailbox is not flooded, and the code they already have is not voided by someone else's request.
 */
export async function mayRequestCode(
  repos: Repositories,
  purpose: CodePurpose,
  subject: string,
  ip: string | null | undefined,
  now: Date,
): Promise<boolean> {
  await assertNotLocked(repos, counterKeys(`otc_send_${purpose}`, null, ip ?? null), now);
  try {
    await assertNotLocked(repos, [{ key: `otc_send_${purpose}:for:${subject}`, policy: codeSendPolicy }], now);
    return true;
  } catch (err) {
    if (err instanceof AppError && err.code === 'auth.rate_limited') return false;
    throw err;
  }
}

/**
 * Sends a new code (voiding earlier unused ones for the same purpose and subject). The code and its message are
 * written together, so a code exists only with a message on its way; only its hash is kept, and the message's sealed
 * content is erased once sent (notifications.ts).
 */
export async function sendOneTimeCode(
  ctx: ServiceContext,
  outbox: NotificationOutbox,
  person: Person,
  purpose: CodePurpose,
  subjectId: string | null,
): Promise<{ channel: 'email' | 'mobile' }> {
  const contact = verifiedContact(
    { ...person, ...(await contactVerification(ctx.repos, person.userId)) },
    outbox.channels,
  );
  if (!contact) throw new AppError('one_time_code.no_contact');
  const code = String(randomInt(0, 100_000_000)).padStart(8, '0');
  const now = ctx.clock.now();
  const expiresAt = new Date(now.getTime() + CODE_TTL_MS);
  const what = purpose === 'card_unlock' ? 'unlock your smartcard' : 'add a way to sign in';
  await ctx.transaction(async (tx) => {
    await tx.oneTimeCodes.voidUnusedCodes(person.userId, purpose, now);
    await tx.oneTimeCodes.insertCode({
      codeId: randomBytes(12).toString('base64url'),
      userId: person.userId,
      purpose,
      subjectId,
      channel: contact.channel,
      codeHash: hashToken(`${purpose}:${code}`),
      expiresAt,
      now,
    });
    await outbox.queue(
      tx,
      {
        userId: person.userId,
        channel: contact.channel,
        to: contact.to,
        template: `one_time_code.${purpose}`,
        subject: 'Your OpenCIS code',
        text: `Your code to ${what} is ${code}. It expires in 15 minutes. Never share it: nobody from the NHS will ask you for it.`,
      },
      now,
      // A code that arrives after it has expired is of no use: it is marked failed instead.
      { deliverBy: expiresAt },
    );
  });
  outbox.wake();
  return { channel: contact.channel };
}

/**
 * Checks and consumes a code. Wrong codes count against the person and the IP address, and a code is voided after
 * five wrong tries, so 8 digits cannot be guessed in its lifetime.
 */
export async function redeemOneTimeCode(
  ctx: ServiceContext,
  input: { userId: string; purpose: CodePurpose; code: unknown; ip: string | null },
): Promise<{ subjectId: string | null }> {
  const keys = counterKeys(`otc_${input.purpose}`, input.userId, input.ip);
  const now = ctx.clock.now();
  await assertNotLocked(ctx.repos, keys, now);
  const code = typeof input.code === 'string' ? input.code.replace(/\s+/g, '') : '';
  const row = await ctx.repos.oneTimeCodes.latestLiveCode(input.userId, input.purpose, now);
  const ok =
    row !== undefined &&
    /^[0-9]{8}$/.test(code) &&
    timingSafeEqual(Buffer.from(row.code_hash), Buffer.from(hashToken(`${input.purpose}:${code}`)));
  if (!ok) {
    await recordFailure(ctx.repos, keys, now);
    if (row) await ctx.repos.oneTimeCodes.countWrongTry(row.code_id, MAX_TRIES_PER_CODE, now);
    throw new AppError('one_time_code.invalid');
  }
  // Single use, even under concurrency: only the request that flips used_at wins.
  if (!(await ctx.repos.oneTimeCodes.useCode(row.code_id, now))) throw new AppError('one_time_code.invalid');
  await recordSuccess(ctx.repos, keys);
  return { subjectId: row.subject_id };
}
