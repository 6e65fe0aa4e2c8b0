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
 *
 * This module is the policy's public face; its parts live in src/domain/policy/: statements.ts (the statements),
 * targets.ts (actors and targets), roles.ts (the RA roles and their matrix), decide.ts (the decision).
 */
export {
  authorize,
  clientRegistrarEntitled,
  homeOrganisationsWhere,
  isAllowed,
  mayAnywhere,
  organisationsWhere,
} from './policy/decide.ts';
export { appointmentOf, type RaRole, raRoles, raRolesOf, raRolesOfPower } from './policy/roles.ts';
export { type Statement, statements } from './policy/statements.ts';
export {
  type Actor,
  type Appointment,
  actorLabel,
  type ClientActor,
  type PersonActor,
  type PersonFacts,
  type PositionFacts,
  type RaPower,
  type Target,
} from './policy/targets.ts';
