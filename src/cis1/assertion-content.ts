import { expandActivities } from '../domain/access/catalogue.ts';
import type { ValidationRow } from '../storage/repositories/cis1-tickets.ts';
import { type RoleAssertionInput, signedRoleAssertion } from './assertion.ts';
import { sessionTimes } from './session-store.ts';
import type { AssertionSigningKey } from './signing-key.ts';

/**
 * What a CIS1 role assertion says for a checked ticket state (validation.ts checks it first): the person, the session,
 * the selected role profile with its job roles, effective activities, areas of work and workgroups.
 */
function json<T>(value: T | string | null): T | null {
  return typeof value === 'string' ? (JSON.parse(value) as T) : value;
}

function attributesOf(row: ValidationRow, effective: string[]): [string, readonly string[]][] {
  const jobRoles = json(row.job_roles) ?? [];
  const activities = json(row.activities) ?? [];
  const aows = json(row.aows) ?? [];
  const workgroups = json(row.workgroups) ?? [];
  const primary = jobRoles[0];
  const display = row.preferred_name ?? `${row.given_name} ${row.family_name}`;
  return [
    ['uid', [row.user_id]],
    ['nhsid_useruid', [row.user_id]],
    ['name', [display]],
    ['display_name', [display]],
    ['given_name', [row.given_name]],
    ['family_name', [row.family_name]],
    ['title', row.title ? [row.title] : []],
    ['idassurancelevel', [String(row.identity_assurance_level)]],
    ['authentication_assurance_level', ['3']],
    // The legacy route is the health-network smartcard route (DOMAIN §7 acr_values).
    ['acr', ['AAL3_N3_SMARTCARD']],
    ['amr', row.amr],
    ['workstation_id', [row.workstation_id]],
    ['selected_roleid', [row.person_roleid!]],
    ['person_roleid', [row.person_roleid!]],
    ['person_orgid', [row.person_orgid!]],
    ['org_code', [row.ods_code!]],
    ['org_name', [row.org_name!]],
    ['role_code', primary ? [`${primary.sg}:${primary.g}:${primary.code}`] : []],
    ['role_name', primary ? [`"${primary.sgn}":"${primary.gn}":"${primary.name}"`] : []],
    ['job_role_codes', jobRoles.map((j) => j.code)],
    ['activities', activities.map(([, name]) => name)],
    ['activity_codes', activities.map(([code]) => code)],
    ['effective_activity_codes', effective],
    ['aow', aows.map(([, name]) => name)],
    ['aow_codes', aows.map(([code]) => code)],
    ['workgroups', workgroups.map(([, name]) => name)],
    ['workgroups_codes', workgroups.map(([code]) => code)],
  ];
}

/** Everything an assertion for a checked ticket state says, except the moment it is issued. */
export function assertionContent(
  row: ValidationRow,
  options: { issuer: string; audience: string; includes: Map<string, string[]> },
): Omit<RoleAssertionInput, 'now'> {
  const activityCodes = (json(row.activities) ?? []).map(([code]) => code);
  const effective = [...expandActivities([...activityCodes, ...(row.baseline ?? [])], options.includes)].sort();
  return {
    issuer: options.issuer,
    audience: options.audience,
    sessionId: row.session_id,
    authenticatedAt: new Date(row.authenticated_at),
    sessionNotOnOrAfter: sessionTimes(row).expiresAt,
    userId: row.user_id,
    attributes: attributesOf(row, effective),
  };
}

/** The signed assertion for a checked ticket state, signed now (synchronous: exported for bench/cis1.ts). */
export function roleAssertionFor(
  row: ValidationRow,
  options: { issuer: string; audience: string; now: Date; key: AssertionSigningKey; includes: Map<string, string[]> },
): string {
  return signedRoleAssertion({ ...assertionContent(row, options), now: options.now }, options.key);
}
