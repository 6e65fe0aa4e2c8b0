import { generateAuthenticationOptions, generateRegistrationOptions } from '@simplewebauthn/server';
import { isoBase64URL } from '@simplewebauthn/server/helpers';
import {
  checkAssertion,
  checkRegistration,
  parseAuthenticationResponse,
  parseRegistrationResponse,
  type RelyingPartyConfig,
} from '../authenticators/webauthn/verification.ts';
import { type Aal, authenticationMethods, webauthnCredentialAal } from '../domain/credentials/assurance.ts';
import { AppError } from '../domain/errors.ts';
import { isNationalId } from '../domain/identity/user-id.ts';
import { authorize } from '../domain/policy.ts';
import type { CredentialRow } from '../storage/repositories/webauthn-credentials.ts';
import { appendAudit } from './audit.ts';
import { consumeChallenge, createChallenge } from './challenges.ts';
import type { ServiceContext } from './context.ts';
import { refuse as refuseWith } from './refusals.ts';
import type { SignInResult } from './sessions.ts';
import { personTarget } from './targets.ts';

export type { RelyingPartyConfig };

export type WebauthnKind = 'security_key' | 'platform' | 'passkey';

export interface WebauthnCredential {
  credentialId: string;
  userId: string;
  kind: WebauthnKind;
  aal: Aal;
  nickname: string;
  aaguid: string;
  backupEligible: boolean;
  cloneWarning: boolean;
  createdAt: string;
  lastUsedAt: string | null;
}

function fromRow(r: CredentialRow): WebauthnCredential {
  return {
    credentialId: r.credential_id,
    userId: r.user_id,
    kind: r.kind,
    aal: r.aal as Aal,
    nickname: r.nickname,
    aaguid: r.aaguid,
    backupEligible: r.backup_eligible,
    cloneWarning: r.clone_warning,
    createdAt: new Date(r.created_at).toISOString(),
    lastUsedAt: r.last_used_at ? new Date(r.last_used_at).toISOString() : null,
  };
}

export async function webauthnCredentialsOf(ctx: ServiceContext, userId: string): Promise<WebauthnCredential[]> {
  return (await ctx.repos.webauthnCredentials.activeCredentialsOf(userId)).map(fromRow);
}

/** Registration options for a person. Existing credentials are excluded so one key is not registered twice. */
export async function startWebauthnRegistration(
  ctx: ServiceContext,
  rp: RelyingPartyConfig,
  input: { userId: string; kind: WebauthnKind },
) {
  const person = await ctx.repos.people.findPersonByUserId(input.userId);
  if (person?.status !== 'active') throw new AppError('person.not_found');
  const existing = await webauthnCredentialsOf(ctx, person.userId);
  const { challengeId, challenge } = await createChallenge(
    ctx.repos,
    'webauthn.register',
    person.userId,
    ctx.clock.now(),
    {
      kind: input.kind,
    },
  );
  const options = await generateRegistrationOptions({
    rpName: rp.rpName,
    rpID: rp.rpId,
    userName: person.userId,
    userDisplayName: person.preferredName ?? `${person.givenName} ${person.familyName}`,
    // The user handle is the user ID: usernameless sign-in with a discoverable credential finds the person by it.
    userID: new TextEncoder().encode(person.userId),
    // As bytes: a string challenge would be taken as UTF-8 text and base64url-encoded again, so the browser would sign
    // a different value from the one stored and every registration would fail.
    challenge: isoBase64URL.toBuffer(challenge),
    timeout: 120_000,
    attestationType: 'direct',
    excludeCredentials: existing.map((c) => ({ id: c.credentialId })),
    authenticatorSelection: {
      residentKey: input.kind === 'security_key' ? 'preferred' : 'required',
      userVerification: 'required',
      authenticatorAttachment:
        input.kind === 'security_key' ? 'cross-platform' : input.kind === 'platform' ? 'platform' : undefined,
    },
    supportedAlgorithmIDs: [-7, -257],
  });
  return { challengeId, options };
}

/**
 * Verifies a new credential and records it with the level it earns. `callerAal` is the level of the session that
 * asked (or 3 for an RA acting at the desk): adding an AAL3 authenticator needs AAL3 (DOMAIN §6).
 */
export async function finishWebauthnRegistration(
  ctx: ServiceContext,
  rp: RelyingPartyConfig,
  input: { userId: string; challengeId: unknown; response: unknown; nickname?: string; callerAal: Aal },
): Promise<WebauthnCredential> {
  const response = parseRegistrationResponse(input.response);
  const now = ctx.clock.now();
  const ch = await consumeChallenge(ctx.repos, 'webauthn.register', input.challengeId, now);
  if (ch.userId !== input.userId) throw new AppError('webauthn.challenge_invalid');
  // The person may have been suspended (or have left) since the options were issued.
  const person = await ctx.repos.people.findPersonByUserId(input.userId);
  if (person?.status !== 'active') {
    throw await refuse(ctx, input.userId, 'webauthn.registration_refused', `person ${person?.status ?? 'missing'}`);
  }
  const checked = await checkRegistration(rp, response, ch.challenge, ctx.clock.now());
  if (!checked.ok) throw await refuse(ctx, input.userId, 'webauthn.registration_refused', checked.reason);
  const { info, backupEligible } = checked;
  const aal = webauthnCredentialAal({
    backupEligible,
    userVerified: info.userVerified,
    attestationTrusted: checked.attestationTrusted,
  });
  if (aal < 2) throw await refuse(ctx, input.userId, 'webauthn.registration_refused', 'no user verification');
  if (aal === 3 && input.callerAal < 3) throw new AppError('auth.step_up_required');
  const declared = ch.data.kind as WebauthnKind;
  const kind: WebauthnKind = backupEligible ? 'passkey' : declared === 'passkey' ? 'security_key' : declared;
  const nickname = (input.nickname ?? '').trim().slice(0, 60) || defaultNickname(kind);
  return ctx.transaction(async (tx) => {
    const row = await tx.webauthnCredentials.insertCredential({
      credentialId: info.credential.id,
      userId: input.userId,
      publicKey: Buffer.from(info.credential.publicKey),
      counter: info.credential.counter,
      transports: info.credential.transports ?? [],
      aaguid: info.aaguid,
      format: info.fmt,
      backupEligible,
      backedUp: info.credentialBackedUp,
      kind,
      aal,
      nickname,
      now,
    });
    if (!row) throw new AppError('webauthn.verification_failed', { reason: 'already registered' });
    const credential = fromRow(row);
    await appendAudit(tx, ctx, {
      action: 'authenticator.webauthn_registered',
      targetType: 'person',
      targetId: input.userId,
      before: null,
      after: {
        credentialId: credential.credentialId,
        kind,
        aal,
        aaguid: info.aaguid,
        format: info.fmt,
        backupEligible,
      },
    });
    return credential;
  });
}

function defaultNickname(kind: WebauthnKind): string {
  return kind === 'security_key' ? 'Security key' : kind === 'platform' ? 'Windows Hello' : 'Passkey';
}

function refuse(ctx: ServiceContext, userId: string | null, action: string, reason: string): Promise<AppError> {
  return refuseWith(ctx, 'webauthn.verification_failed', { action, targetType: 'person', targetId: userId, reason });
}

/** Options for signing in. Without a user ID the browser offers any discoverable credential (usernameless). */
export async function startWebauthnAuthentication(
  ctx: ServiceContext,
  rp: RelyingPartyConfig,
  input: { userId?: string },
) {
  let allow: { id: string; transports?: string[] }[] | undefined;
  if (input.userId) {
    if (!isNationalId(input.userId)) throw new AppError('person.invalid_user_id');
    const rows = await ctx.repos.webauthnCredentials.activeCredentialIdsOf(input.userId);
    allow = rows.map((r) => ({ id: r.credential_id, transports: r.transports }));
  }
  const { challengeId, challenge } = await createChallenge(ctx.repos, 'webauthn.authenticate', null, ctx.clock.now());
  const options = await generateAuthenticationOptions({
    rpID: rp.rpId,
    challenge: isoBase64URL.toBuffer(challenge),
    timeout: 120_000,
    userVerification: 'required',
    allowCredentials: allow as never,
  });
  return { challengeId, options };
}

/** Verifies an assertion. Returns who signed in, at which level, or throws auth.failed (details only in the audit). */
export async function finishWebauthnAuthentication(
  ctx: ServiceContext,
  rp: RelyingPartyConfig,
  input: { challengeId: unknown; response: unknown },
): Promise<SignInResult> {
  const response = parseAuthenticationResponse(input.response);
  const now = ctx.clock.now();
  const ch = await consumeChallenge(ctx.repos, 'webauthn.authenticate', input.challengeId, now);
  const row = await ctx.repos.webauthnCredentials.findCredential(response.id);
  if (row?.status !== 'active') throw await failSignIn(ctx, row?.user_id ?? null, 'unknown or removed credential');
  if (response.response.userHandle && isoBase64URL.toUTF8String(response.response.userHandle) !== row.user_id) {
    throw await failSignIn(ctx, row.user_id, 'user handle does not match the credential');
  }
  const person = await ctx.repos.people.findPersonByUserId(row.user_id);
  if (person?.status !== 'active') throw await failSignIn(ctx, row.user_id, `person ${person?.status ?? 'missing'}`);
  const checked = await checkAssertion(rp, response, ch.challenge, {
    id: row.credential_id,
    publicKey: row.public_key,
    counter: Number(row.sign_count),
    transports: row.transports,
  });
  if (!checked.ok && checked.reason === 'counter') throw await flagClone(ctx, row);
  if (!checked.ok) throw await failSignIn(ctx, row.user_id, checked.reason);
  const { info } = checked;
  // A key that has since become synced (backed up) cannot be AAL3 any more.
  const aal: Aal = info.credentialBackedUp || row.backup_eligible ? (Math.min(row.aal, 2) as Aal) : (row.aal as Aal);
  // Only if the counter still increases over the stored one: two assertions with the same counter verified at the same
  // time (a cloned key used twice at once) must not both succeed.
  if (
    !(await ctx.repos.webauthnCredentials.recordCredentialUse(
      row.credential_id,
      info.newCounter,
      now,
      info.credentialBackedUp,
    ))
  ) {
    throw await flagClone(ctx, row);
  }
  const method = row.kind === 'passkey' || aal < 3 ? 'passkey' : row.kind;
  return {
    userId: row.user_id,
    aal,
    amr: [authenticationMethods[method].amr],
    authenticatorId: `webauthn:${row.credential_id}`,
  };
}

async function flagClone(ctx: ServiceContext, row: CredentialRow): Promise<AppError> {
  await ctx.transaction(async (tx) => {
    await tx.webauthnCredentials.flagCloneWarning(row.credential_id);
    await appendAudit(tx, ctx, {
      action: 'authenticator.clone_warning',
      targetType: 'person',
      targetId: row.user_id,
      before: null,
      after: { credentialId: row.credential_id, storedCounter: Number(row.sign_count) },
    });
  });
  return new AppError('auth.failed');
}

function failSignIn(ctx: ServiceContext, userId: string | null, reason: string): Promise<AppError> {
  return refuseWith(ctx, 'auth.failed', {
    action: 'signin.failed',
    targetType: 'person',
    targetId: userId,
    after: { method: 'webauthn' },
    reason,
  });
}

/** Removes a credential (its owner or an RA); sessions it opened end. `reason` is kept in the audit trail. */
export async function removeWebauthnCredential(
  ctx: ServiceContext,
  userId: string,
  credentialId: string,
  reason: string | null = null,
): Promise<void> {
  // Holders manage their own authenticators; anyone else needs the RA power over that person (policy).
  if (!(ctx.actor.kind === 'person' && ctx.actor.userId === userId)) {
    authorize(ctx.actor, 'authenticator:enrol', await personTarget(ctx.repos, ctx.clock, userId));
  }
  await ctx.transaction(async (tx) => {
    if (!(await tx.webauthnCredentials.removeCredentialOf(credentialId, userId))) {
      throw new AppError('authenticator.not_found');
    }
    await tx.sessions.endSessionsOfAuthenticator(`webauthn:${credentialId}`, ctx.clock.now());
    await appendAudit(tx, ctx, {
      action: 'authenticator.webauthn_removed',
      targetType: 'person',
      targetId: userId,
      before: { credentialId },
      after: null,
      reason,
    });
  });
}
