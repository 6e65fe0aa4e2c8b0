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

/** The client's floor as an acr value: what is asked for when the request names none. */
export function defaultAcrFor(minimumAal: 1 | 2 | 3): AcrValue {
  return minimumAal >= 3 ? 'AAL3_ANY' : 'AAL2_OR_AAL3_ANY';
}

export function aalOfAcr(acr: AcrValue): Aal {
  return Math.min(...acrRules[acr].aal) as Aal;
}

/**
 * The values to try, in the client's order of preference: the requested supported values whose level is not below the
 * client's minimum; the client's default when nothing usable was asked for. `unsupported` is true when values were
 * asked for and none of them is one OpenCIS offers.
 */
export function acrCandidates(
  requested: string | undefined,
  minimumAal: 1 | 2 | 3,
): { candidates: AcrValue[]; unsupported: boolean } {
  const asked = (requested ?? '').split(/\s+/).filter(Boolean);
  const known = asked.filter(isAcrValue);
  if (asked.length > 0 && known.length === 0) return { candidates: [], unsupported: true };
  const usable = known.filter((v) => aalOfAcr(v) >= minimumAal);
  return { candidates: usable.length > 0 ? usable : [defaultAcrFor(minimumAal)], unsupported: false };
}
