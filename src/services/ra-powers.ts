import { type PersonActor, type RaPower, raRolesOfPower } from '../domain/policy.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { effectiveRoles } from './access.ts';
import { subtreeOf } from './organisations.ts';

/**
 * A signed-in person as an actor, with the RA powers their role profiles give them today: for each effective profile
 * that gives any RA role (DOMAIN §5: R5080, or B0272, B0274, B1300, B0002, B0267, B0264 — inclusions and the job
 * roles' baseline expanded), its job roles, activities and the subtree of its organisation. Computed per request, so
 * an ended profile or a suspended person stops granting at once.
 */
export async function personActorWithPowers(repos: Repositories, userId: string, at: Date): Promise<PersonActor> {
  const roles = await effectiveRoles(repos, userId, at);
  const powers: RaPower[] = [];
  for (const role of roles) {
    const jobRoles = role.jobRoles.map((j) => j.code);
    const activities = role.effectiveActivities;
    if (raRolesOfPower({ jobRoles, activities }).length === 0) continue;
    powers.push({ jobRoles, activities, odsCode: role.odsCode, odsCodes: await subtreeOf(repos, role.odsCode) });
  }
  return { kind: 'person', id: userId, userId, powers };
}
