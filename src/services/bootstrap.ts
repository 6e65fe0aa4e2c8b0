import { ukDate } from '../domain/dates.ts';
import { AppError } from '../domain/errors.ts';
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

export async function raManagerExists(ctx: ServiceContext): Promise<boolean> {
  const { rows } = await ctx.db.query(
    `SELECT 1 FROM role_profiles rp JOIN position_job_roles pj ON pj.position_id = rp.position_id
     WHERE pj.job_role_code = 'R5080' AND rp.status = 'active' AND (rp.end_date IS NULL OR rp.end_date >= $1) LIMIT 1`,
    [ukDate(ctx.clock.now())],
  );
  return rows.length > 0;
}

export interface RaManagerLine {
  userId: string;
  name: string;
  odsCode: string;
  orgName: string;
}

/** Who the RA Managers are (at most 20), so that a refused bootstrap can say whom to ask. */
export async function raManagers(ctx: ServiceContext): Promise<RaManagerLine[]> {
  const { rows } = await ctx.db.query<{ user_id: string; name: string; ods_code: string; org_name: string }>(
    `SELECT DISTINCT p.user_id, p.given_name || ' ' || p.family_name AS name, o.ods_code, o.name AS org_name
     FROM role_profiles rp JOIN position_job_roles pj ON pj.position_id = rp.position_id
       JOIN people p ON p.user_id = rp.user_id JOIN positions pos ON pos.position_id = rp.position_id
       JOIN organisations o ON o.ods_code = pos.ods_code
     WHERE pj.job_role_code = 'R5080' AND rp.status = 'active' AND p.status = 'active'
       AND rp.start_date <= $1 AND (rp.end_date IS NULL OR rp.end_date >= $1)
     ORDER BY o.ods_code, p.user_id LIMIT 20`,
    [ukDate(ctx.clock.now())],
  );
  return rows.map((r) => ({ userId: r.user_id, name: r.name, odsCode: r.ods_code, orgName: r.org_name }));
}

export async function bootstrapRaManager(
  ctx: ServiceContext,
  input: BootstrapInput,
  publicUrl: string,
): Promise<{ userId: string; link: string; expiresInHours: number }> {
  if (await raManagerExists(ctx)) {
    throw new AppError('bootstrap.ra_manager_exists', { raManagers: await raManagers(ctx) });
  }
  if (!(await findOrganisation(ctx.db, input.odsCode.trim().toUpperCase()))) {
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
  await ctx.db.query('UPDATE people SET email_verified_at = $2 WHERE user_id = $1', [person.userId, ctx.clock.now()]);
  await assignRoleProfile(ctx, {
    userId: person.userId,
    positionId: position.positionId,
    startDate: ukDate(ctx.clock.now()),
  });
  const token = await createEnrolmentInvitation(ctx, { userId: person.userId, maxAal: 3, ttlHours: 24 });
  return { userId: person.userId, link: `${publicUrl}/enrol/invite?t=${token}`, expiresInHours: 24 };
}
