/**
 * Role profiles (DOMAIN §4): a person's appointment to a position, from a start date to an optional end date.
 *
 * "Role profile in effect" is defined once, in the database: `role_profile_in_effect(status, start_date, end_date, day)`
 * (migration 0023) — active, started on or before the day, not past its end date (both inclusive), the rule of
 * isEffectiveOn (src/domain/access/role-profile.ts). Claims (effective_role_rows), CIS1 (cis1_ticket_state,
 * cis1_ticket_liveness), reports and bootstrap all call it; a query here writes it as `profileInEffect(alias, day)`.
 */
import type { RoleProfile } from '../../domain/access/role-profile.ts';
import type { Queryable } from '../database.ts';

/** The SQL condition "the role profile `alias` is in effect on the UK date `day`" (a parameter such as `$2`). */
export const profileInEffect = (alias: string, day: string): string =>
  `role_profile_in_effect(${alias}.status, ${alias}.start_date, ${alias}.end_date, ${day}::date)`;

/** Whether the role profile `personRoleId` is in effect on `day` (the one rule, as the database applies it). */
export async function isInEffect(q: Queryable, personRoleId: string, day: string): Promise<boolean> {
  const { rows } = await q.query<{ in_effect: boolean }>(
    `SELECT ${profileInEffect('rp', '$2')} AS in_effect FROM role_profiles rp WHERE rp.person_roleid = $1`,
    [personRoleId, day],
  );
  return rows[0]?.in_effect === true;
}

/** Whether any role profile of an RA Manager (R5080) is not ended on `day` (started or not). */
export async function raManagerExists(q: Queryable, day: string): Promise<boolean> {
  const { rows } = await q.query(
    `SELECT 1 FROM role_profiles rp JOIN position_job_roles pj ON pj.position_id = rp.position_id
     WHERE pj.job_role_code = 'R5080' AND rp.status = 'active' AND (rp.end_date IS NULL OR rp.end_date >= $1) LIMIT 1`,
    [day],
  );
  return rows.length > 0;
}

export interface RaManagerLine {
  userId: string;
  name: string;
  odsCode: string;
  orgName: string;
}

/** The active people with an RA Manager (R5080) role profile in effect on `day` (at most 20). */
export async function raManagers(q: Queryable, day: string): Promise<RaManagerLine[]> {
  const { rows } = await q.query<{ user_id: string; name: string; ods_code: string; org_name: string }>(
    `SELECT DISTINCT p.user_id, p.given_name || ' ' || p.family_name AS name, o.ods_code, o.name AS org_name
     FROM role_profiles rp JOIN position_job_roles pj ON pj.position_id = rp.position_id
       JOIN people p ON p.user_id = rp.user_id JOIN positions pos ON pos.position_id = rp.position_id
       JOIN organisations o ON o.ods_code = pos.ods_code
     WHERE pj.job_role_code = 'R5080' AND p.status = 'active' AND ${profileInEffect('rp', '$1')}
     ORDER BY o.ods_code, p.user_id LIMIT 20`,
    [day],
  );
  return rows.map((r) => ({ userId: r.user_id, name: r.name, odsCode: r.ods_code, orgName: r.org_name }));
}

/** The person-organisation link of `userId` to `odsCode`, if there is one. */
export async function personOrgIdOf(q: Queryable, userId: string, odsCode: string): Promise<string | undefined> {
  return (
    await q.query<{ person_orgid: string }>(
      'SELECT person_orgid FROM person_orgs WHERE user_id = $1 AND ods_code = $2',
      [userId, odsCode],
    )
  ).rows[0]?.person_orgid;
}

export async function insertPersonOrg(
  q: Queryable,
  link: { personOrgId: string; userId: string; odsCode: string },
  now: Date,
): Promise<void> {
  await q.query('INSERT INTO person_orgs (person_orgid, user_id, ods_code, created_at) VALUES ($1, $2, $3, $4)', [
    link.personOrgId,
    link.userId,
    link.odsCode,
    now,
  ]);
}

/** A new active role profile. */
export async function insertRoleProfile(
  q: Queryable,
  rp: {
    personRoleId: string;
    userId: string;
    personOrgId: string;
    positionId: string;
    startDate: string;
    endDate: string | null;
  },
  now: Date,
): Promise<void> {
  await q.query(
    `INSERT INTO role_profiles (person_roleid, user_id, person_orgid, position_id, start_date, end_date, status, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7)`,
    [rp.personRoleId, rp.userId, rp.personOrgId, rp.positionId, rp.startDate, rp.endDate, now],
  );
}

/** Ends a role profile: status ended, end date `endDate`. */
export async function markRoleProfileEnded(
  q: Queryable,
  personRoleId: string,
  endDate: string,
  now: Date,
): Promise<void> {
  await q.query("UPDATE role_profiles SET status = 'ended', end_date = $2, updated_at = $3 WHERE person_roleid = $1", [
    personRoleId,
    endDate,
    now,
  ]);
}

/** Active role profiles whose end date (a UK date) is before `today`: marked ended (the scheduled job's statement). */
export async function endRoleProfilesBefore(
  q: Queryable,
  today: string,
  at: Date,
): Promise<{ userId: string; personRoleId: string; endDate: string }[]> {
  const { rows } = await q.query<{ user_id: string; person_roleid: string; end_date: string }>(
    `UPDATE role_profiles SET status = 'ended', updated_at = $2 WHERE status = 'active' AND end_date < $1
       RETURNING user_id, person_roleid, end_date`,
    [today, at],
  );
  return rows.map((r) => ({ userId: r.user_id, personRoleId: r.person_roleid, endDate: r.end_date }));
}

async function roleProfilesWhere(q: Queryable, where: string, params: unknown[]): Promise<RoleProfile[]> {
  const { rows } = await q.query<{
    person_roleid: string;
    user_id: string;
    person_orgid: string;
    position_id: string;
    ods_code: string;
    start_date: string;
    end_date: string | null;
    status: RoleProfile['status'];
  }>(
    `SELECT rp.person_roleid, rp.user_id, rp.person_orgid, rp.position_id, po.ods_code, rp.start_date, rp.end_date, rp.status
     FROM role_profiles rp JOIN person_orgs po ON po.person_orgid = rp.person_orgid WHERE ${where}`,
    params,
  );
  return rows.map((r) => ({
    personRoleId: r.person_roleid,
    userId: r.user_id,
    personOrgId: r.person_orgid,
    positionId: r.position_id,
    odsCode: r.ods_code,
    startDate: r.start_date,
    endDate: r.end_date,
    status: r.status,
  }));
}

/** The role profile `personRoleId`, its row locked for the rest of the transaction. */
export async function roleProfileForUpdate(q: Queryable, personRoleId: string): Promise<RoleProfile | undefined> {
  return (await roleProfilesWhere(q, 'rp.person_roleid = $1 FOR UPDATE OF rp', [personRoleId]))[0];
}

/** Every role profile of a person, ended ones too, by ID. */
export function roleProfilesOfPerson(q: Queryable, userId: string): Promise<RoleProfile[]> {
  return roleProfilesWhere(q, 'rp.user_id = $1 ORDER BY rp.person_roleid', [userId]);
}

/** One row of `effective_role_rows` (migration 0012): a role profile in effect, with its position's codes. */
export interface EffectiveRoleRow {
  person_roleid: string;
  person_orgid: string;
  ods_code: string;
  org_name: string;
  position_id: string;
  position_name: string;
  start_date: string;
  end_date: string | null;
  status: 'active' | 'ended';
  roles: { code: string; name: string; sg: string; sgn: string; g: string; gn: string }[];
  activities: string[];
  baseline: string[];
  aows: string[];
  workgroups: string[];
}

/** The role profiles in effect for a person on UK date `day` (the SQL function `effective_role_rows`). */
export async function effectiveRoleRows(q: Queryable, userId: string, day: string): Promise<EffectiveRoleRow[]> {
  const { rows } = await q.query<{ roles: EffectiveRoleRow[] | string }>(
    'SELECT effective_role_rows($1, $2) AS roles',
    [userId, day],
  );
  const raw = rows[0]?.roles ?? [];
  return typeof raw === 'string' ? (JSON.parse(raw) as EffectiveRoleRow[]) : raw;
}

interface ProfileRow {
  person_roleid: string;
  user_id: string;
  person_orgid: string;
  position_id: string;
  ods_code: string;
  start_date: string;
  end_date: string | null;
  status: RoleProfile['status'];
}

/** Role profiles with their organisation and dates as UK calendar dates (YYYY-MM-DD): how the RA actions read them. */
const PROFILE_SELECT = `SELECT rp.person_roleid, rp.user_id, rp.person_orgid, rp.position_id::text AS position_id,
  po.ods_code, to_char(rp.start_date, 'YYYY-MM-DD') AS start_date, to_char(rp.end_date, 'YYYY-MM-DD') AS end_date,
  rp.status FROM role_profiles rp JOIN person_orgs po ON po.person_orgid = rp.person_orgid`;

function profileFromRow(r: ProfileRow): RoleProfile {
  return {
    personRoleId: r.person_roleid,
    userId: r.user_id,
    personOrgId: r.person_orgid,
    positionId: r.position_id,
    odsCode: r.ods_code,
    startDate: r.start_date,
    endDate: r.end_date,
    status: r.status,
  };
}

/** The role profile `personRoleId` (`lock`: its row, for the rest of the transaction). */
export async function profileById(q: Queryable, personRoleId: string, lock = false): Promise<RoleProfile | undefined> {
  const { rows } = await q.query<ProfileRow>(
    lock
      ? `${PROFILE_SELECT} WHERE rp.person_roleid = $1 FOR UPDATE OF rp`
      : `${PROFILE_SELECT} WHERE rp.person_roleid = $1`,
    [personRoleId],
  );
  return rows[0] && profileFromRow(rows[0]);
}

/** The role profiles of a person not ended on `today` (active, with no end date or one today or later), locked. */
export async function liveProfilesForUpdate(q: Queryable, userId: string, today: string): Promise<RoleProfile[]> {
  const { rows } = await q.query<ProfileRow>(
    `${PROFILE_SELECT} WHERE rp.user_id = $1 AND rp.status = 'active' AND (rp.end_date IS NULL OR rp.end_date >= $2::date)
     ORDER BY rp.person_roleid FOR UPDATE OF rp`,
    [userId, today],
  );
  return rows.map(profileFromRow);
}

/** Every active role profile of a person (whatever its dates), locked. */
export async function activeProfilesForUpdate(q: Queryable, userId: string): Promise<RoleProfile[]> {
  const { rows } = await q.query<ProfileRow>(
    `${PROFILE_SELECT} WHERE rp.user_id = $1 AND rp.status = 'active' ORDER BY rp.person_roleid FOR UPDATE OF rp`,
    [userId],
  );
  return rows.map(profileFromRow);
}

export async function changeRoleProfileDates(
  q: Queryable,
  personRoleId: string,
  dates: { startDate: string; endDate: string | null },
  now: Date,
): Promise<void> {
  await q.query('UPDATE role_profiles SET start_date = $2, end_date = $3, updated_at = $4 WHERE person_roleid = $1', [
    personRoleId,
    dates.startDate,
    dates.endDate,
    now,
  ]);
}
