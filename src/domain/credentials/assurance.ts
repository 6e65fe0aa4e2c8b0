/**
 * Authenticator assurance (DOMAIN §6, NIST SP 800-63B-4). Each sign-in method reaches a level and is named in `amr`.
 */
export type Aal = 1 | 2 | 3;

export const authenticationMethods = {
  smartcard: { aal: 3, amr: 'SMARTCARD' },
  virtual_smartcard: { aal: 3, amr: 'VIRTUAL_SMARTCARD' },
  security_key: { aal: 3, amr: 'FIDO2' },
  platform: { aal: 3, amr: 'WHFB' },
  passkey: { aal: 2, amr: 'PASSKEY' },
  totp: { aal: 2, amr: 'TOTP' },
  // An organisation's own identity provider (NHSmail: Microsoft Entra ID with Microsoft Authenticator), federated.
  upstream: { aal: 2, amr: 'NHSMAIL' },
} as const satisfies Record<string, { aal: Aal; amr: string }>;

export type AuthenticationMethod = keyof typeof authenticationMethods;

/**
 * Re-authentication limits (NIST SP 800-63B-4 §2.2.3 / §2.3.3): AAL3 after 12 hours or 15 minutes idle; AAL2 after
 * 24 hours or 1 hour idle. A session that passes either limit is over: the person signs in again.
 */
export const sessionLimits: Record<Aal, { maxAgeMs: number; idleMs: number }> = {
  1: { maxAgeMs: 24 * 3_600_000, idleMs: 30 * 60_000 },
  2: { maxAgeMs: 24 * 3_600_000, idleMs: 3_600_000 },
  3: { maxAgeMs: 12 * 3_600_000, idleMs: 15 * 60_000 },
};

export function sessionExpiry(
  s: { aal: Aal; authenticatedAt: Date; lastSeenAt: Date },
  now: Date,
): 'ok' | 'max_age' | 'idle' {
  const limits = sessionLimits[s.aal];
  if (now.getTime() - s.authenticatedAt.getTime() >= limits.maxAgeMs) return 'max_age';
  if (now.getTime() - s.lastSeenAt.getTime() >= limits.idleMs) return 'idle';
  return 'ok';
}

/**
 * Which WebAuthn credentials count as AAL3 (DOMAIN §6): hardware-bound keys only. A backup-eligible (synced) passkey
 * can be copied off the device, so it is AAL2 whatever its attestation. A device-bound key is AAL3 when its attestation
 * was verified and its AAGUID is on the allow list of authenticator models the service trusts; otherwise AAL2.
 */
export function webauthnCredentialAal(c: {
  backupEligible: boolean;
  userVerified: boolean;
  attestationTrusted: boolean;
}): Aal {
  if (!c.userVerified) return 1;
  if (c.backupEligible) return 2;
  return c.attestationTrusted ? 3 : 2;
}
