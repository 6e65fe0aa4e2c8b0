import { randomBytes } from 'node:crypto';
import * as OTPAuth from 'otpauth';
import { codeSchema, matchingStep, totpFor } from '../authenticators/totp/code.ts';
import { authenticationMethods } from '../domain/credentials/assurance.ts';
import { AppError } from '../domain/errors.ts';
import { authorize } from '../domain/policy.ts';
import { assertNotLocked, counterKeys, recordFailure, recordSuccess } from './attempts.ts';
import { appendAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';
import { refuse } from './refusals.ts';
import type { SignInResult } from './sessions.ts';
import { personTarget } from './targets.ts';

const SEALED_PURPOSE = 'totp.secret';

/** Starts enrolling an app: a new secret, shown once (as an otpauth:// URI for a QR code), pending until confirmed. */
export async function startTotpEnrolment(
  ctx: ServiceContext,
  input: { userId: string; issuer: string; nickname?: string },
): Promise<{ totpId: string; uri: string; secret: string }> {
  const person = await ctx.repos.people.findPersonByUserId(input.userId);
  if (person?.status !== 'active') throw new AppError('person.not_found');
  const secret = new OTPAuth.Secret({ size: 20 });
  const totpId = `totp_${randomBytes(9).toString('base64url')}`;
  await ctx.repos.totp.insertPendingTotp({
    totpId,
    userId: person.userId,
    secretSealed: ctx.sealer.seal(secret.base32, SEALED_PURPOSE),
    nickname: (input.nickname ?? 'Authenticator app').slice(0, 60),
    now: ctx.clock.now(),
  });
  return { totpId, uri: totpFor(secret, person.userId, input.issuer).toString(), secret: secret.base32 };
}

/** Confirms enrolment with a first code from the app, proving it holds the secret. */
export async function confirmTotpEnrolment(
  ctx: ServiceContext,
  input: { userId: string; totpId: string; code: unknown; ip: string | null },
): Promise<void> {
  const code = codeSchema.safeParse(input.code);
  if (!code.success) throw new AppError('totp.invalid_code');
  const keys = counterKeys('totp', input.userId, input.ip);
  const now = ctx.clock.now();
  await assertNotLocked(ctx.repos, keys, now);
  const sealed = await ctx.repos.totp.pendingTotpSecret(input.totpId, input.userId);
  if (!sealed) throw new AppError('authenticator.not_found');
  const secret = OTPAuth.Secret.fromBase32(ctx.sealer.open(sealed, SEALED_PURPOSE).toString());
  const step = matchingStep(secret, code.data, now);
  if (step === null) {
    await recordFailure(ctx.repos, keys, now);
    throw new AppError('totp.invalid_code');
  }
  await ctx.transaction(async (tx) => {
    await tx.totp.activateTotp(input.totpId, step);
    await recordSuccess(tx, keys);
    await appendAudit(tx, ctx, {
      action: 'authenticator.totp_enrolled',
      targetType: 'person',
      targetId: input.userId,
      before: null,
      after: { totpId: input.totpId },
    });
  });
}

/**
 * Signs in with a code from the app (AAL2). A code is accepted once: its time step must be later than the last one
 * used (RFC 6238 §5.2). Failures count against the person and the IP address.
 */
export async function signInWithTotp(
  ctx: ServiceContext,
  input: { userId: unknown; code: unknown; ip: string | null },
): Promise<SignInResult> {
  const userId = typeof input.userId === 'string' && /^[0-9]{12}$/.test(input.userId) ? input.userId : null;
  const keys = counterKeys('totp', userId, input.ip);
  const now = ctx.clock.now();
  await assertNotLocked(ctx.repos, keys, now);
  const code = codeSchema.safeParse(input.code);
  const fail = async (reason: string) => {
    await recordFailure(ctx.repos, keys, now);
    return refuse(ctx, 'auth.failed', {
      action: 'signin.failed',
      targetType: 'person',
      targetId: userId,
      after: { method: 'totp' },
      reason,
    });
  };
  if (!userId || !code.success) throw await fail('malformed user ID or code');
  const person = await ctx.repos.people.findPersonByUserId(userId);
  if (person?.status !== 'active') throw await fail('no active person');
  for (const row of await ctx.repos.totp.activeTotpSecrets(userId)) {
    const secret = OTPAuth.Secret.fromBase32(ctx.sealer.open(row.secret_sealed, SEALED_PURPOSE).toString());
    const step = matchingStep(secret, code.data, now);
    if (step === null) continue;
    // Atomic: of two requests with the same code, only one moves last_step forward.
    if (!(await ctx.repos.totp.advanceTotpStep(row.totp_id, step, now))) throw await fail('code replayed');
    await recordSuccess(ctx.repos, keys);
    return { userId, aal: 2, amr: [authenticationMethods.totp.amr], authenticatorId: `totp:${row.totp_id}` };
  }
  throw await fail('wrong code');
}

/** Removes an authenticator app (its owner or an RA); `reason` is kept in the audit trail (the RA console asks for it). */
export async function removeTotp(
  ctx: ServiceContext,
  userId: string,
  totpId: string,
  reason: string | null = null,
): Promise<void> {
  // Holders manage their own authenticators; anyone else needs the RA power over that person (policy).
  if (!(ctx.actor.kind === 'person' && ctx.actor.userId === userId)) {
    authorize(ctx.actor, 'authenticator:enrol', await personTarget(ctx.repos, ctx.clock, userId));
  }
  await ctx.transaction(async (tx) => {
    if (!(await tx.totp.removeTotpOf(totpId, userId))) throw new AppError('authenticator.not_found');
    await appendAudit(tx, ctx, {
      action: 'authenticator.totp_removed',
      targetType: 'person',
      targetId: userId,
      before: { totpId },
      after: null,
      reason,
    });
  });
}

export async function totpAuthenticatorsOf(ctx: ServiceContext, userId: string) {
  const rows = await ctx.repos.totp.activeTotpsOf(userId);
  return rows.map((r) => ({
    totpId: r.totp_id,
    nickname: r.nickname,
    createdAt: new Date(r.created_at).toISOString(),
    lastUsedAt: r.last_used_at ? new Date(r.last_used_at).toISOString() : null,
  }));
}
