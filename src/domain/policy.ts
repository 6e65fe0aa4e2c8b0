/**
 * Who may do what — the one place every RA and administrative permission is decided (STYLE.md). Permissions are
 * `resource:action` statements; `isAllowed(actor, statement, target)` answers for one target, loaded by its repository
 * (a person with their organisations and the access they hold, a position with what it appoints, a role profile, an
 * access request with who made it, a relying party with its owner). Callers never compute an actor's reach: for lists
 * they ask `organisationsWhere`.
 *
 * Every actor kind goes through the same rules: the CLI operator (someone with shell access to the server, who can
 * already read the database, so the CLI grants it every statement), the system itself (scheduled jobs, migrations,
 * seeding), people — whose powers come from the RA roles (DOMAIN §5) they hold through their effective role
 * profiles, each scoped to the organisation subtree of that profile — and API clients, which hold the activities they
 * were registered for in their organisation's subtree, never more than their registrar holds now.
 *
 * The rule behind issue 15 (and Keycloak's delegated-administration CVEs of 2026): a door must ask not only whether
 * the caller has power over the door, but what the action confers on its target. Giving, changing, ending or
 * suspending access, and every credential (a card, its unlock, an enrolment link, contact details that receive unlock
 * codes), confer the RA powers the target holds or would hold: they need the power to appoint that kind of RA, in the
 * organisation of that appointment.
 */
import { AppError } from './errors.ts';

export const statements = [
  // people and identity
  'person:read',
  'person:create',
  'person:update', // contact details (email, mobile): where one-time and unlock codes go
  'person:verify_identity', // record an identity check (documents, photo) and set the assurance level
  'person:change_name', // with evidence
  'person:change_status', // suspend, restore, re-join: national in effect
  'person:leaver', // ends role profiles (all, or those in the actor's organisations), cancels cards on a national one
  'person:decide_nationally', // an RA Manager's decision that reaches a person's other organisations too
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
  'authenticator:enrol', // send an enrolment link, remove an authenticator (RA side)
  // relying parties (OpenID Connect clients and RA API clients), owned by an organisation
  'client:register',
  'client:manage', // disable, enable, edit, re-key
  // upstream OpenID Connect identity providers (NHSmail…): the operator's alone, no RA role grants it
  'idp:register',
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
  /** The organisation of the profile (the root of its subtree), where known. */
  odsCode?: string;
  odsCodes: readonly string[];
}

export type PersonActor = { kind: 'person'; id: string; userId: string; powers?: readonly RaPower[] };

/**
 * An organisation's API client (OAuth client credentials): scripts the RA work of that organisation with the
 * activities it was registered for, never more than its registrar holds now, and only while the registrar may still
 * register such a client. It is nobody: acting on its registrar is acting on oneself.
 */
export type ClientActor = {
  kind: 'client';
  id: string;
  /** The organisation it belongs to (its powers reach that organisation's subtree). */
  odsCode: string;
  powers: readonly RaPower[];
  /** Who registered it, with their powers now; null when the operator did (the operator holds every power). */
  registrar: PersonActor | null;
};

export type Actor =
  | { kind: 'operator'; id: string } // e.g. "cli:root@host"
  | { kind: 'system'; id: string } // e.g. "system:seed"
  | PersonActor
  | ClientActor;

/** What a position makes of the person who holds it: an RA Manager, other RA staff, or nobody with RA powers. */
export type Appointment = 'ra_manager' | 'ra_staff' | null;

/** A position as the policy sees it: where it is, whether sponsors may give it, what it appoints. */
export interface PositionFacts {
  odsCode: string;
  assignable: boolean;
  appoints: Appointment;
}

/** A person as the policy sees them: who they are, where they work, and the access they hold. */
export interface PersonFacts {
  userId: string;
  /** The organisations they are linked to (person-organisation links, past ones included). */
  odsCodes: readonly string[];
  /**
   * Their role profiles not ended — active, with no end date or one today or later, started or not (a future
   * appointment is held access) — with what each appoints. Whether the person is suspended does not matter: restoring
   * them gives it all back.
   */
  profiles: readonly { odsCode: string; appoints: Appointment }[];
}

export type Target =
  /** Nothing in particular: searching the national directory, registering someone new. */
  | { kind: 'national' }
  | { kind: 'organisation'; odsCode: string }
  /** A person (their record, status, cards and other authenticators). */
  | { kind: 'person'; person: PersonFacts }
  /** Giving a position to a person, or asking for it. */
  | { kind: 'position'; person: PersonFacts; position: PositionFacts }
  /** An existing role profile; `extendsAccess` when a change of dates gives more time than it had. */
  | { kind: 'role_profile'; person: PersonFacts; profile: PositionFacts; extendsAccess?: boolean }
  /**
   * An access request: who made it, and — when an API client made it — who registered that client (nobody approves a
   * request they made, in person or through their client).
   */
  | {
      kind: 'request';
      person: PersonFacts;
      position: PositionFacts;
      requestedBy: string;
      requestedOnBehalfOf: string | null;
    }
  /** A relying party or API client: the organisation that owns it (none: the operator's); whether the operator locked it. */
  | { kind: 'client'; client: { odsCode: string | null; lockedByOperator: boolean } }
  /**
   * A change to a position that people hold: what it appointed and what it will appoint (changing a position changes
   * the access of everyone who holds it), and who holds it now.
   */
  | { kind: 'position_change'; before: PositionFacts; after: PositionFacts; holders: readonly string[] };

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
const statementsByRole: Record<RaRole, ReadonlySet<Statement>> = {
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
const conditions: Partial<Record<RaRole, Partial<Record<Statement, (target: Target) => boolean>>>> = {
  sponsor: {
    'role_profile:assign': (t) => t.kind === 'position' && t.position.assignable,
    'role_profile:change_dates': (t) => t.kind === 'role_profile' && (t.extendsAccess !== true || t.profile.assignable),
  },
};

/** Statements about nobody in particular, allowed to whoever holds them somewhere (national directory, new people). */
const nationalStatements: ReadonlySet<Statement> = new Set<Statement>([
  'person:read',
  'audit:read', // their history so far (registration, identity checks, requests), for those who may read audit
  'person:create',
  'person:verify_identity',
]);

/**
 * Statements that reach a person with no organisation yet: a new starter is searched for, registered and
 * identity-checked before any organisation links them (their first position is asked for in its own organisation).
 */
const newStarterStatements: ReadonlySet<Statement> = new Set<Statement>([
  'person:read',
  'person:change_name',
  'person:verify_identity',
  'audit:read', // their history (registration, identity checks), for the RA Managers who will give them access
]);

/**
 * Statements whose effect is national: a person's status is one for every organisation they work in. The actor needs
 * the statement in every organisation where the person holds access, or an RA Manager's national decision in one of
 * them (DOMAIN §5.4; a locum leaving one trust still works at another).
 */
const nationalEffectStatements: ReadonlySet<Statement> = new Set<Statement>(['person:change_status', 'person:leaver']);

/** Statements that confer, on whoever holds the person's credentials, the RA powers the person holds. */
const conferringStatements: ReadonlySet<Statement> = new Set<Statement>([
  'person:update',
  'person:change_status',
  'person:leaver',
  'card:issue',
  'card:unlock',
  'card:renew',
  'card:cancel',
  'authenticator:enrol',
]);

/** Statements that give, change, end or decide a position (the position or profile is what they confer). */
const appointingStatements: ReadonlySet<Statement> = new Set<Statement>([
  'role_profile:assign',
  'request:approve',
  'role_profile:end',
  'role_profile:change_dates',
  'person:leaver',
]);

/** What an API client may never do, whatever it was registered with: it is a script, not an RA Manager. */
const neverForClients: ReadonlySet<Statement> = new Set<Statement>([
  'client:register',
  'client:manage',
  'ra:appoint_manager',
  'ra:set_policy',
  'audit:read',
  'person:decide_nationally',
  'catalogue:load',
  'organisation:create',
]);

function personOf(target: Target): PersonFacts | undefined {
  return 'person' in target ? target.person : undefined;
}

/**
 * The organisations an action happens in, and whether it must be allowed in every one of them (a national effect on a
 * person who holds access in several) or in any one.
 */
function organisationsOf(statement: Statement, target: Target): { orgs: readonly string[]; every: boolean } {
  switch (target.kind) {
    case 'national':
      return { orgs: [], every: false };
    case 'organisation':
      return { orgs: [target.odsCode], every: false };
    case 'position':
    case 'request':
      return { orgs: [target.position.odsCode], every: false };
    case 'role_profile':
      return { orgs: [target.profile.odsCode], every: false };
    case 'client':
      return { orgs: target.client.odsCode ? [target.client.odsCode] : [], every: false };
    case 'position_change':
      return { orgs: [target.before.odsCode], every: false };
    case 'person': {
      const held = [...new Set(target.person.profiles.map((p) => p.odsCode))];
      if (nationalEffectStatements.has(statement) && held.length > 0) return { orgs: held, every: true };
      return { orgs: target.person.odsCodes, every: false };
    }
  }
}

/** The appointments an action touches, each in its organisation: it needs the power to make that appointment there. */
function appointmentsTouched(statement: Statement, target: Target): { odsCode: string; appoints: Appointment }[] {
  if (target.kind === 'position' || target.kind === 'request') {
    return appointingStatements.has(statement) ? [target.position] : [];
  }
  if (target.kind === 'role_profile') return appointingStatements.has(statement) ? [target.profile] : [];
  // A position's holders are appointed anew to what it will appoint; taking away what it appointed is ending it.
  if (target.kind === 'position_change') return [target.before, target.after];
  if (target.kind === 'person' && conferringStatements.has(statement)) return [...target.person.profiles];
  return [];
}

/** Whether one of `powers` grants `statement` in organisation `odsCode`, its conditions met by `target`. */
function grantsIn(powers: readonly RaPower[], statement: Statement, odsCode: string, target: Target): boolean {
  return powers.some(
    (power) =>
      power.odsCodes.includes(odsCode) &&
      raRolesOfPower(power).some((role) => {
        if (!statementsByRole[role].has(statement)) return false;
        const condition = conditions[role]?.[statement];
        return condition === undefined || condition(target);
      }),
  );
}

function grantsAnywhere(powers: readonly RaPower[], statement: Statement, target: Target): boolean {
  return powers.some((power) => power.odsCodes.some((o) => grantsIn([power], statement, o, target)));
}

/** Scope, conditions and appointments: what the powers themselves allow, segregation of duties aside. */
function granted(powers: readonly RaPower[], statement: Statement, target: Target): boolean {
  const { orgs, every } = organisationsOf(statement, target);
  let inScope: boolean;
  if (orgs.length === 0) {
    const nobodyYet =
      target.kind === 'national' ? nationalStatements.has(statement) : newStarterStatements.has(statement);
    inScope = target.kind !== 'client' && nobodyYet && grantsAnywhere(powers, statement, target);
  } else if (every) {
    inScope =
      orgs.every((o) => grantsIn(powers, statement, o, target)) ||
      (orgs.some((o) => grantsIn(powers, statement, o, target)) &&
        orgs.some((o) => grantsIn(powers, 'person:decide_nationally', o, target)));
  } else {
    inScope = orgs.some((o) => grantsIn(powers, statement, o, target));
  }
  if (!inScope) return false;
  return appointmentsTouched(statement, target).every(
    ({ odsCode, appoints }) =>
      appoints === null ||
      grantsIn(powers, appoints === 'ra_manager' ? 'ra:appoint_manager' : 'ra:appoint_staff', odsCode, target),
  );
}

/** Segregation of duties (DOMAIN §5): nobody changes their own record or access, nobody approves their own request. */
function separated(selves: readonly string[], statement: Statement, target: Target): boolean {
  // Changing a position one holds is changing one's own access.
  if (target.kind === 'position_change' && target.holders.some((h) => selves.includes(h))) return false;
  const person = personOf(target);
  if (person && selves.includes(person.userId)) return statement === 'person:read';
  if (target.kind === 'request' && statement === 'request:approve') {
    if (selves.includes(target.requestedBy)) return false;
    if (target.requestedOnBehalfOf !== null && selves.includes(target.requestedOnBehalfOf)) return false;
  }
  return true;
}

function personAllowed(actor: PersonActor, statement: Statement, target: Target): boolean {
  // Every signed-in person may read their own record.
  if (statement === 'person:read' && personOf(target)?.userId === actor.userId) return true;
  return separated([actor.userId, actor.id], statement, target) && granted(actor.powers ?? [], statement, target);
}

/** Whether an API client's registrar may still register it: when they lose that power, the client stops working. */
export function clientRegistrarEntitled(actor: ClientActor): boolean {
  return (
    actor.registrar === null ||
    personAllowed(actor.registrar, 'client:register', {
      kind: 'client',
      client: { odsCode: actor.odsCode, lockedByOperator: false },
    })
  );
}

function clientAllowed(actor: ClientActor, statement: Statement, target: Target): boolean {
  if (neverForClients.has(statement)) return false;
  if (!clientRegistrarEntitled(actor)) return false;
  const selves = [actor.id, ...(actor.registrar ? [actor.registrar.userId] : [])];
  if (!separated(selves, statement, target)) return false;
  if (!granted(actor.powers, statement, target)) return false;
  return actor.registrar === null || personAllowed(actor.registrar, statement, target);
}

export function isAllowed(actor: Actor, statement: Statement, target: Target): boolean {
  switch (actor.kind) {
    case 'operator':
    case 'system':
      return true;
    case 'person':
      // A relying party the operator locked is the operator's alone.
      if (target.kind === 'client' && target.client.lockedByOperator) return false;
      return personAllowed(actor, statement, target);
    case 'client':
      return clientAllowed(actor, statement, target);
  }
}

export function authorize(actor: Actor, statement: Statement, target: Target): void {
  if (!isAllowed(actor, statement, target)) throw new AppError('auth.forbidden', { statement });
}

/**
 * The organisations in which the actor may use a statement ('all' for the operator and the system): what a list
 * (applications, requests, reports, clients) may show. The policy answers it; callers only filter by it.
 */
export function organisationsWhere(actor: Actor, statement: Statement): readonly string[] | 'all' {
  if (actor.kind === 'operator' || actor.kind === 'system') return 'all';
  const reach = [...new Set((actor.powers ?? []).flatMap((p) => p.odsCodes))].sort();
  return reach.filter((odsCode) => isAllowed(actor, statement, { kind: 'organisation', odsCode }));
}

/**
 * The organisations of the actor's own profiles (the roots of their subtrees) that grant a statement: where a new
 * thing of theirs (a relying party) belongs when they do not say.
 */
export function homeOrganisationsWhere(actor: Actor, statement: Statement): readonly string[] {
  if (actor.kind !== 'person' && actor.kind !== 'client') return [];
  const roots = (actor.powers ?? []).flatMap((p) => (p.odsCode ? [p.odsCode] : []));
  return [...new Set(roots)].filter((odsCode) => isAllowed(actor, statement, { kind: 'organisation', odsCode })).sort();
}

/** Whether the actor may use a statement anywhere: in one of their organisations, or nationally. */
export function mayAnywhere(actor: Actor, statement: Statement): boolean {
  const orgs = organisationsWhere(actor, statement);
  return orgs === 'all' || orgs.length > 0 || isAllowed(actor, statement, { kind: 'national' });
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

/** How an actor is written in the audit trail: IDs only, never names. */
export function actorLabel(actor: Actor): string {
  return actor.kind === 'person' ? `person:${actor.userId}` : actor.id;
}
