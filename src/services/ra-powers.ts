import type { Actor, RaPower } from '../domain/policy.ts';
import type { Queryable } from '../storage/database.ts';
import { effectiveRoles } from './access.ts';
import { subtreeOf } from './organisations.ts';

/**
 * A signed-in person as an actor, with the RA powers their role profiles give them today: for each effective profile,
 * its activities and the subtree of its organisation. Computed per request, so an ended profile stops granting at once.
 */
export async function personActorWithPowers(q: Queryable, userId: string, at: Date): Promise<Actor> {
  const roles = await effectiveRoles(q, userId, at);
  const powers: RaPower[] = [];
  for (const role of roles) {
    if (!role.effectiveActivities.some((a) => a === 'B0274' || a === 'B0267' || a === 'B0264')) continue;
    powers.push({
      jobRoles: role.jobRoles.map((j) => j.code),
      activities: role.effectiveActivities,
      odsCodes: await subtreeOf(q, role.odsCode),
    });
  }
  return { kind: 'person', id: userId, userId, powers };
}
