import type { Repositories } from '../storage/repositories/index.ts';
import type { RelyingPartyConfig } from './webauthn.ts';

/**
 * Why a sign-in reached less than AAL3, in words a person can act on (issue #14: a sign-in below the level a page needs
 * says which level was reached, why, and what to do). The level itself was decided when the authenticator was
 * registered (services/webauthn.ts) and is not changed here; this only reads what it was decided from.
 */
export type BelowAal3 =
  | 'synced_passkey'
  | 'no_attestation'
  | 'model_not_trusted'
  | 'maker_not_trusted'
  | 'authenticator_app'
  | 'enrolment_only'
  | 'unknown';

export interface AssuranceExplained {
  reason: BelowAal3;
  /** What the person signed in with, e.g. "your security key "Blue key"". */
  method: string;
  why: string;
}

/** Why, as the end of "It counts as AAL<n> because …". */
const whys: Record<BelowAal3, string> = {
  synced_passkey:
    'it is a passkey that syncs between devices: a synced key can be copied, so it never counts as AAL3 (NIST SP 800-63B).',
  no_attestation: 'the key did not say who made it (it gave no attestation).',
  model_not_trusted: "this key's model is not on this server's trusted list (WEBAUTHN_AAL3_AAGUIDS).",
  maker_not_trusted:
    "this key's maker is not on the trusted list: its attestation does not chain to a root in WEBAUTHN_ATTESTATION_ROOTS.",
  authenticator_app: 'codes from an authenticator app can be phished, so apps never count as AAL3 (NIST SP 800-63B).',
  enrolment_only: 'you have only confirmed your email address and National Insurance number (enrolment).',
  unknown: 'that way of signing in does not reach AAL3.',
};

/** Why a WebAuthn credential was rated AAL2 when it was registered. */
export function webauthnBelowAal3(
  rp: Pick<RelyingPartyConfig, 'aal3Aaguids'>,
  c: { backup_eligible: boolean; attestation_format: string; aaguid: string },
): BelowAal3 {
  if (c.backup_eligible) return 'synced_passkey';
  if (c.attestation_format === 'none') return 'no_attestation';
  if (!rp.aal3Aaguids.has(c.aaguid.toLowerCase())) return 'model_not_trusted';
  return 'maker_not_trusted';
}

export function whyText(reason: BelowAal3): string {
  return whys[reason];
}

/** For a session's authenticator (`webauthn:<id>`, `totp:<id>`, `enrolment`): why it is below AAL3. */
export async function explainBelowAal3(
  repos: Repositories,
  rp: Pick<RelyingPartyConfig, 'aal3Aaguids'>,
  authenticatorId: string | null,
): Promise<AssuranceExplained> {
  if (authenticatorId?.startsWith('webauthn:')) {
    const c = await repos.webauthnCredentials.findCredential(authenticatorId.slice(9));
    if (c) {
      const reason = webauthnBelowAal3(rp, c);
      const what =
        c.kind === 'passkey' || reason === 'synced_passkey'
          ? 'passkey'
          : c.kind === 'platform'
            ? 'Windows Hello key'
            : 'security key';
      return { reason, method: `your ${what} "${c.nickname}"`, why: whys[reason] };
    }
  }
  if (authenticatorId?.startsWith('totp:')) {
    return { reason: 'authenticator_app', method: 'your authenticator app', why: whys.authenticator_app };
  }
  if (authenticatorId === 'enrolment') {
    return { reason: 'enrolment_only', method: 'your enrolment details', why: whys.enrolment_only };
  }
  return { reason: 'unknown', method: 'the way you signed in', why: whys.unknown };
}
