/**
 * Who may do what — the one place every RA and administrative permission is decided (STYLE.md). Permissions are
 * `resource:action` statements. Services call `authorize` before they touch anything.
 *
 * Actors: the `opencis` CLI operator (someone with shell access to the server, who can already read the database, so
 * the CLI grants it every statement), the system itself (scheduled jobs, migrations, seeding) and people. A person's
 * powers come from the RA roles (DOMAIN §5) they hold through their effective role profiles, each scoped to the
 * organisation subtree of that profile; segregation of duties is checked before any of them.
 */
import { AppError } from './errors.ts';

export const statements = [
  // people and identity
  'person:read',
  'person:create',
  'person:update',
  'person:verify_identity', // record an identity check (documents, photo) and set the assurance level
  'person:change_name', // with evidence
  'person:change_status', // suspend, restore
  'person:leaver', // ends every role profile, cancels every card, ends every session
  'application:review', // Apply for Care ID: verify or reject a remote application
  // organisations and the catalogue
  'organisation:read',
  'organisation:create',
  'organisation:update',
  'catalogue:load',
  // positions and access
  'position:create',
  'position:update', // incl. marking a position assignable
  'request:create', // ask for a position for a person (sponsor, RA)
  'request:approve', // approve or reject an access request
  'role_profile:assign', // directly (assignable positions for sponsors; any position for RA agents)
  'role_profile:end',
  'role_profile:change_dates',
  // RA administration
  'ra:appoint_staff', // give RA Agent, Sponsor, ID Checker, LSA positions
  'ra:appoint_manager', // give RA Manager positions
  'ra:set_policy',
  'report:view',
  'audit:read',
  // authenticators
  'card:issue',
  'card:unlock',
  'card:renew',
  'card:cancel',
  'authenticator:enrol',
  // relying parties (OpenID Connect clients)
  'client:register',
] as const;
export type Statement = (typeof statements)[number];

/**
 * RA powers a person holds through their effective role profiles: the activities (B-codes, inclusions expanded) of
 * each profile, and the organisations that profile's organisation subtree covers (an RA's reach, DOMAIN §3).
 */
export interface RaPower {
  /** Job role codes (R…) of the profile: RA Manager is the job role R5080. */
  jobRoles?: readonly string[];
  activities: readonly string[];
  odsCodes: readonly string[];
}

export type Actor =
  | { kind: 'operator'; id: string } // e.g. "cli:root@host"
  | { kind: 'system'; id: string } // e.g. "system:seed"
  | { kind: 'person'; id: string; userId: string; powers?: readonly RaPower[] }
  /**
   * An organisation's API client (OAuth client credentials, registered by its RA Manager): scripts the RA work of that
   * organisation with the activities it was registered for, never more; it is nobody, so it has no own record.
   */
  | { kind: 'client'; id: string; powers: readonly RaPower[] };

export interface Target {
  /** The organisation the target belongs to, when it has one: RA powers are scoped to an organisation subtree. */
  odsCode?: string;
  /** For a person: the organisations they work for. In scope when any of them is in the actor's reach. */
  odsCodes?: readonly string[];
  /** The person the action is about, for segregation-of-duties rules. */
  userId?: string;
  /** For approvals: who made the request (nobody approves their own request). */
  requestedBy?: string;
  /** For direct assignment: whether the position is assignable (sponsors may assign only those). */
  positionAssignable?: boolean;
  /** For appointments: whether the position carries RA Manager (R5080) or other RA powers. */
  appointsRole?: 'ra_manager' | 'ra_staff';
}

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
// their subtree, and add organisations within it (a site, a ward: the target is the new organisation's parent; issue
// #14's "first day" journey). Loading the national catalogue and top-level organisations stay with the operator.
const raManager: readonly Statement[] = [
  ...advancedRaAgent,
  'ra:appoint_manager',
  'ra:set_policy',
  'audit:read',
  'client:register',
  'organisation:create',
  'organisation:update',
];

/** The RA role matrix: role → the statements it grants, in the organisation subtree of the profile that holds it. */
const statementsByRole: Record<RaRole, ReadonlySet<Statement>> = {
  ra_manager: new Set(raManager),
  advanced_ra_agent: new Set(advancedRaAgent),
  ra_agent: new Set(raAgent),
  sponsor: new Set(sponsor),
  id_checker: new Set(idChecker),
  local_smartcard_administrator: new Set(localSmartcardAdministrator),
};

/** Grants that hold only for some targets. A sponsor assigns a position directly only if it is assignable (§4). */
const conditions: Partial<Record<RaRole, Partial<Record<Statement, (target: Target) => boolean>>>> = {
  sponsor: { 'role_profile:assign': (target) => target.positionAssignable === true },
};

/**
 * Statements that reach people with no organisation yet: a new starter is searched for, registered, identity-checked
 * (or their remote application reviewed) and requested a first position before any organisation links them.
 */
const newStarterStatements: ReadonlySet<Statement> = new Set<Statement>([
  'person:read',
  'audit:read', // their history so far (registration, identity checks, requests), for those who may read audit
  'person:create',
  'person:change_name',
  'person:verify_identity',
  'application:review',
  'request:create',
]);

/**
 * Statements about things that belong to no organisation: relying parties are national (CIS2 clinical systems serve
 * every organisation), so an RA Manager's power to register them is not scoped to a subtree.
 */
const unscopedStatements: ReadonlySet<Statement> = new Set<Statement>(['client:register']);

/** Giving a position that carries RA powers is an appointment, and needs the power to appoint that kind of RA. */
const appointmentStatements: ReadonlySet<Statement> = new Set<Statement>(['role_profile:assign', 'request:approve']);

/**
 * The organisations an action happens in: `odsCode` when given (the position's organisation for an assignment or a
 * request — a person may be given a position in an organisation they do not work for yet), else the target person's.
 */
function targetOrganisations(target: Target): readonly string[] {
  if (target.odsCode) return [target.odsCode];
  return target.odsCodes ?? [];
}

/** Only RA Managers appoint RA Managers; only Advanced RA Agents and Managers appoint other RA staff (DOMAIN §5). */
function appointmentNeededFor(statement: Statement, target: Target): Statement | undefined {
  if (target.appointsRole === undefined || !appointmentStatements.has(statement)) return undefined;
  return target.appointsRole === 'ra_manager' ? 'ra:appoint_manager' : 'ra:appoint_staff';
}

function powerGrants(power: RaPower, statement: Statement, target: Target): boolean {
  const orgs = targetOrganisations(target);
  const inScope =
    unscopedStatements.has(statement) ||
    (orgs.length === 0 ? newStarterStatements.has(statement) : orgs.some((o) => power.odsCodes.includes(o)));
  if (!inScope) return false;
  return raRolesOfPower(power).some((role) => {
    if (!statementsByRole[role].has(statement)) return false;
    const condition = conditions[role]?.[statement];
    return condition === undefined || condition(target);
  });
}

export function isAllowed(actor: Actor, statement: Statement, target: Target = {}): boolean {
  switch (actor.kind) {
    case 'operator':
    case 'system':
      return true;
    case 'person': {
      // Segregation of duties (DOMAIN §5) is checked first so that no grant can bypass it: nobody changes their own
      // record or access (every signed-in person may read their own record), and nobody approves their own request.
      if (target.userId !== undefined && target.userId === actor.userId) return statement === 'person:read';
      if (statement === 'request:approve' && target.requestedBy === actor.userId) return false;
      return grantedByPowers(actor.powers ?? [], statement, target);
    }
    case 'client':
      // A client is never the target person; it may not approve requests it made.
      if (statement === 'request:approve' && target.requestedBy === actor.id) return false;
      if (statement === 'client:register' || statement === 'ra:appoint_manager') return false;
      return grantedByPowers(actor.powers, statement, target);
  }
}

function grantedByPowers(powers: readonly RaPower[], statement: Statement, target: Target): boolean {
  const appointment = appointmentNeededFor(statement, target);
  return powers.some(
    (power) =>
      powerGrants(power, statement, target) && (appointment === undefined || powerGrants(power, appointment, target)),
  );
}

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

export function authorize(actor: Actor, statement: Statement, target: Target = {}): void {
  if (!isAllowed(actor, statement, target)) throw new AppError('auth.forbidden', { statement });
}

/** How an actor is written in the audit trail: IDs only, never names. */
export function actorLabel(actor: Actor): string {
  return actor.kind === 'person' ? `person:${actor.userId}` : actor.id;
}
