/**
 * What the policy needs to know about a target (src/domain/policy.ts): a person with their organisations and the
 * access they hold, a position with what it appoints. Read from the live rows at each call: a role profile ended a
 * moment ago no longer counts, a future appointment already does.
 */
import { expandActivities } from '../../domain/access/catalogue.ts';
import type { PersonStatus } from '../../domain/identity/person.ts';
import { type Appointment, appointmentOf, type PersonFacts, type PositionFacts } from '../../domain/policy.ts';
import type { Queryable } from '../database.ts';

/**
 * Activity inclusions change only when a new national catalogue is loaded (a few times a year), and every sign-in's
 * claims need them: kept for a minute per database, so a new catalogue takes effect within a minute on every node.
 */
const inclusionsCache = new WeakMap<Queryable, { at: number; value: Map<string, string[]> }>();
const INCLUSIONS_TTL_MS = 60_000;

/** The RBAC activities that include others (the national catalogue's inclusions), kept for a minute per database. */
export async function activityInclusions(q: Queryable): Promise<Map<string, string[]>> {
  const cached = inclusionsCache.get(q);
  if (cached && Date.now() - cached.at < INCLUSIONS_TTL_MS) return cached.value;
  const value = await activityInclusionsUncached(q);
  inclusionsCache.set(q, { at: Date.now(), value });
  return value;
}

/**
 * The same inclusions read from the database now, with no cache: for a caller that keeps its own (CIS1 validation
 * keeps them by catalogue version, so a new catalogue takes effect on the next validation).
 */
export async function activityInclusionsUncached(q: Queryable): Promise<Map<string, string[]>> {
  const { rows } = await q.query<{ code: string; includes: string[] }>(
    "SELECT code, includes FROM rbac_activities WHERE includes <> '{}'",
  );
  return new Map(rows.map((r) => [r.code, r.includes]));
}

function appointmentFrom(
  jobRoles: readonly string[],
  activities: readonly string[],
  includes: ReadonlyMap<string, readonly string[]>,
): Appointment {
  return appointmentOf({ jobRoles, activities: [...expandActivities(activities, includes)] });
}

type Json<T> = T | string;
const parsed = <T>(v: Json<T>): T => (typeof v === 'string' ? (JSON.parse(v) as T) : v);

/**
 * A person as a policy target on UK date `day`: their organisation links and every role profile not ended (active,
 * with no end date or one on or after `day`, started or not), each with what its position appoints (job roles and
 * explicit activities, the job roles' baseline, inclusions expanded). Undefined for an unknown user ID.
 */
export async function loadPersonFacts(
  q: Queryable,
  userId: string,
  day: string,
): Promise<(PersonFacts & { status: PersonStatus }) | undefined> {
  const { rows } = await q.query<{
    status: PersonStatus;
    ods_codes: string[];
    profiles: Json<{ ods_code: string; job_roles: string[]; activities: string[] }[]>;
  }>(
    `SELECT pe.status,
       ARRAY(SELECT ods_code FROM person_orgs WHERE user_id = pe.user_id ORDER BY 1) AS ods_codes,
       COALESCE((SELECT json_agg(json_build_object(
           'ods_code', po.ods_code,
           'job_roles', ARRAY(SELECT job_role_code FROM position_job_roles WHERE position_id = rp.position_id),
           'activities', ARRAY(SELECT activity_code FROM position_activities WHERE position_id = rp.position_id
             UNION SELECT b.activity_code FROM position_job_roles pj JOIN rbac_baseline b ON b.job_role_code = pj.job_role_code
               WHERE pj.position_id = rp.position_id)) ORDER BY rp.person_roleid)
         FROM role_profiles rp JOIN person_orgs po ON po.person_orgid = rp.person_orgid
         WHERE rp.user_id = pe.user_id AND rp.status = 'active' AND (rp.end_date IS NULL OR rp.end_date >= $2::date)),
         '[]'::json) AS profiles
     FROM people pe WHERE pe.user_id = $1`,
    [userId, day],
  );
  const r = rows[0];
  if (!r) return undefined;
  const includes = await activityInclusions(q);
  return {
    userId,
    status: r.status,
    odsCodes: r.ods_codes,
    profiles: parsed(r.profiles).map((p) => ({
      odsCode: p.ods_code,
      appoints: appointmentFrom(p.job_roles, p.activities, includes),
    })),
  };
}

/** A position as a policy target: its organisation, whether it is assignable, and what giving it appoints. */
export async function positionFacts(
  q: Queryable,
  position: { odsCode: string; assignable: boolean; jobRoles: readonly string[]; activities: readonly string[] },
): Promise<PositionFacts> {
  const { rows } = await q.query<{ activity_code: string }>(
    'SELECT DISTINCT activity_code FROM rbac_baseline WHERE job_role_code = ANY($1::text[])',
    [[...position.jobRoles]],
  );
  const activities = [...position.activities, ...rows.map((r) => r.activity_code)];
  return {
    odsCode: position.odsCode,
    assignable: position.assignable,
    appoints: appointmentFrom(position.jobRoles, activities, await activityInclusions(q)),
  };
}

/**
 * Who registered the API client an actor id names (`client:<client_id>`), when a person did: a request that client
 * made is that person's own request (segregation of duties). Null for anyone else, or a client the operator registered.
 */
export async function registrarOfActor(q: Queryable, actorId: string): Promise<string | null> {
  if (!actorId.startsWith('client:')) return null;
  const { rows } = await q.query<{ created_by: string }>('SELECT created_by FROM oidc_clients WHERE client_id = $1', [
    actorId.slice('client:'.length),
  ]);
  const by = rows[0]?.created_by;
  return by && /^[0-9]{12}$/.test(by) ? by : null;
}
