/**
 * CIS1 tickets as relying parties validate them: everything a validation needs about a ticket in one call of
 * cis1_ticket_state (migration 0009) and its live state alone in one call of cis1_ticket_liveness (migration 0013), both
 * keyed by the ticket's hash. The rows are the functions' JSON (text on drivers that return json as text).
 */
import type { Queryable } from '../database.ts';
import type { SessionRow } from './cis1-sessions.ts';

export interface ValidationRow extends SessionRow {
  title: string | null;
  given_name: string;
  family_name: string;
  preferred_name: string | null;
  identity_assurance_level: number;
  signing_key_id: string | null;
  catalogue_key: string;
  person_orgid: string | null;
  ods_code: string | null;
  org_name: string | null;
  job_roles: { code: string; name: string; sg: string; sgn: string; g: string; gn: string }[] | string | null;
  activities: [string, string][] | string | null;
  baseline: string[] | null;
  aows: [string, string][] | string | null;
  workgroups: [string, string][] | string | null;
}

/**
 * The live state of a ticket without its role data (cis1_ticket_liveness, migration 0013): the same session, card,
 * certificate and person columns as cis1_ticket_state, person_orgid only when the selected role profile is in effect
 * (same conditions), and `stamp`, a text that changes whenever anything the assertion says changes.
 */
export interface LivenessRow extends SessionRow {
  signing_key_id: string | null;
  catalogue_key: string;
  person_orgid: string | null;
  stamp: string;
}

type Json<T> = T | string | null;

export async function ticketState(
  q: Queryable,
  ticketHash: string,
  day: string,
): Promise<Json<ValidationRow> | undefined> {
  const { rows } = await q.query<{ state: Json<ValidationRow> }>('SELECT cis1_ticket_state($1, $2::date) AS state', [
    ticketHash,
    day,
  ]);
  return rows[0]?.state;
}

export async function ticketLiveness(
  q: Queryable,
  ticketHash: string,
  day: string,
): Promise<Json<LivenessRow> | undefined> {
  const { rows } = await q.query<{ live: Json<LivenessRow> }>('SELECT cis1_ticket_liveness($1, $2::date) AS live', [
    ticketHash,
    day,
  ]);
  return rows[0]?.live;
}

/**
 * The full state and the stamp, in one statement: both functions are STABLE, so they read the same snapshot, and the
 * stamp kept with an assertion is the stamp of exactly the data it was built from.
 */
export async function ticketStateWithStamp(
  q: Queryable,
  ticketHash: string,
  day: string,
): Promise<{ state: Json<ValidationRow>; live: Json<LivenessRow> } | undefined> {
  const { rows } = await q.query<{ state: Json<ValidationRow>; live: Json<LivenessRow> }>(
    'SELECT cis1_ticket_state($1, $2::date) AS state, cis1_ticket_liveness($1, $2::date) AS live',
    [ticketHash, day],
  );
  return rows[0];
}
