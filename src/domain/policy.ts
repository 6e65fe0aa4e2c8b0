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

export type Actor =
  | { kind: 'operator'; id: string } // e.g. "cli:root@host"
  | { kind: 'system'; id: string } // e.g. "system:seed"
  | { kind: 'person'; id: string; userId: string };

export interface Target {
  /** The organisation the target belongs to, when it has one: RA powers are scoped to an organisation subtree. */
  odsCode?: string;
  /** The person the action is about, for segregation-of-duties rules. */
  userId?: string;
}

export function isAllowed(actor: Actor, statement: Statement, target: Target = {}): boolean {
  switch (actor.kind) {
    case 'operator':
    case 'system':
      return true;
    case 'person':
      // Segregation of duties: nobody changes their own record or access (DOMAIN §5) — checked first so that no
      // future grant can bypass it.
      if (target.userId !== undefined && target.userId === actor.userId && statement !== 'person:read') return false;
      return statement === 'person:read' && target.userId === actor.userId;
  }
}

export function authorize(actor: Actor, statement: Statement, target: Target = {}): void {
  if (!isAllowed(actor, statement, target)) throw new AppError('auth.forbidden', { statement });
}

/** How an actor is written in the audit trail: IDs only, never names. */
export function actorLabel(actor: Actor): string {
  return actor.kind === 'person' ? `person:${actor.userId}` : actor.id;
}
