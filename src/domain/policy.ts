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
  | { kind: 'person'; id: string; userId: string; powers?: readonly RaPower[] };

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
