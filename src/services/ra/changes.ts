/**
 * Changes to a person's access and record (DOMAIN §5.4): end a position, change its dates, change a name with evidence.
 * Status changes (suspend, restore, leaver, re-joiner) are in status.ts.
 */
import { z } from 'zod';
import type { RoleProfile } from '../../domain/access/role-profile.ts';
import { isCalendarDate, ukDate } from '../../domain/dates.ts';
import { AppError } from '../../domain/errors.ts';
import { nameChangeEvidenceSchema } from '../../domain/identity/documents.ts';
import { duplicateNameKey, normaliseName } from '../../domain/identity/names.ts';
import type { Person } from '../../domain/identity/person.ts';
import { isNationalId } from '../../domain/identity/user-id.ts';
import { authorize } from '../../domain/policy.ts';
import { optionalText, text } from '../../domain/text.ts';
import type * as people from '../../storage/repositories/people.ts';
import { endRoleProfile } from '../access.ts';
import { appendAudit } from '../audit.ts';
import type { ServiceContext } from '../context.ts';
import { personTarget, profileTarget } from '../targets.ts';
import { inputSchema, parseInput } from '../validation.ts';
import { lockPerson, raAction, requireUserId } from './common.ts';

export const reasonSchema = z.object({ reason: text(1000) });

function requireRoleId(personRoleId: string): string {
  if (!isNationalId(personRoleId)) throw new AppError('role_profile.not_found');
  return personRoleId;
}

/** Ends a position now (access.endRoleProfile), with the reason, refusals audited. */
export async function endPosition(ctx: ServiceContext, personRoleId: string, input: unknown): Promise<RoleProfile> {
  return raAction(ctx, 'role_profile.end', { targetType: 'role_profile', targetId: personRoleId }, async () => {
    requireRoleId(personRoleId);
    const { reason } = parseInput(reasonSchema, input);
    return endRoleProfile(ctx, personRoleId, reason);
  });
}

const calendarDate = z.string().trim().refine(isCalendarDate, { message: 'must be a real date written YYYY-MM-DD' });
export const datesSchema = z.object({
  startDate: calendarDate.optional(),
  /** null: no end date (open-ended); absent: unchanged. */
  endDate: calendarDate.nullable().optional(),
  reason: text(1000),
});
inputSchema(datesSchema, (i) =>
  i.path[0] === 'startDate' || i.path[0] === 'endDate' ? 'role_profile.invalid_dates' : 'request.invalid',
);

/**
 * Changes a position's dates: extend or shorten a temporary member of staff (bank, agency, locum, student), or move the
 * start of one not started yet. An end date in the past is refused — that is ending the position.
 */
export async function changeRoleDates(ctx: ServiceContext, personRoleId: string, input: unknown): Promise<RoleProfile> {
  const about = { targetType: 'role_profile', targetId: personRoleId };
  return raAction(ctx, 'role_profile.change_dates', about, async () => {
    requireRoleId(personRoleId);
    const change = parseInput(datesSchema, input);
    return ctx.transaction(async (tx) => {
      const peek = await tx.roleProfiles.profileById(personRoleId);
      if (!peek) throw new AppError('role_profile.not_found');
      await lockPerson(tx, peek.userId);
      const before = (await tx.roleProfiles.profileById(personRoleId, true))!;
      const today = ukDate(ctx.clock.now());
      const startDate = change.startDate ?? before.startDate;
      const endDate = change.endDate === undefined ? before.endDate : change.endDate;
      // More time than it had (an earlier start, a later end or none): that gives access, as assigning it would.
      const extendsAccess =
        startDate < before.startDate || (before.endDate !== null && (endDate === null || endDate > before.endDate));
      const target = await profileTarget(tx, ctx.clock, before, false);
      authorize(ctx.actor, 'role_profile:change_dates', target);
      // A profile past its end date has ended, whatever its status says: moving the end date on would revive an
      // appointment nobody approved again (a new request or assignment gives access anew).
      if (before.status === 'ended' || (before.endDate !== null && before.endDate < today)) {
        throw new AppError('role_profile.already_ended');
      }
      if (extendsAccess)
        authorize(ctx.actor, 'role_profile:change_dates', await profileTarget(tx, ctx.clock, before, true));
      const problems: { field: string; message: string }[] = [];
      if (startDate !== before.startDate && before.startDate <= today) {
        problems.push({ field: 'startDate', message: 'the position has started: its start date cannot change' });
      }
      if (endDate != null && endDate < startDate) {
        problems.push({ field: 'endDate', message: 'the end date must be on or after the start date' });
      }
      if (endDate != null && endDate < today && endDate !== before.endDate) {
        problems.push({ field: 'endDate', message: 'is in the past: end the position instead' });
      }
      if (problems.length > 0) throw new AppError('role_profile.invalid_dates', { problems });
      await tx.roleProfiles.changeRoleProfileDates(personRoleId, { startDate, endDate }, ctx.clock.now());
      const after: RoleProfile = { ...before, startDate, endDate };
      await appendAudit(tx, ctx, {
        action: 'role_profile.dates_changed',
        targetType: 'person',
        targetId: before.userId,
        before,
        after,
        reason: change.reason,
      });
      return after;
    });
  });
}

export const nameSchema = z
  .object({
    title: optionalText(35).optional(),
    givenName: text(100).optional(),
    middleNames: optionalText(200).optional(),
    familyName: text(100).optional(),
    preferredName: optionalText(200).optional(),
    evidence: nameChangeEvidenceSchema,
    reason: optionalText(1000),
  })
  .refine(
    (v) => [v.title, v.givenName, v.middleNames, v.familyName, v.preferredName].some((field) => field !== undefined),
    { message: 'give at least one new name', path: ['familyName'] },
  );

type NameFields = people.NameFields;

function namesOf(p: Person): NameFields {
  return {
    title: p.title,
    givenName: p.givenName,
    middleNames: p.middleNames,
    familyName: p.familyName,
    preferredName: p.preferredName,
  };
}

/**
 * Changes a person's name. The user ID stays (DOMAIN §2); the evidence seen (its type and the last characters of its
 * number) is kept in the name history, and the audit trail records the names before and after.
 */
export async function changeName(ctx: ServiceContext, userId: string, input: unknown): Promise<Person> {
  return raAction(ctx, 'person.change_name', { targetType: 'person', targetId: userId }, async () => {
    requireUserId(userId);
    const change = parseInput(nameSchema, input);
    return ctx.transaction(async (tx) => {
      const person = await lockPerson(tx, userId);
      authorize(ctx.actor, 'person:change_name', await personTarget(tx, ctx.clock, userId));
      if (person.status === 'deceased') {
        throw new AppError('person.invalid_status_change', {
          from: 'deceased',
          reason: 'the person is recorded as deceased',
        });
      }
      const before = namesOf(person);
      const after: NameFields = {
        title: change.title === undefined ? before.title : change.title,
        givenName: change.givenName ?? before.givenName,
        middleNames: change.middleNames === undefined ? before.middleNames : change.middleNames,
        familyName: change.familyName ?? before.familyName,
        preferredName: change.preferredName === undefined ? before.preferredName : change.preferredName,
      };
      if (JSON.stringify(after) === JSON.stringify(before)) {
        throw new AppError('request.invalid', { problems: [{ field: '(body)', message: 'the name is unchanged' }] });
      }
      const givenKey = duplicateNameKey(after.familyName, after.givenName).split('|')[1] ?? '';
      const now = ctx.clock.now();
      await tx.people.updateNames(userId, after, { familyKey: normaliseName(after.familyName), givenKey }, now);
      await tx.people.insertNameChange(
        {
          userId,
          before,
          after,
          evidenceType: change.evidence.type,
          evidenceLastChars: change.evidence.lastChars,
          changedBy: ctx.actor.id,
          reason: change.reason,
        },
        now,
      );
      await appendAudit(tx, ctx, {
        action: 'person.name_changed',
        targetType: 'person',
        targetId: userId,
        before,
        after: { ...after, evidence: { type: change.evidence.type } },
        reason: change.reason,
      });
      return (await tx.people.findPersonByUserId(userId))!;
    });
  });
}
