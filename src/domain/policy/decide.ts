/**
 * The decision: scope (the organisations an action happens in, national effects), the appointments an action touches,
 * segregation of duties, API clients bounded by their registrar — `isAllowed`, `authorize`, and the lists' questions
 * (`organisationsWhere`, `homeOrganisationsWhere`, `mayAnywhere`).
 */
import { AppError } from '../errors.ts';
import { conditions, raRolesOfPower, statementsByRole } from './roles.ts';
import type { Statement } from './statements.ts';
import type { Actor, Appointment, ClientActor, PersonActor, PersonFacts, RaPower, Target } from './targets.ts';

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
