import { ukDate } from '../domain/dates.ts';
import { AppError } from '../domain/errors.ts';
import type { RaManagerLine } from '../storage/repositories/role-profiles.ts';
import { assignRoleProfile, createPosition } from './access.ts';
import type { ServiceContext } from './context.ts';
import { createEnrolmentInvitation } from './enrolment.ts';
import { findOrganisation, saveOrganisation } from './organisations.ts';
import { registerPerson } from './people.ts';

/**
 * First administrator of a fresh install (DOMAIN §5: an RA Manager holds R5080). Creates the organisation if needed, an
 * "Registration Authority Manager" position there, the person (identity verified by whoever runs the command on the
 * server, so IAL3), their role profile from today, and a one-time enrolment link for a security key or Windows Hello
 * at AAL3. Refused once any RA Manager exists: after that, RA Managers appoint each other — there is no back door.
 */
export interface BootstrapInput {
  odsCode: string;
  orgName: string;
  orgType?: string;
  givenName: string;
  familyName: string;
  dateOfBirth: string;
  email: string;
  niNumber?: string;
}

export function raManagerExists(ctx: ServiceContext): Promise<boolean> {
  return ctx.repos.roleProfiles.raManagerExists(ukDate(ctx.clock.now()));
}

export type { RaManagerLine };

/** Who the RA Managers are (at most 20), so that a refused bootstrap can say whom to ask. */
export function raManagers(ctx: ServiceContext): Promise<RaManagerLine[]> {
  return ctx.repos.roleProfiles.raManagers(ukDate(ctx.clock.now()));
}

export async function bootstrapRaManager(
  ctx: ServiceContext,
  input: BootstrapInput,
  publicUrl: string,
): Promise<{ userId: string; link: string; expiresInHours: number }> {
  if (await raManagerExists(ctx)) {
    throw new AppError('bootstrap.ra_manager_exists', { raManagers: await raManagers(ctx) });
  }
  if (!(await findOrganisation(ctx.repos, input.odsCode.trim().toUpperCase()))) {
    await saveOrganisation(ctx, { odsCode: input.odsCode, name: input.orgName, type: input.orgType ?? 'other' });
  }
  const org = input.odsCode.trim().toUpperCase();
  const position = await createPosition(ctx, org, {
    name: 'Registration Authority Manager',
    assignable: false,
    jobRoles: ['R5080'],
    activities: ['B0274', 'B0272', 'B0002', 'B0267', 'B1300'],
  });
  const person = await registerPerson(ctx, {
    givenName: input.givenName,
    familyName: input.familyName,
    dateOfBirth: input.dateOfBirth,
    email: input.email,
    niNumber: input.niNumber ?? null,
    identityAssuranceLevel: 3,
  });
  await ctx.repos.people.markEmailVerified(person.userId, ctx.clock.now());
  await assignRoleProfile(ctx, {
    userId: person.userId,
    positionId: position.positionId,
    startDate: ukDate(ctx.clock.now()),
  });
  const token = await createEnrolmentInvitation(ctx, { userId: person.userId, maxAal: 3, ttlHours: 24 });
  return { userId: person.userId, link: `${publicUrl}/enrol/invite?t=${token}`, expiresInHours: 24 };
}
