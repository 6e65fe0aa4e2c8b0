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
import type { Repositories } from '../storage/repositories/index.ts';
import type { EffectiveRoleRow } from '../storage/repositories/role-profiles.ts';
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
  return ctx.transaction(async (tx) => {
    const unknown = [
      ...(await unknownCodes(tx, 'rbac_job_roles', p.jobRoles)),
      ...(await unknownCodes(tx, 'rbac_activities', p.activities)),
      ...(await unknownCodes(tx, 'rbac_areas_of_work', p.areasOfWork)),
    ];
    if (unknown.length > 0) throw new AppError('rbac.unknown_code', { codes: unknown });
    if (p.workgroups.length > 0) {
      const found = new Set(await tx.positions.workgroupsAt(p.workgroups, org.odsCode));
      const missing = p.workgroups.filter((w) => !found.has(w));
      if (missing.length > 0) throw new AppError('rbac.unknown_code', { codes: missing });
    }
    const now = ctx.clock.now();
    const positionId = await tx.positions.insertPosition(
      { odsCode: org.odsCode, name: p.name, assignable: p.assignable },
      now,
    );
    await tx.positions.linkPositionCodes(positionId, 'jobRoles', p.jobRoles);
    await tx.positions.linkPositionCodes(positionId, 'activities', p.activities);
    await tx.positions.linkPositionCodes(positionId, 'areasOfWork', p.areasOfWork);
    await tx.positions.linkPositionCodes(positionId, 'workgroups', p.workgroups);
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

/** Gives a person a position (a role profile), creating their person-organisation link on first use. */
export async function assignRoleProfile(ctx: ServiceContext, input: unknown): Promise<RoleProfile> {
  const rp = parseInput(newRoleProfileSchema, input, (i) =>
    i.path[0] === 'endDate' ? 'role_profile.invalid_dates' : 'request.invalid',
  );
  if (!isNationalId(rp.userId)) throw new AppError('person.invalid_user_id');
  return ctx.transaction(async (tx) => {
    const person = await tx.people.findPersonByUserId(rp.userId, true);
    if (!person) throw new AppError('person.not_found');
    const position = await tx.positions.findPosition(rp.positionId);
    if (position?.status !== 'active') throw new AppError('position.not_found');
    authorize(ctx.actor, 'role_profile:assign', {
      kind: 'position',
      person: await personFacts(tx, ctx.clock, person.userId),
      position: await tx.accessFacts.positionFacts(position),
    });
    if (person.status !== 'active') throw new AppError('role_profile.person_inactive', { status: person.status });
    const now = ctx.clock.now();
    let personOrgId = await tx.roleProfiles.personOrgIdOf(person.userId, position.odsCode);
    if (!personOrgId) {
      personOrgId = nationalIdFromSequence(await tx.people.nextNationalIdSequence('person_orgid_seq'));
      await tx.roleProfiles.insertPersonOrg({ personOrgId, userId: person.userId, odsCode: position.odsCode }, now);
    }
    const personRoleId = nationalIdFromSequence(await tx.people.nextNationalIdSequence('person_roleid_seq'));
    await tx.roleProfiles.insertRoleProfile(
      {
        personRoleId,
        userId: person.userId,
        personOrgId,
        positionId: position.positionId,
        startDate: rp.startDate,
        endDate: rp.endDate,
      },
      now,
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
  return ctx.transaction(async (tx) => {
    const before = await tx.roleProfiles.roleProfileForUpdate(personRoleId);
    if (!before) throw new AppError('role_profile.not_found');
    authorize(ctx.actor, 'role_profile:end', await profileTarget(tx, ctx.clock, before));
    if (before.status === 'ended') throw new AppError('role_profile.already_ended');
    const today = ukDate(ctx.clock.now());
    const endDate = before.endDate != null && before.endDate < today ? before.endDate : today;
    // A profile that has not started yet ends before it starts: the end date may not precede the start date.
    const clampedEnd = laterDate(endDate, before.startDate);
    await tx.roleProfiles.markRoleProfileEnded(personRoleId, clampedEnd, ctx.clock.now());
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

export async function roleProfilesOf(ctx: ServiceContext, userId: string): Promise<RoleProfile[]> {
  if (!isNationalId(userId)) throw new AppError('person.invalid_user_id');
  authorize(ctx.actor, 'person:read', await personTarget(ctx.repos, ctx.clock, userId));
  return ctx.repos.roleProfiles.roleProfilesOfPerson(userId);
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

export type { EffectiveRoleRow };

/**
 * The role profiles in effect for a person at `at` (UK date): active, started, not past their end date, the person
 * active and the position not retired. Evaluated on every call, so an end date needs no job or restart. One statement:
 * the SQL function `effective_role_rows` (migration 0012), whose plan the database keeps.
 */
export async function effectiveRoles(
  repos: Repositories,
  userId: string,
  at: Date,
  knownPerson?: { status: string },
): Promise<EffectiveRole[]> {
  if (knownPerson && knownPerson.status !== 'active') return [];
  const day = ukDate(at);
  const roleRows = await repos.roleProfiles.effectiveRoleRows(userId, day);
  return effectiveRolesFrom(roleRows, day, await repos.accessFacts.activityInclusions());
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
