import type { Person } from '../domain/identity/person.ts';
import { type EffectiveRole, effectiveRoles } from '../services/access.ts';
import type { Queryable } from '../storage/database.ts';
import { findPersonByUserId } from '../storage/people.ts';

/**
 * CIS2 claims (DOMAIN §7), built from the person's record and the role profiles in effect at this moment — an ended
 * role profile never appears. Scopes release claims as CIS2 does; the ID token carries only the identity and assurance
 * claims (CIS2 relying parties call userinfo once at sign-in for the rest).
 */
export const scopeClaims: Record<string, string[]> = {
  openid: ['sub', 'acr', 'amr', 'auth_time', 'sid', 'id_assurance_level', 'authentication_assurance_level'],
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
};

export interface GrantContext {
  aal: number;
  personRoleId: string | null;
}

export async function grantContext(q: Queryable, grantId: string | undefined): Promise<GrantContext | null> {
  if (!grantId) return null;
  const { rows } = await q.query<{ aal: number; person_roleid: string | null }>(
    'SELECT aal, person_roleid FROM oidc_grant_context WHERE grant_id = $1',
    [grantId],
  );
  return rows[0] ? { aal: Number(rows[0].aal), personRoleId: rows[0].person_roleid } : null;
}

export async function saveGrantContext(
  q: Queryable,
  grantId: string,
  userId: string,
  ctx: GrantContext,
): Promise<void> {
  await q.query(
    `INSERT INTO oidc_grant_context (grant_id, user_id, aal, person_roleid, updated_at) VALUES ($1, $2, $3, $4, now())
     ON CONFLICT (grant_id) DO UPDATE SET aal = EXCLUDED.aal, person_roleid = EXCLUDED.person_roleid, updated_at = now()`,
    [grantId, userId, ctx.aal, ctx.personRoleId],
  );
}

function initials(p: Person): string {
  return [p.givenName, ...(p.middleNames ?? '').split(/\s+/)]
    .filter(Boolean)
    .map((n) => n[0]!.toUpperCase())
    .join('');
}

async function names(
  q: Queryable,
  table: 'rbac_activities' | 'rbac_areas_of_work' | 'workgroups',
  codes: string[],
): Promise<Map<string, string>> {
  if (codes.length === 0) return new Map();
  const { rows } = await q.query<{ code: string; name: string }>(
    `SELECT code, name FROM ${table} WHERE code = ANY($1)`,
    [codes],
  );
  return new Map(rows.map((r) => [r.code, r.name]));
}

async function nrbacRoles(q: Queryable, roles: EffectiveRole[]) {
  const all = (f: (r: EffectiveRole) => string[]) => [...new Set(roles.flatMap(f))];
  const activityNames = await names(
    q,
    'rbac_activities',
    all((r) => r.activityCodes),
  );
  const aowNames = await names(
    q,
    'rbac_areas_of_work',
    all((r) => r.areasOfWork),
  );
  const workgroupNames = await names(
    q,
    'workgroups',
    all((r) => r.workgroups),
  );
  return roles.map((r) => {
    const primary = r.jobRoles[0];
    return {
      person_orgid: r.personOrgId,
      person_roleid: r.personRoleId,
      org_code: r.odsCode,
      role_name: primary?.roleName ?? '',
      role_code: primary?.roleCode ?? '',
      activities: r.activityCodes.map((c) => activityNames.get(c) ?? c),
      activity_codes: r.activityCodes,
      workgroups: r.workgroups.map((c) => workgroupNames.get(c) ?? c),
      workgroups_codes: r.workgroups,
      aow: r.areasOfWork.map((c) => aowNames.get(c) ?? c),
      aow_codes: r.areasOfWork,
    };
  });
}

/** Every CIS2 claim for a person; the provider filters them by scope. `use` decides the ID-token subset. */
export async function cis2Claims(
  q: Queryable,
  userId: string,
  at: Date,
  use: 'id_token' | 'userinfo',
  grant: GrantContext | null,
): Promise<Record<string, unknown>> {
  const person = await findPersonByUserId(q, userId);
  if (!person) return { sub: userId };
  const selected = grant?.personRoleId ?? undefined;
  const idTokenClaims = {
    sub: person.userId,
    id_assurance_level: person.identityAssuranceLevel,
    ...(grant ? { authentication_assurance_level: grant.aal } : {}),
    ...(selected ? { selected_roleid: selected } : {}),
  };
  if (use === 'id_token') return idTokenClaims;
  const roles = await effectiveRoles(q, userId, at, person);
  const orgs = await q.query<{ person_orgid: string; ods_code: string; name: string }>(
    `SELECT po.person_orgid, po.ods_code, o.name FROM person_orgs po JOIN organisations o ON o.ods_code = po.ods_code
     WHERE po.user_id = $1 ORDER BY po.person_orgid`,
    [userId],
  );
  const registrations = await q.query<{ body: string; number: string }>(
    'SELECT body, number FROM professional_registrations WHERE user_id = $1',
    [userId],
  );
  const display = person.preferredName ?? `${person.givenName} ${person.familyName}`;
  return {
    ...idTokenClaims,
    name: display,
    given_name: person.givenName,
    family_name: person.familyName,
    uid: person.userId,
    email: person.email ?? undefined,
    nhsid_useruid: person.userId,
    title: person.title ?? undefined,
    initials: initials(person),
    middle_names: person.middleNames ?? undefined,
    display_name: display,
    // The real service spells it idassurancelevel in userinfo and id_assurance_level in the ID token; both are given.
    idassurancelevel: person.identityAssuranceLevel,
    nhsid_user_orgs: orgs.rows.map((o) => ({ org_code: o.ods_code, org_name: o.name })),
    nhsid_org_memberships: orgs.rows.map((o) => ({
      person_orgid: o.person_orgid,
      org_code: o.ods_code,
      org_name: o.name,
    })),
    nhsid_nrbac_roles: await nrbacRoles(q, roles),
    ...Object.fromEntries(registrations.rows.map((r) => [`${r.body.toLowerCase()}_id`, r.number])),
  };
}
