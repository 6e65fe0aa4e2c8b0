import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import { decodeAttestationObject, isoBase64URL } from '@simplewebauthn/server/helpers';
import { z } from 'zod';
import { type AttestationRoots, attestationChainTrusted } from '../authenticators/webauthn/attestation-trust.ts';
import { type Aal, authenticationMethods, webauthnCredentialAal } from '../domain/credentials/assurance.ts';
import { AppError } from '../domain/errors.ts';
import { isNationalId } from '../domain/identity/user-id.ts';
import { authorize } from '../domain/policy.ts';
import { findPersonByUserId } from '../storage/people.ts';
import { appendAudit } from './audit.ts';
import { consumeChallenge, createChallenge } from './challenges.ts';
import type { ServiceContext } from './context.ts';
import type { SignInResult } from './sessions.ts';
import { personTarget } from './targets.ts';

export interface RelyingPartyConfig {
  rpId: string;
  rpName: string;
  origin: string;
  /** AAGUIDs of authenticator models whose attested, device-bound keys count as AAL3. */
  aal3Aaguids: ReadonlySet<string>;
  /** Manufacturer roots an attestation must chain to for AAL3. */
  attestationRoots: AttestationRoots;
  /** Demo mode: Chromium's virtual security key is trusted too (authenticators/webauthn/demo-trust.ts). */
  demo?: boolean;
}

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

const MAX_RESPONSE_FIELD = 16_384;
const b64url = z
  .string()
  .regex(/^[A-Za-z0-9_-]*={0,2}$/)
  .max(MAX_RESPONSE_FIELD);

/** The browser's JSON, checked for shape and size before any library parses it. */
const registrationResponseSchema = z.object({
  id: b64url.min(16).max(1_400),
  rawId: b64url.min(16).max(1_400),
  type: z.literal('public-key'),
  response: z.object({
    clientDataJSON: b64url,
    attestationObject: b64url,
    transports: z.array(z.string().max(20)).max(10).optional(),
    authenticatorData: b64url.optional(),
    publicKey: b64url.optional(),
    publicKeyAlgorithm: z.number().optional(),
  }),
  clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
});

const authenticationResponseSchema = z.object({
  id: b64url.min(16).max(1_400),
  rawId: b64url.min(16).max(1_400),
  type: z.literal('public-key'),
  response: z.object({
    clientDataJSON: b64url,
    authenticatorData: b64url,
    signature: b64url,
    userHandle: b64url.optional(),
  }),
  clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
});

function parseResponse<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const res = schema.safeParse(input);
  if (!res.success) throw new AppError('webauthn.verification_failed', { reason: 'malformed' });
  return res.data;
}

interface CredentialRow {
  credential_id: string;
  user_id: string;
  public_key: Uint8Array;
  sign_count: string;
  transports: string[];
  aaguid: string;
  backup_eligible: boolean;
  kind: WebauthnKind;
  aal: number;
  nickname: string;
  status: string;
  clone_warning: boolean;
  created_at: Date;
  last_used_at: Date | null;
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
  const { rows } = await ctx.db.query<CredentialRow>(
    "SELECT * FROM webauthn_credentials WHERE user_id = $1 AND status = 'active' ORDER BY created_at",
    [userId],
  );
  return rows.map(fromRow);
}

/** Registration options for a person. Existing credentials are excluded so one key is not registered twice. */
export async function startWebauthnRegistration(
  ctx: ServiceContext,
  rp: RelyingPartyConfig,
  input: { userId: string; kind: WebauthnKind },
) {
  const person = await findPersonByUserId(ctx.db, input.userId);
  if (person?.status !== 'active') throw new AppError('person.not_found');
  const existing = await webauthnCredentialsOf(ctx, person.userId);
  const { challengeId, challenge } = await createChallenge(
    ctx.db,
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
  const response = parseResponse(registrationResponseSchema, input.response) as RegistrationResponseJSON;
  const now = ctx.clock.now();
  const ch = await consumeChallenge(ctx.db, 'webauthn.register', input.challengeId, now);
  if (ch.userId !== input.userId) throw new AppError('webauthn.challenge_invalid');
  // The person may have been suspended (or have left) since the options were issued.
  const person = await findPersonByUserId(ctx.db, input.userId);
  if (person?.status !== 'active') {
    throw await refuse(ctx, input.userId, 'webauthn.registration_refused', `person ${person?.status ?? 'missing'}`);
  }
  let verification: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
  try {
    verification = await verifyRegistrationResponse({
      response,
      expectedChallenge: ch.challenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.rpId,
      requireUserVerification: true,
      supportedAlgorithmIDs: [-7, -257],
    });
  } catch {
    throw await refuse(ctx, input.userId, 'webauthn.registration_refused', 'verification error');
  }
  if (!verification.verified) throw await refuse(ctx, input.userId, 'webauthn.registration_refused', 'not verified');
  const info = verification.registrationInfo;
  const attestation = decodeAttestationObject(info.attestationObject);
  const x5c = attestation.get('attStmt').get('x5c') ?? [];
  const backupEligible = info.credentialDeviceType === 'multiDevice';
  const aal = webauthnCredentialAal({
    backupEligible,
    userVerified: info.userVerified,
    attestationTrusted:
      info.fmt !== 'none' &&
      rp.aal3Aaguids.has(info.aaguid) &&
      attestationChainTrusted(x5c, rp.attestationRoots.roots(), ctx.clock.now()),
  });
  if (aal < 2) throw await refuse(ctx, input.userId, 'webauthn.registration_refused', 'no user verification');
  if (aal === 3 && input.callerAal < 3) throw new AppError('auth.step_up_required');
  const declared = ch.data.kind as WebauthnKind;
  const kind: WebauthnKind = backupEligible ? 'passkey' : declared === 'passkey' ? 'security_key' : declared;
  const nickname = (input.nickname ?? '').trim().slice(0, 60) || defaultNickname(kind);
  return ctx.db.transaction(async (tx) => {
    const { rows } = await tx.query<CredentialRow>(
      `INSERT INTO webauthn_credentials (credential_id, user_id, public_key, sign_count, transports, aaguid, attestation_format,
         backup_eligible, backed_up, kind, aal, nickname, status, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'active', $13)
       ON CONFLICT (credential_id) DO NOTHING RETURNING *`,
      [
        info.credential.id,
        input.userId,
        Buffer.from(info.credential.publicKey),
        info.credential.counter,
        info.credential.transports ?? [],
        info.aaguid,
        info.fmt,
        backupEligible,
        info.credentialBackedUp,
        kind,
        aal,
        nickname,
        now,
      ],
    );
    if (!rows[0]) throw new AppError('webauthn.verification_failed', { reason: 'already registered' });
    const credential = fromRow(rows[0]);
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

async function refuse(ctx: ServiceContext, userId: string | null, action: string, reason: string): Promise<AppError> {
  await ctx.db.transaction((tx) =>
    appendAudit(tx, ctx, { action, targetType: 'person', targetId: userId, before: null, after: null, reason }),
  );
  return new AppError('webauthn.verification_failed');
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
    const { rows } = await ctx.db.query<{ credential_id: string; transports: string[] }>(
      "SELECT credential_id, transports FROM webauthn_credentials WHERE user_id = $1 AND status = 'active'",
      [input.userId],
    );
    allow = rows.map((r) => ({ id: r.credential_id, transports: r.transports }));
  }
  const { challengeId, challenge } = await createChallenge(ctx.db, 'webauthn.authenticate', null, ctx.clock.now());
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
  const response = parseResponse(authenticationResponseSchema, input.response) as AuthenticationResponseJSON;
  const now = ctx.clock.now();
  const ch = await consumeChallenge(ctx.db, 'webauthn.authenticate', input.challengeId, now);
  const { rows } = await ctx.db.query<CredentialRow>('SELECT * FROM webauthn_credentials WHERE credential_id = $1', [
    response.id,
  ]);
  const row = rows[0];
  if (row?.status !== 'active') throw await failSignIn(ctx, row?.user_id ?? null, 'unknown or removed credential');
  if (response.response.userHandle && isoBase64URL.toUTF8String(response.response.userHandle) !== row.user_id) {
    throw await failSignIn(ctx, row.user_id, 'user handle does not match the credential');
  }
  const person = await findPersonByUserId(ctx.db, row.user_id);
  if (person?.status !== 'active') throw await failSignIn(ctx, row.user_id, `person ${person?.status ?? 'missing'}`);
  let verification: Awaited<ReturnType<typeof verifyAuthenticationResponse>>;
  try {
    verification = await verifyAuthenticationResponse({
      response,
      expectedChallenge: ch.challenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.rpId,
      requireUserVerification: true,
      credential: {
        id: row.credential_id,
        publicKey: new Uint8Array(row.public_key),
        counter: Number(row.sign_count),
        transports: row.transports as never,
      },
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : '';
    // A signature counter that did not increase suggests a cloned authenticator (WebAuthn §6.1.1).
    if (/counter/i.test(message)) throw await flagClone(ctx, row);
    throw await failSignIn(ctx, row.user_id, 'signature verification failed');
  }
  if (!verification.verified) throw await failSignIn(ctx, row.user_id, 'not verified');
  const info = verification.authenticationInfo;
  // A key that has since become synced (backed up) cannot be AAL3 any more.
  const aal: Aal = info.credentialBackedUp || row.backup_eligible ? (Math.min(row.aal, 2) as Aal) : (row.aal as Aal);
  // Only if the counter still increases over the stored one: two assertions with the same counter verified at the same
  // time (a cloned key used twice at once) must not both succeed.
  const { rowCount } = await ctx.db.query(
    `UPDATE webauthn_credentials SET sign_count = $2, last_used_at = $3, backed_up = $4
     WHERE credential_id = $1 AND (sign_count < $2 OR (sign_count = 0 AND $2 = 0))`,
    [row.credential_id, info.newCounter, now, info.credentialBackedUp],
  );
  if (rowCount === 0) throw await flagClone(ctx, row);
  const method = row.kind === 'passkey' || aal < 3 ? 'passkey' : row.kind;
  return {
    userId: row.user_id,
    aal,
    amr: [authenticationMethods[method].amr],
    authenticatorId: `webauthn:${row.credential_id}`,
  };
}

async function flagClone(ctx: ServiceContext, row: CredentialRow): Promise<AppError> {
  await ctx.db.transaction(async (tx) => {
    await tx.query('UPDATE webauthn_credentials SET clone_warning = true WHERE credential_id = $1', [
      row.credential_id,
    ]);
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

async function failSignIn(ctx: ServiceContext, userId: string | null, reason: string): Promise<AppError> {
  await ctx.db.transaction((tx) =>
    appendAudit(tx, ctx, {
      action: 'signin.failed',
      targetType: 'person',
      targetId: userId,
      before: null,
      after: { method: 'webauthn' },
      reason,
    }),
  );
  return new AppError('auth.failed');
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
    authorize(ctx.actor, 'authenticator:enrol', await personTarget(ctx.db, ctx.clock, userId));
  }
  await ctx.db.transaction(async (tx) => {
    const { rowCount } = await tx.query(
      "UPDATE webauthn_credentials SET status = 'removed' WHERE credential_id = $1 AND user_id = $2 AND status = 'active'",
      [credentialId, userId],
    );
    if (rowCount === 0) throw new AppError('authenticator.not_found');
    await tx.query(
      "UPDATE web_sessions SET ended_at = $2, end_reason = 'authenticator_removed' WHERE authenticator_id = $1 AND ended_at IS NULL",
      [`webauthn:${credentialId}`, ctx.clock.now()],
    );
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
