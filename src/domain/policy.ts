/**
 * Who may do what — the one place every RA and administrative permission is decided (STYLE.md). Permissions are
 * `resource:action` statements. Services call `authorize` before they touch anything.
 *
 * Actors today: the `opencis` CLI operator (someone with shell access to the server, who can already read the
 * database, so the CLI grants it every statement), the system itself (scheduled jobs, migrations, seeding) and
 * people. People's RA powers arrive with the RA roles (B-codes held through role profiles); until then a person
 * actor holds no administrative statement.
 */
import { AppError } from './errors.ts';

export const statements = [
  'person:read',
  'person:create',
  'person:update',
  'person:change_status',
  'organisation:read',
  'organisation:create',
  'organisation:update',
  'catalogue:load',
  'position:create',
  'position:update',
  'role_profile:assign',
  'role_profile:end',
  'audit:read',
  'card:issue',
  'card:unlock',
  'card:cancel',
  'authenticator:enrol',
] as const;
export type Statement = (typeof statements)[number];

/**
 * RA powers a person holds through their effective role profiles: the activities (B-codes, inclusions expanded) of
 * each profile, and the organisations that profile's organisation subtree covers (an RA's reach, DOMAIN §3).
 */
export interface RaPower {
  activities: readonly string[];
  odsCodes: readonly string[];
}

export type Actor =
  | { kind: 'operator'; id: string } // e.g. "cli:root@host"
  | { kind: 'system'; id: string } // e.g. "system:seed"
  | { kind: 'person'; id: string; userId: string; powers?: readonly RaPower[] };

export interface Target {
  /** The organisation the target belongs to, when it has one: RA powers are scoped to an organisation subtree. */
  odsCode?: string;
  /** For a person: the organisations they work for. In scope when any of them is in the actor's reach. */
  odsCodes?: readonly string[];
  /** The person the action is about, for segregation-of-duties rules. */
  userId?: string;
}

/**
 * Which activity grants which statements. B0274 "Perform RA activities" (RA Agents and Managers) covers identity and
 * card work; B0267 (ID Checker) registers and verifies people; B0264 (Local Smartcard Administrator) unlocks cards.
 * The full RA role matrix (sponsors, approvals, positions) is defined with the RA console.
 */
const grantsByActivity: Record<string, readonly Statement[]> = {
  B0274: [
    'person:read',
    'person:create',
    'person:update',
    'card:issue',
    'card:unlock',
    'card:cancel',
    'authenticator:enrol',
  ],
  B0267: ['person:read', 'person:create'],
  B0264: ['person:read', 'card:unlock'],
};

/** Statements that a person may use on people who have no organisation yet (a new starter being registered). */
const nationalStatements = new Set<Statement>(['person:read', 'person:create']);

export function isAllowed(actor: Actor, statement: Statement, target: Target = {}): boolean {
  switch (actor.kind) {
    case 'operator':
    case 'system':
      return true;
    case 'person': {
      // Segregation of duties: nobody changes their own record or access (DOMAIN §5) — checked first so that no
      // grant can bypass it.
      if (target.userId !== undefined && target.userId === actor.userId) return statement === 'person:read';
      const targetOrgs = target.odsCodes ?? (target.odsCode ? [target.odsCode] : []);
      for (const power of actor.powers ?? []) {
        if (!power.activities.some((a) => grantsByActivity[a]?.includes(statement))) continue;
        if (targetOrgs.length === 0 && nationalStatements.has(statement)) return true;
        if (targetOrgs.some((o) => power.odsCodes.includes(o))) return true;
      }
      return false;
    }
  }
}

export function authorize(actor: Actor, statement: Statement, target: Target = {}): void {
  if (!isAllowed(actor, statement, target)) throw new AppError('auth.forbidden', { statement });
}

/** How an actor is written in the audit trail: IDs only, never names. */
export function actorLabel(actor: Actor): string {
  return actor.kind === 'person' ? `person:${actor.userId}` : actor.id;
}
