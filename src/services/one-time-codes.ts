import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { AppError } from '../domain/errors.ts';
import type { Person } from '../domain/identity/person.ts';
import type { Queryable } from '../storage/database.ts';
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

export async function contactVerification(q: Queryable, userId: string) {
  const { rows } = await q.query<{ email_verified_at: Date | null; mobile_verified_at: Date | null }>(
    'SELECT email_verified_at, mobile_verified_at FROM people WHERE user_id = $1',
    [userId],
  );
  return {
    emailVerifiedAt: rows[0]?.email_verified_at ? new Date(rows[0].email_verified_at).toISOString() : null,
    mobileVerifiedAt: rows[0]?.mobile_verified_at ? new Date(rows[0].mobile_verified_at).toISOString() : null,
  };
}

/**
 * Counts a request for a code before anything is looked up (services/attempts.ts codeSendPolicy). Over the address's
 * limit: 429 (it says nothing about anyone). Over the limit for the person asked about (a user ID or an email address,
 * recorded or not): false — send nothing and answer as usual, so the page still reveals nothing, the person's phone
 * or mailbox is not flooded, and the code they already have is not voided by someone else's request.
 */
export async function mayRequestCode(
  q: Queryable,
  purpose: CodePurpose,
  subject: string,
  ip: string | null | undefined,
  now: Date,
): Promise<boolean> {
  await assertNotLocked(q, counterKeys(`otc_send_${purpose}`, null, ip ?? null), now);
  try {
    await assertNotLocked(q, [{ key: `otc_send_${purpose}:for:${subject}`, policy: codeSendPolicy }], now);
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
    { ...person, ...(await contactVerification(ctx.db, person.userId)) },
    outbox.channels,
  );
  if (!contact) throw new AppError('one_time_code.no_contact');
  const code = String(randomInt(0, 100_000_000)).padStart(8, '0');
  const now = ctx.clock.now();
  const expiresAt = new Date(now.getTime() + CODE_TTL_MS);
  const what = purpose === 'card_unlock' ? 'unlock your smartcard' : 'add a way to sign in';
  await ctx.db.transaction(async (tx) => {
    await tx.query('UPDATE one_time_codes SET used_at = $3 WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL', [
      person.userId,
      purpose,
      now,
    ]);
    await tx.query(
      `INSERT INTO one_time_codes (code_id, user_id, purpose, subject_id, channel, code_hash, expires_at, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [
        randomBytes(12).toString('base64url'),
        person.userId,
        purpose,
        subjectId,
        contact.channel,
        hashToken(`${purpose}:${code}`),
        expiresAt,
        now,
      ],
    );
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
  await assertNotLocked(ctx.db, keys, now);
  const code = typeof input.code === 'string' ? input.code.replace(/\s+/g, '') : '';
  const { rows } = await ctx.db.query<{
    code_id: string;
    code_hash: string;
    subject_id: string | null;
    attempts: number;
  }>(
    `SELECT code_id, code_hash, subject_id, attempts FROM one_time_codes
     WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 ORDER BY created_at DESC LIMIT 1`,
    [input.userId, input.purpose, now],
  );
  const row = rows[0];
  const ok =
    row !== undefined &&
    /^[0-9]{8}$/.test(code) &&
    timingSafeEqual(Buffer.from(row.code_hash), Buffer.from(hashToken(`${input.purpose}:${code}`)));
  if (!ok) {
    await recordFailure(ctx.db, keys, now);
    if (row) {
      await ctx.db.query(
        `UPDATE one_time_codes SET attempts = attempts + 1, used_at = CASE WHEN attempts + 1 >= $2 THEN $3 ELSE used_at END
         WHERE code_id = $1`,
        [row.code_id, MAX_TRIES_PER_CODE, now],
      );
    }
    throw new AppError('one_time_code.invalid');
  }
  // Single use, even under concurrency: only the request that flips used_at wins.
  const { rowCount } = await ctx.db.query(
    'UPDATE one_time_codes SET used_at = $2 WHERE code_id = $1 AND used_at IS NULL',
    [row.code_id, now],
  );
  if (rowCount === 0) throw new AppError('one_time_code.invalid');
  await recordSuccess(ctx.db, keys);
  return { subjectId: row.subject_id };
}
