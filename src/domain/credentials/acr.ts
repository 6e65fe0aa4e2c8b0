import type { Aal } from './assurance.ts';

/**
 * CIS2 `acr_values` (DOMAIN §7) and what satisfies each. A session satisfies a value when its level and the methods it
 * used (`amr`) meet the rule. AAL2_NHSMAIL is met by a sign-in through an organisation's upstream OpenID Connect identity
 * provider (NHSmail is Microsoft Entra ID) linked to the person's record. AAL1_USERPASS is a CIS2 value OpenCIS does not
 * offer (no passwords): it is not advertised, and a request naming only values OpenCIS does not offer is answered
 * `unmet_authentication_requirements` (OpenID Connect Unmet Authentication Requirements 1.0), an error the relying party
 * can act on.
 */
export interface AcrRule {
  /** Levels that satisfy the value. */
  aal: readonly Aal[];
  /** If set, one of these methods must have been used. */
  amr?: readonly string[];
  /** The level to ask for when stepping up to this value. */
  stepUp: Aal;
  /** How to step up when only one way of signing in meets it: through an upstream identity provider. */
  via?: 'upstream';
}

export const acrRules = {
  AAL3_ANY: { aal: [3], stepUp: 3 },
  AAL2_OR_AAL3_ANY: { aal: [2, 3], stepUp: 2 },
  AAL2_ANY: { aal: [2], stepUp: 2 },
  AAL3_SMARTCARD: { aal: [3], amr: ['SMARTCARD', 'N3_SMARTCARD'], stepUp: 3 },
  AAL3_CIS2_SMARTCARD: { aal: [3], amr: ['SMARTCARD'], stepUp: 3 },
  AAL3_N3_SMARTCARD: { aal: [3], amr: ['N3_SMARTCARD'], stepUp: 3 },
  AAL3_FIDO2: { aal: [3], amr: ['FIDO2', 'WHFB'], stepUp: 3 },
  AAL3_IOS: { aal: [3], amr: ['VIRTUAL_SMARTCARD'], stepUp: 3 },
  AAL2_TOTP: { aal: [2], amr: ['TOTP'], stepUp: 2 },
  AAL2_NHSMAIL: { aal: [2], amr: ['NHSMAIL'], stepUp: 2, via: 'upstream' },
} as const satisfies Record<string, AcrRule>;

export type AcrValue = keyof typeof acrRules;
export const supportedAcrValues = Object.keys(acrRules) as AcrValue[];

export function isAcrValue(value: string): value is AcrValue {
  return Object.hasOwn(acrRules, value);
}

export function satisfies(acr: AcrValue, session: { aal: Aal; amr: readonly string[] }): boolean {
  const rule: AcrRule = acrRules[acr];
  if (!rule.aal.includes(session.aal)) return false;
  return rule.amr === undefined || rule.amr.some((m) => session.amr.includes(m));
}

/**
 * Whether a session meets an acr value for a relying party: the value's rule, and the client's floor (its registered
 * minimum level, where OpenCIS may be stricter than CIS2). The acr the relying party gets is still the value it asked
 * for: the floor raises the session, never rewrites the claim.
 */
export function meets(acr: AcrValue, session: { aal: Aal; amr: readonly string[] }, minimumAal: 1 | 2 | 3): boolean {
  return session.aal >= minimumAal && satisfies(acr, session);
}

/** How to sign in again for a value: its level raised to the client's floor, and through an upstream IdP if need be. */
export function stepUpFor(acr: AcrValue, minimumAal: 1 | 2 | 3): { aal: Aal; via?: 'upstream' } {
  const rule: AcrRule = acrRules[acr];
  return { aal: Math.max(rule.stepUp, minimumAal) as Aal, ...(rule.via ? { via: rule.via } : {}) };
}

/** The client's floor as an acr value: what is asked for when neither the request nor the registration names one. */
export function defaultAcrFor(minimumAal: 1 | 2 | 3): AcrValue {
  return minimumAal >= 3 ? 'AAL3_ANY' : 'AAL2_OR_AAL3_ANY';
}

/**
 * The values to try, in the client's order of preference: the requested supported values that a session at or above
 * the client's floor can meet; the client's default when nothing usable was asked for. `unsupported` is true when
 * values were asked for and none of them is one OpenCIS offers.
 */
export function acrCandidates(
  requested: string | undefined,
  minimumAal: 1 | 2 | 3,
): { candidates: AcrValue[]; unsupported: boolean } {
  const asked = (requested ?? '').split(/\s+/).filter(Boolean);
  const known = asked.filter(isAcrValue);
  if (asked.length > 0 && known.length === 0) return { candidates: [], unsupported: true };
  const usable = known.filter((v) => (acrRules[v].aal as readonly Aal[]).some((level) => level >= minimumAal));
  return { candidates: usable.length > 0 ? usable : [defaultAcrFor(minimumAal)], unsupported: false };
}
