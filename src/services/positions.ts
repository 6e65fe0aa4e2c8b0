/**
 * Changing a position and listing an organisation's positions (the REST API, issue 18; creating one is
 * services/access.ts createPosition). Changing a position changes the access of everyone who holds it: the policy
 * decides on the change as a whole (`position_change`: what it appointed, what it will appoint, who holds it), so
 * nobody changes a position they hold, and making a position appoint RA staff or an RA Manager needs that power.
 */
import { z } from 'zod';
import type { Position } from '../domain/access/role-profile.ts';
import { ukDate } from '../domain/dates.ts';
import { AppError } from '../domain/errors.ts';
import { authorize } from '../domain/policy.ts';
import { text } from '../domain/text.ts';
import { appendAudit } from './audit.ts';
import { unknownCodes } from './catalogue.ts';
import type { ServiceContext } from './context.ts';
import { getOrganisation } from './organisations.ts';
import { parseInput } from './validation.ts';

/** What a change may set; what it leaves out stays as it is. */
export const positionChangeSchema = z
  .object({
    name: text(200).optional(),
    assignable: z.boolean().optional(),
    jobRoles: z
      .array(z.string().regex(/^R[0-9]{4}$/, 'job role codes are R followed by 4 digits'))
      .min(1)
      .max(50)
      .optional(),
    activities: z
      .array(z.string().regex(/^B[0-9]{4}$/, 'activity codes are B followed by 4 digits'))
      .max(500)
      .optional(),
  })
  .strict()
  .refine((c) => Object.values(c).some((v) => v !== undefined), { message: 'give at least one thing to change' });

const POSITION_ID = /^[0-9]{1,18}$/;
const sortedSet = (codes: readonly string[]) => [...new Set(codes)].sort();

/** Changes a position's name, codes or whether sponsors may give it directly (`assignable`). */
export async function updatePosition(ctx: ServiceContext, positionId: string, input: unknown): Promise<Position> {
  if (!POSITION_ID.test(positionId)) throw new AppError('position.not_found');
  const change = parseInput(positionChangeSchema, input);
  return ctx.transaction(async (tx) => {
    if (!(await tx.hierarchy.lockPosition(positionId))) throw new AppError('position.not_found');
    const before = (await tx.positions.findPosition(positionId))!;
    const after: Position = {
      ...before,
      name: change.name ?? before.name,
      assignable: change.assignable ?? before.assignable,
      jobRoles: change.jobRoles ? sortedSet(change.jobRoles) : before.jobRoles,
      activities: change.activities ? sortedSet(change.activities) : before.activities,
    };
    authorize(ctx.actor, 'position:update', {
      kind: 'position_change',
      before: await tx.accessFacts.positionFacts(before),
      after: await tx.accessFacts.positionFacts(after),
      holders: await tx.hierarchy.positionHolders(positionId, ukDate(ctx.clock.now())),
    });
    const unknown = [
      ...(await unknownCodes(tx, 'rbac_job_roles', after.jobRoles)),
      ...(await unknownCodes(tx, 'rbac_activities', after.activities)),
    ];
    if (unknown.length > 0) throw new AppError('rbac.unknown_code', { codes: unknown });
    const same =
      after.name === before.name &&
      after.assignable === before.assignable &&
      after.jobRoles.join() === before.jobRoles.join() &&
      after.activities.join() === before.activities.join();
    if (same) return before;
    await tx.hierarchy.writePosition(positionId, after, ctx.clock.now());
    await appendAudit(tx, ctx, {
      action: 'position.updated',
      targetType: 'position',
      targetId: positionId,
      before,
      after,
    });
    return after;
  });
}

/** An organisation's positions, for whoever may read the organisation (as the console's organisation page). */
export async function listPositions(ctx: ServiceContext, odsCode: string): Promise<Position[]> {
  const org = await getOrganisation(ctx, odsCode);
  return ctx.repos.positions.positionsOf(org.odsCode);
}
