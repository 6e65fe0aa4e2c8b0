/**
 * What the policy decides about: the actors (the operator, the system, people with their RA powers, API clients with
 * their registrar) and the targets they act on, as the repositories load them (src/domain/policy.ts decides on them).
 */
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

/** How an actor is written in the audit trail: IDs only, never names. */
export function actorLabel(actor: Actor): string {
  return actor.kind === 'person' ? `person:${actor.userId}` : actor.id;
}
