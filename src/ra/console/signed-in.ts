import { raRolesOf } from '../../domain/policy.ts';
import { type SignedInAs, signedInAs } from '../../http/signed-in.ts';
import { effectiveRoles } from '../../services/access.ts';
import type { Repositories } from '../../storage/repositories/index.ts';
import { roleNames } from './labels.ts';

export type { SignedInAs } from '../../http/signed-in.ts';

/**
 * The console header's "who and as what": the RA's name, and the RA role of their first role profile that gives one,
 * with its organisation ("RA Manager, Demo Teaching Hospitals NHS Trust (RR8)"), plus how many more they hold.
 */
export async function signedInAsRa(repos: Repositories, userId: string, at: Date): Promise<SignedInAs> {
  const who = await signedInAs(repos, userId);
  const acting: string[] = [];
  for (const r of await effectiveRoles(repos, userId, at)) {
    const roles = raRolesOf({
      kind: 'person',
      id: userId,
      userId,
      powers: [{ jobRoles: r.jobRoles.map((j) => j.code), activities: r.effectiveActivities, odsCodes: [] }],
    });
    if (roles.length > 0) acting.push(`${roles.map((x) => roleNames[x]).join(' and ')}, ${r.orgName} (${r.odsCode})`);
  }
  if (acting.length === 0) return who;
  const more = acting.length - 1;
  return { ...who, acting: `${acting[0]}${more > 0 ? ` and ${more} more role profile${more === 1 ? '' : 's'}` : ''}` };
}
