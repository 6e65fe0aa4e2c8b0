/**
 * The RA roles of DOMAIN §5 and the role matrix: which roles a role profile gives, what each role grants, and the
 * grants that hold only for some targets (src/domain/policy/decide.ts applies them).
 */
import type { Statement } from './statements.ts';
import type { Actor, Appointment, RaPower, Target } from './targets.ts';

/**
 * The RA roles of DOMAIN §5. A person holds them through RBAC positions; each role profile gives the roles its job
 * roles and activities name, for that profile's organisation subtree only.
 */
export const raRoles = [
  'ra_manager', // job role R5080
  'advanced_ra_agent', // B0272 "Approve RA Requests (Advanced)"
  'ra_agent', // B0274 "Perform RA Activities"
  'sponsor', // B1300 "Approve RA Requests (Sponsor)" or B0002 "(Sponsorship Rights)"
  'id_checker', // B0267 "Approve RA Requests (Registration Only)"
  'local_smartcard_administrator', // B0264 "Manage Local Smartcards (Unlock and Renew)"
] as const;
export type RaRole = (typeof raRoles)[number];

/** Which roles one profile's job roles and activities give (a profile may give several: R5080's baseline has B1300). */
export function raRolesOfPower(power: Pick<RaPower, 'jobRoles' | 'activities'>): RaRole[] {
  const has = (code: string) => power.activities.includes(code);
  const roles: RaRole[] = [];
  if (power.jobRoles?.includes('R5080')) roles.push('ra_manager');
  else if (has('B0272')) roles.push('advanced_ra_agent');
  else if (has('B0274')) roles.push('ra_agent');
  if (has('B1300') || has('B0002')) roles.push('sponsor');
  if (has('B0267')) roles.push('id_checker');
  if (has('B0264')) roles.push('local_smartcard_administrator');
  return roles;
}

/**
 * What giving a position appoints, from its job roles and its activities with the job roles' baseline and inclusions
 * expanded (the same rule that turns a profile into powers, so the two cannot drift apart).
 */
export function appointmentOf(position: Pick<RaPower, 'jobRoles' | 'activities'>): Appointment {
  const roles = raRolesOfPower(position);
  if (roles.includes('ra_manager')) return 'ra_manager';
  return roles.length > 0 ? 'ra_staff' : null;
}

// DOMAIN §5, "Local Smartcard Administrator (LSA) / Unlocker": unlock cards, renew certificates; not register, not
// grant access.
const localSmartcardAdministrator: readonly Statement[] = [
  'organisation:read',
  'person:read',
  'card:unlock',
  'card:renew',
];

// DOMAIN §5, "ID Checker (B0267)": create a person record and verify identity (face to face or a remote application);
// grant no access.
const idChecker: readonly Statement[] = [
  'organisation:read',
  'person:read',
  'person:create',
  'person:verify_identity',
  'application:review',
];

// DOMAIN §5, "Sponsor (B1300)": request access for people they vouch for, assign *assignable* positions directly
// (see `conditions`), end assignments, change dates; never approve a request, their own or anyone else's.
const sponsor: readonly Statement[] = [
  'organisation:read',
  'person:read',
  'request:create',
  'role_profile:assign',
  'role_profile:end',
  'role_profile:change_dates',
];

// DOMAIN §5, "RA Agent": register and verify people, approve requests, issue/unlock/renew cards; not change positions,
// not appoint RA staff.
const raAgent: readonly Statement[] = [
  'organisation:read',
  'person:read',
  'person:create',
  'person:update',
  'person:verify_identity',
  'person:change_name',
  'person:change_status',
  'person:leaver',
  'application:review',
  'request:create',
  'request:approve',
  'role_profile:assign',
  'role_profile:end',
  'role_profile:change_dates',
  'card:issue',
  'card:unlock',
  'card:renew',
  'card:cancel',
  'authenticator:enrol',
  'report:view',
];

// DOMAIN §5, "Advanced RA Agent": an RA Agent who also manages positions (and which are assignable) and appoints RA
// Agents, Sponsors, ID Checkers and LSAs — never RA Managers.
const advancedRaAgent: readonly Statement[] = [...raAgent, 'position:create', 'position:update', 'ra:appoint_staff'];

// DOMAIN §5, "RA Manager": everything below, appoint RA staff and managers, set RA policy, approve any request in
// their subtree, decide a leaver or suspension nationally, register and manage their organisation's relying parties
// and API clients, and add organisations within their subtree (a site, a practice: the target is the new
// organisation's parent). Loading the national catalogue and top-level organisations stay with the operator.
const raManager: readonly Statement[] = [
  ...advancedRaAgent,
  'ra:appoint_manager',
  'ra:set_policy',
  'audit:read',
  'client:register',
  'client:manage',
  'organisation:create',
  'organisation:update',
  'person:decide_nationally',
];

/** The RA role matrix: role → the statements it grants, in the organisation subtree of the profile that holds it. */
export const statementsByRole: Record<RaRole, ReadonlySet<Statement>> = {
  ra_manager: new Set(raManager),
  advanced_ra_agent: new Set(advancedRaAgent),
  ra_agent: new Set(raAgent),
  sponsor: new Set(sponsor),
  id_checker: new Set(idChecker),
  local_smartcard_administrator: new Set(localSmartcardAdministrator),
};

/**
 * Grants that hold only for some targets (DOMAIN §4, §5): a sponsor gives a position directly only if it is
 * assignable, and may lengthen a role profile only where they could have given it directly; shortening is ending.
 */
export const conditions: Partial<Record<RaRole, Partial<Record<Statement, (target: Target) => boolean>>>> = {
  sponsor: {
    'role_profile:assign': (t) => t.kind === 'position' && t.position.assignable,
    'role_profile:change_dates': (t) => t.kind === 'role_profile' && (t.extendsAccess !== true || t.profile.assignable),
  },
};

/**
 * The RA roles a person holds, for display (e.g. ['ra_manager', 'sponsor']): a role another held in the same profile
 * already covers (an RA Manager's baseline sponsor, ID checker and LSA activities) is not listed again.
 */
export function raRolesOf(actor: Actor): RaRole[] {
  if (actor.kind !== 'person' && actor.kind !== 'client') return [];
  const held = new Set<RaRole>();
  for (const power of actor.powers ?? []) {
    const roles = raRolesOfPower(power);
    const agent = roles.find((r) => r === 'ra_manager' || r === 'advanced_ra_agent' || r === 'ra_agent');
    for (const role of agent ? [agent] : roles) held.add(role);
  }
  return raRoles.filter((r) => held.has(r));
}
