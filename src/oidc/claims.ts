import { ukDate } from '../domain/dates.ts';
import { type EffectiveRole, type EffectiveRoleRow, effectiveRolesFrom } from '../services/access.ts';
import { type CatalogueLabels, catalogueLabels } from '../services/catalogue.ts';
import type { Repositories } from '../storage/repositories/index.ts';

/**
 * CIS2 claims (DOMAIN §7), built from the person's record and the role profiles in effect at this moment — an ended
 * role profile never appears. Scopes release claims as CIS2 does; the ID token carries the identity, assurance and
 * binding claims and, with their scopes, the name and email (CIS2 relying parties call userinfo once at sign-in for
 * the rest). `azp`, `at_hash` and `s_hash` are listed under openid so that the library lets the ID token carry them
 * (provider.ts adds them to ID tokens only).
 */
export const scopeClaims: Record<string, string[]> = {
  openid: [
    'sub',
    'acr',
    'amr',
    'auth_time',
    'sid',
    'azp',
    'at_hash',
    's_hash',
    'id_assurance_level',
    'authentication_assurance_level',
  ],
  profile: ['name', 'given_name', 'family_name', 'uid'],
  email: ['email'],
  nhsperson: ['nhsid_useruid', 'title', 'initials', 'middle_names', 'display_name', 'idassurancelevel'],
  associatedorgs: ['nhsid_user_orgs'],
  nationalrbacaccess: ['nhsid_nrbac_roles'],
  professionalmemberships: [
    'gmc_id',
    'nmc_id',
    'gphc_id',
    'gdc_id',
    'gdp_id',
    'gmp_id',
    'rcn_id',
    'consultant_id',
    'hcpc_id',
  ],
  organisationalmemberships: ['nhsid_org_memberships'],
  selectedrole: ['selected_roleid'],
  changedrole: ['selected_roleid'],
};

/** Requested scopes that ask for a role to be chosen at this sign-in (CIS2's selectedrole, or changedrole). */
export function asksForRole(scope: unknown): boolean {
  const scopes = String(scope ?? '').split(' ');
  return scopes.includes('selectedrole') || scopes.includes('changedrole');
}

export interface GrantContext {
  aal: number;
  personRoleId: string | null;
}

export async function saveGrantContext(
  repos: Repositories,
  grantId: string,
  userId: string,
  ctx: GrantContext,
): Promise<void> {
  await repos.oidcClaims.saveGrantContext(grantId, userId, ctx.aal, ctx.personRoleId);
}

/** What `oidc_claims_state` (migration 0012) returns: one statement for every claim of a token. */
interface ClaimsState {
  person: {
    user_id: string;
    title: string | null;
    given_name: string;
    middle_names: string | null;
    family_name: string;
    preferred_name: string | null;
    email: string | null;
    status: string;
    identity_assurance_level: number;
  };
  grant: { aal: number; person_roleid: string | null } | null;
  roles?: EffectiveRoleRow[];
  catalogue_version?: string | null;
  orgs?: { person_orgid: string; ods_code: string; name: string }[];
  registrations?: { body: string; number: string }[];
  workgroups?: Record<string, string>;
}

async function claimsState(
  repos: Repositories,
  userId: string,
  day: string,
  grantId: string | null,
  use: 'id_token' | 'userinfo',
): Promise<ClaimsState | null> {
  const state = await repos.oidcClaims.claimsState(userId, day, grantId, use === 'userinfo');
  return parsedState(state as ClaimsState | string | null);
}

function parsedState(state: ClaimsState | string | null): ClaimsState | null {
  return typeof state === 'string' ? (JSON.parse(state) as ClaimsState) : state;
}

function initials(p: ClaimsState['person']): string {
  return [p.given_name, ...(p.middle_names ?? '').split(/\s+/)]
    .filter(Boolean)
    .map((n) => n[0]!.toUpperCase())
    .join('');
}

function nrbacRoles(roles: EffectiveRole[], labels: CatalogueLabels, workgroupNames: Record<string, string>) {
  return roles.map((r) => {
    const primary = r.jobRoles[0];
    return {
      person_orgid: r.personOrgId,
      person_roleid: r.personRoleId,
      org_code: r.odsCode,
      role_name: primary?.roleName ?? '',
      role_code: primary?.roleCode ?? '',
      activities: r.activityCodes.map((c) => labels.activities.get(c) ?? c),
      activity_codes: r.activityCodes,
      workgroups: r.workgroups.map((c) => workgroupNames[c] ?? c),
      workgroups_codes: r.workgroups,
      aow: r.areasOfWork.map((c) => labels.areasOfWork.get(c) ?? c),
      aow_codes: r.areasOfWork,
    };
  });
}

/**
 * Every CIS2 claim for a person; the provider filters them by scope. `use` decides the ID-token subset. The grant's
 * context (assurance level reached, role profile chosen) is read with the claims, in the same statement. `known`: that
 * statement's answer, already read in this request with the token (read-together.ts).
 */
export async function cis2ClaimsForGrant(
  repos: Repositories,
  userId: string,
  at: Date,
  use: 'id_token' | 'userinfo',
  grantId: string | undefined,
  known?: { state: unknown },
): Promise<Record<string, unknown>> {
  const day = ukDate(at);
  const state = known
    ? parsedState(known.state as ClaimsState | string | null)
    : await claimsState(repos, userId, day, grantId ?? null, use);
  const grant = state?.grant ? { aal: Number(state.grant.aal), personRoleId: state.grant.person_roleid } : null;
  return claimsFrom(repos, userId, day, use, state, grant);
}

/** Every CIS2 claim for a person, with a grant context the caller already has. */
export async function cis2Claims(
  repos: Repositories,
  userId: string,
  at: Date,
  use: 'id_token' | 'userinfo',
  grant: GrantContext | null,
): Promise<Record<string, unknown>> {
  const day = ukDate(at);
  return claimsFrom(repos, userId, day, use, await claimsState(repos, userId, day, null, use), grant);
}

async function claimsFrom(
  repos: Repositories,
  userId: string,
  day: string,
  use: 'id_token' | 'userinfo',
  state: ClaimsState | null,
  grant: GrantContext | null,
): Promise<Record<string, unknown>> {
  if (!state) return { sub: userId };
  const person = state.person;
  const selected = grant?.personRoleId ?? undefined;
  const display = person.preferred_name ?? `${person.given_name} ${person.family_name}`;
  const idTokenClaims = {
    sub: person.user_id,
    id_assurance_level: person.identity_assurance_level,
    ...(grant ? { authentication_assurance_level: grant.aal } : {}),
    ...(selected ? { selected_roleid: selected } : {}),
    // profile and email (released by those scopes only, in the ID token as in userinfo)
    name: display,
    given_name: person.given_name,
    family_name: person.family_name,
    uid: person.user_id,
    ...(person.email ? { email: person.email } : {}),
  };
  if (use === 'id_token') return idTokenClaims;
  const labels = await catalogueLabels(repos, state.catalogue_version ?? null);
  const roles = effectiveRolesFrom(state.roles ?? [], day, labels.inclusions);
  const orgs = state.orgs ?? [];
  return {
    ...idTokenClaims,
    nhsid_useruid: person.user_id,
    title: person.title ?? undefined,
    initials: initials(person),
    middle_names: person.middle_names ?? undefined,
    display_name: display,
    // The real service spells it idassurancelevel in userinfo and id_assurance_level in the ID token; both are given.
    idassurancelevel: person.identity_assurance_level,
    nhsid_user_orgs: orgs.map((o) => ({ org_code: o.ods_code, org_name: o.name })),
    nhsid_org_memberships: orgs.map((o) => ({
      person_orgid: o.person_orgid,
      org_code: o.ods_code,
      org_name: o.name,
    })),
    nhsid_nrbac_roles: nrbacRoles(roles, labels, state.workgroups ?? {}),
    ...Object.fromEntries((state.registrations ?? []).map((r) => [`${r.body.toLowerCase()}_id`, r.number])),
  };
}
