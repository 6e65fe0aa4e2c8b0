import { expandActivities } from '../domain/access/catalogue.ts';
import {
  isEffectiveOn,
  type NewPosition,
  newPositionSchema,
  newRoleProfileSchema,
  type Position,
  type RoleProfile,
} from '../domain/access/role-profile.ts';
import { laterDate, ukDate } from '../domain/dates.ts';
import { AppError } from '../domain/errors.ts';
import { isNationalId, nationalIdFromSequence } from '../domain/identity/user-id.ts';
import { authorize } from '../domain/policy.ts';
import type { Queryable } from '../storage/database.ts';
import { findPersonByUserId, nextNationalIdSequence } from '../storage/people.ts';
import { activityInclusions, positionFacts } from '../storage/repositories/access-facts.ts';
import { findPosition } from '../storage/repositories/positions.ts';
import { appendAudit } from './audit.ts';
import { unknownCodes } from './catalogue.ts';
import type { ServiceContext } from './context.ts';
import { getOrganisation } from './organisations.ts';
import { recordSessionEnd } from './sessions.ts';
import { personFacts, personTarget, profileTarget } from './targets.ts';
import { parseInput } from './validation.ts';

export async function createPosition(ctx: ServiceContext, odsCode: string, input: unknown): Promise<Position> {
  const org = await getOrganisation(ctx, odsCode);
  authorize(ctx.actor, 'position:create', { kind: 'organisation', odsCode: org.odsCode });
  const p: NewPosition = parseInput(newPositionSchema, input);
  return ctx.db.transaction(async (tx) => {
    const unknown = [
      ...(await unknownCodes(tx, 'rbac_job_roles', p.jobRoles)),
      ...(await unknownCodes(tx, 'rbac_activities', p.activities)),
      ...(await unknownCodes(tx, 'rbac_areas_of_work', p.areasOfWork)),
    ];
    if (unknown.length > 0) throw new AppError('rbac.unknown_code', { codes: unknown });
    if (p.workgroups.length > 0) {
      const { rows } = await tx.query<{ code: string }>(
        'SELECT code FROM workgroups WHERE code = ANY($1) AND ods_code = $2',
        [p.workgroups, org.odsCode],
      );
      const found = new Set(rows.map((r) => r.code));
      const missing = p.workgroups.filter((w) => !found.has(w));
      if (missing.length > 0) throw new AppError('rbac.unknown_code', { codes: missing });
    }
    const now = ctx.clock.now();
    const { rows } = await tx.query<{ position_id: string }>(
      `INSERT INTO positions (ods_code, name, assignable, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
       RETURNING position_id`,
      [org.odsCode, p.name, p.assignable, now],
    );
    const positionId = rows[0]!.position_id;
    const link = async (table: string, column: string, codes: string[]) => {
      if (codes.length === 0) return;
      await tx.query(
        `INSERT INTO ${table} (position_id, ${column}) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`,
        [positionId, [...new Set(codes)]],
      );
    };
    await link('position_job_roles', 'job_role_code', p.jobRoles);
    await link('position_activities', 'activity_code', p.activities);
    await link('position_areas_of_work', 'aow_code', p.areasOfWork);
    await link('position_workgroups', 'workgroup_code', p.workgroups);
    const position: Position = {
      positionId,
      odsCode: org.odsCode,
      name: p.name,
      assignable: p.assignable,
      jobRoles: [...new Set(p.jobRoles)].sort(),
      activities: [...new Set(p.activities)].sort(),
      areasOfWork: [...new Set(p.areasOfWork)].sort(),
      workgroups: [...new Set(p.workgroups)].sort(),
      status: 'active',
    };
    await appendAudit(tx, ctx, {
      action: 'position.created',
      targetType: 'position',
      targetId: positionId,
      before: null,
      after: position,
    });
    return position;
  });
}

export { findPosition };

/** Gives a person a position (a role profile), creating their person-organisation link on first use. */
export async function assignRoleProfile(ctx: ServiceContext, input: unknown): Promise<RoleProfile> {
  const rp = parseInput(newRoleProfileSchema, input, (i) =>
    i.path[0] === 'endDate' ? 'role_profile.invalid_dates' : 'request.invalid',
  );
  if (!isNationalId(rp.userId)) throw new AppError('person.invalid_user_id');
  return ctx.db.transaction(async (tx) => {
    const person = await findPersonByUserId(tx, rp.userId, true);
    if (!person) throw new AppError('person.not_found');
    const position = await findPosition(tx, rp.positionId);
    if (position?.status !== 'active') throw new AppError('position.not_found');
    authorize(ctx.actor, 'role_profile:assign', {
      kind: 'position',
      person: await personFacts(tx, ctx.clock, person.userId),
      position: await positionFacts(tx, position),
    });
    if (person.status !== 'active') throw new AppError('role_profile.person_inactive', { status: person.status });
    const now = ctx.clock.now();
    let personOrgId = (
      await tx.query<{ person_orgid: string }>(
        'SELECT person_orgid FROM person_orgs WHERE user_id = $1 AND ods_code = $2',
        [person.userId, position.odsCode],
      )
    ).rows[0]?.person_orgid;
    if (!personOrgId) {
      personOrgId = nationalIdFromSequence(await nextNationalIdSequence(tx, 'person_orgid_seq'));
      await tx.query('INSERT INTO person_orgs (person_orgid, user_id, ods_code, created_at) VALUES ($1, $2, $3, $4)', [
        personOrgId,
        person.userId,
        position.odsCode,
        now,
      ]);
    }
    const personRoleId = nationalIdFromSequence(await nextNationalIdSequence(tx, 'person_roleid_seq'));
    await tx.query(
      `INSERT INTO role_profiles (person_roleid, user_id, person_orgid, position_id, start_date, end_date, status, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7)`,
      [personRoleId, person.userId, personOrgId, position.positionId, rp.startDate, rp.endDate, now],
    );
    const profile: RoleProfile = {
      personRoleId,
      userId: person.userId,
      personOrgId,
      positionId: position.positionId,
      odsCode: position.odsCode,
      startDate: rp.startDate,
      endDate: rp.endDate,
      status: 'active',
    };
    await appendAudit(tx, ctx, {
      action: 'role_profile.assigned',
      targetType: 'person',
      targetId: person.userId,
      before: null,
      after: profile,
    });
    return profile;
  });
}

/** Ends a role profile now (status ended, end date today unless it already ends earlier). */
export async function endRoleProfile(ctx: ServiceContext, personRoleId: string, reason: string): Promise<RoleProfile> {
  if (!isNationalId(personRoleId)) throw new AppError('role_profile.not_found');
  return ctx.db.transaction(async (tx) => {
    const before = (await roleProfilesWhere(tx, 'rp.person_roleid = $1 FOR UPDATE OF rp', [personRoleId]))[0];
    if (!before) throw new AppError('role_profile.not_found');
    authorize(ctx.actor, 'role_profile:end', await profileTarget(tx, ctx.clock, before));
    if (before.status === 'ended') throw new AppError('role_profile.already_ended');
    const today = ukDate(ctx.clock.now());
    const endDate = before.endDate != null && before.endDate < today ? before.endDate : today;
    // A profile that has not started yet ends before it starts: the end date may not precede the start date.
    const clampedEnd = laterDate(endDate, before.startDate);
    await tx.query(
      "UPDATE role_profiles SET status = 'ended', end_date = $2, updated_at = $3 WHERE person_roleid = $1",
      [personRoleId, clampedEnd, ctx.clock.now()],
    );
    const after: RoleProfile = { ...before, status: 'ended', endDate: clampedEnd };
    // CIS2: removing a role ends the sessions (and refresh tokens) that may carry it.
    await recordSessionEnd(tx, before.userId, 'role_removed', ctx.clock.now());
    await appendAudit(tx, ctx, {
      action: 'role_profile.ended',
      targetType: 'person',
      targetId: before.userId,
      before,
      after,
      reason,
    });
    return after;
  });
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

export async function roleProfilesOf(ctx: ServiceContext, userId: string): Promise<RoleProfile[]> {
  if (!isNationalId(userId)) throw new AppError('person.invalid_user_id');
  authorize(ctx.actor, 'person:read', await personTarget(ctx.db, ctx.clock, userId));
  return roleProfilesWhere(ctx.db, 'rp.user_id = $1 ORDER BY rp.person_roleid', [userId]);
}

/** A role profile as applications see it: what CIS2 puts in `nhsid_nrbac_roles` and CIS1 in the role assertion. */
export interface EffectiveRole {
  personRoleId: string;
  personOrgId: string;
  odsCode: string;
  orgName: string;
  positionId: string;
  positionName: string;
  jobRoles: { code: string; roleCode: string; roleName: string }[];
  /** Activities granted explicitly by the position. */
  activityCodes: string[];
  /** Everything the role may do: explicit, the job roles' baseline, and what those include. */
  effectiveActivities: string[];
  areasOfWork: string[];
  workgroups: string[];
  startDate: string;
  endDate: string | null;
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

/**
 * The role profiles in effect for a person at `at` (UK date): active, started, not past their end date, the person
 * active and the position not retired. Evaluated on every call, so an end date needs no job or restart. One statement:
 * the SQL function `effective_role_rows` (migration 0012), whose plan the database keeps.
 */
export async function effectiveRoles(
  q: Queryable,
  userId: string,
  at: Date,
  knownPerson?: { status: string },
): Promise<EffectiveRole[]> {
  if (knownPerson && knownPerson.status !== 'active') return [];
  const day = ukDate(at);
  const { rows } = await q.query<{ roles: EffectiveRoleRow[] | string }>(
    'SELECT effective_role_rows($1, $2) AS roles',
    [userId, day],
  );
  const raw = rows[0]?.roles ?? [];
  const roleRows = typeof raw === 'string' ? (JSON.parse(raw) as EffectiveRoleRow[]) : raw;
  return effectiveRolesFrom(roleRows, day, await activityInclusions(q));
}

/** Role profile rows (as `effective_role_rows` returns them) as applications see them, on UK date `day`. */
export function effectiveRolesFrom(
  rows: readonly EffectiveRoleRow[],
  day: string,
  includes: ReadonlyMap<string, readonly string[]>,
): EffectiveRole[] {
  return rows
    .filter((r) => isEffectiveOn({ status: r.status, startDate: r.start_date, endDate: r.end_date }, day))
    .map((r) => {
      const roles = typeof r.roles === 'string' ? (JSON.parse(r.roles) as typeof r.roles) : r.roles;
      return {
        personRoleId: r.person_roleid,
        personOrgId: r.person_orgid,
        odsCode: r.ods_code,
        orgName: r.org_name,
        positionId: r.position_id,
        positionName: r.position_name,
        jobRoles: roles.map((j) => ({
          code: j.code,
          roleCode: `${j.sg}:${j.g}:${j.code}`,
          roleName: `"${j.sgn}":"${j.gn}":"${j.name}"`,
        })),
        activityCodes: r.activities,
        effectiveActivities: [...expandActivities([...r.activities, ...r.baseline], includes)].sort(),
        areasOfWork: r.aows,
        workgroups: r.workgroups,
        startDate: r.start_date,
        endDate: r.end_date,
      };
    });
}
