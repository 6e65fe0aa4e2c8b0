import {
  type AuthenticationResponseJSON,
  type RegistrationResponseJSON,
  type VerifiedAuthenticationResponse,
  type VerifiedRegistrationResponse,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import { decodeAttestationObject } from '@simplewebauthn/server/helpers';
import { z } from 'zod';
import { AppError } from '../../domain/errors.ts';
import { type AttestationRoots, attestationChainTrusted } from './attestation-trust.ts';

/**
 * The cryptographic checks of WebAuthn (W3C WebAuthn Level 3 §7.1 registration, §7.2 authentication): the browser's
 * JSON checked for shape and size, then the library's verification, then whether the attestation chains to a root the
 * service trusts. No database: services/webauthn.ts stores what comes out.
 */
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

/** A registration response of the right shape (webauthn.verification_failed otherwise). */
export function parseRegistrationResponse(input: unknown): RegistrationResponseJSON {
  return parseResponse(registrationResponseSchema, input) as RegistrationResponseJSON;
}

/** An authentication response of the right shape (webauthn.verification_failed otherwise). */
export function parseAuthenticationResponse(input: unknown): AuthenticationResponseJSON {
  return parseResponse(authenticationResponseSchema, input) as AuthenticationResponseJSON;
}

export type RegistrationInfo = VerifiedRegistrationResponse['registrationInfo'] & object;

/** A verified registration, with whether its attestation is trusted for AAL3; or the reason it was refused. */
export type RegistrationCheck =
  | { ok: true; info: RegistrationInfo; backupEligible: boolean; attestationTrusted: boolean }
  | { ok: false; reason: 'verification error' | 'not verified' };

export async function checkRegistration(
  rp: RelyingPartyConfig,
  response: RegistrationResponseJSON,
  expectedChallenge: string,
  now: Date,
): Promise<RegistrationCheck> {
  let verification: VerifiedRegistrationResponse;
  try {
    verification = await verifyRegistrationResponse({
      response,
      expectedChallenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.rpId,
      requireUserVerification: true,
      supportedAlgorithmIDs: [-7, -257],
    });
  } catch {
    return { ok: false, reason: 'verification error' };
  }
  if (!verification.verified || !verification.registrationInfo) return { ok: false, reason: 'not verified' };
  const info = verification.registrationInfo;
  const attestation = decodeAttestationObject(info.attestationObject);
  const x5c = attestation.get('attStmt').get('x5c') ?? [];
  return {
    ok: true,
    info,
    backupEligible: info.credentialDeviceType === 'multiDevice',
    attestationTrusted:
      info.fmt !== 'none' &&
      rp.aal3Aaguids.has(info.aaguid) &&
      attestationChainTrusted(x5c, rp.attestationRoots.roots(), now),
  };
}

export type AuthenticationInfo = VerifiedAuthenticationResponse['authenticationInfo'];

/** A verified assertion; or why not: `counter` when the signature counter did not increase (a cloned key?). */
export type AssertionCheck =
  | { ok: true; info: AuthenticationInfo }
  | { ok: false; reason: 'counter' | 'signature verification failed' | 'not verified' };

export async function checkAssertion(
  rp: RelyingPartyConfig,
  response: AuthenticationResponseJSON,
  expectedChallenge: string,
  credential: { id: string; publicKey: Uint8Array; counter: number; transports: string[] },
): Promise<AssertionCheck> {
  let verification: VerifiedAuthenticationResponse;
  try {
    verification = await verifyAuthenticationResponse({
      response,
      expectedChallenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.rpId,
      requireUserVerification: true,
      credential: {
        id: credential.id,
        publicKey: new Uint8Array(credential.publicKey),
        counter: credential.counter,
        transports: credential.transports as never,
      },
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : '';
    // A signature counter that did not increase suggests a cloned authenticator (WebAuthn §6.1.1).
    if (/counter/i.test(message)) return { ok: false, reason: 'counter' };
    return { ok: false, reason: 'signature verification failed' };
  }
  if (!verification.verified) return { ok: false, reason: 'not verified' };
  return { ok: true, info: verification.authenticationInfo };
}
