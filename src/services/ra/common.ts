/**
 * What the RA services share: auditing refusals, and the steps that must run inside an RA action's own transaction
 * (register a person, give a position, store a photo).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Position, RoleProfile } from '../../domain/access/role-profile.ts';
import { AppError } from '../../domain/errors.ts';
import { duplicateNameKey, normaliseName } from '../../domain/identity/names.ts';
import type { IdentityAssuranceLevel, NewPerson, Person } from '../../domain/identity/person.ts';
import type { CheckedPhoto } from '../../domain/identity/photo.ts';
import { isNationalId, nationalIdFromSequence } from '../../domain/identity/user-id.ts';
import type { Repositories } from '../../storage/repositories/index.ts';
import { appendAudit } from '../audit.ts';
import type { ServiceContext } from '../context.ts';
import { auditRefusal, isRefusal, wasAudited } from '../refusals.ts';

/** What an action is about, for the audit record of a refusal; filled in as the action learns it. */
export interface About {
  targetType: string;
  targetId: string | null;
}

/**
 * Runs one RA action. A refusal is written to the audit trail — who tried what, on whom, and why it was refused — by
 * the one refusal path (services/refusals.ts), after the action's transaction has rolled back, then thrown on.
 * DOMAIN §5: every RA action is audited, refused ones included.
 */
export async function raAction<T>(
  ctx: ServiceContext,
  action: string,
  about: About,
  fn: (about: About) => Promise<T>,
): Promise<T> {
  try {
    return await fn(about);
  } catch (err) {
    if (isRefusal(err) && !wasAudited(err)) {
      await auditRefusal(
        ctx,
        {
          action: 'ra.refused',
          targetType: about.targetType,
          targetId: about.targetId,
          after: { action, code: err.code, details: err.details ?? null },
          reason: err.code,
        },
        { error: err },
      );
    }
    throw err;
  }
}

export function requireUserId(value: unknown): string {
  if (typeof value !== 'string' || !isNationalId(value)) throw new AppError('person.invalid_user_id');
  return value;
}

export async function lockPerson(tx: Repositories, userId: string): Promise<Person> {
  const person = await tx.people.findPersonByUserId(userId, true);
  if (!person) throw new AppError('person.not_found');
  return person;
}

export async function storePhoto(
  tx: Repositories,
  ctx: Pick<ServiceContext, 'clock'>,
  photo: CheckedPhoto,
  purpose: 'portrait' | 'selfie' | 'document',
  userId: string | null,
): Promise<string> {
  const photoId = randomUUID();
  await tx.photos.insertPhoto({ photoId, userId, purpose, photo }, ctx.clock.now());
  return photoId;
}

export function identityKeys(p: Pick<NewPerson, 'niNumber' | 'familyName' | 'givenName' | 'dateOfBirth'>) {
  const [familyKey, givenKey] = duplicateNameKey(p.familyName, p.givenName).split('|') as [string, string];
  return { niNumber: p.niNumber, familyKey, givenKey, dateOfBirth: p.dateOfBirth };
}

/**
 * Takes the same transaction-scoped advisory locks as people.registerPerson, so a registration here and one there of
 * the same person serialise, and the duplicate check that follows sees the other's row.
 */
export async function lockIdentity(tx: Repositories, keys: ReturnType<typeof identityKeys>): Promise<void> {
  const lock = async (key: string) => {
    const digest = createHash('sha256').update(key).digest();
    await tx.people.lockForTransaction(digest.readBigInt64BE(0).toString());
  };
  await lock(`${keys.familyKey}|${keys.givenKey}|${keys.dateOfBirth}`);
  if (keys.niNumber) await lock(`ni|${keys.niNumber}`);
}

/** Inserts a new person (after the caller's duplicate check, under lockIdentity) and audits it. */
export async function insertNewPerson(
  tx: Repositories,
  ctx: ServiceContext,
  p: NewPerson,
  level: IdentityAssuranceLevel,
  photoRef: string | null,
  confirmedDifferentFrom: readonly string[],
): Promise<Person> {
  const keys = identityKeys(p);
  const userId = nationalIdFromSequence(await tx.people.nextNationalIdSequence('user_id_seq'));
  const person = await tx.people.insertPerson({
    ...p,
    identityAssuranceLevel: level,
    photoRef,
    userId,
    status: 'active',
    familyKey: normaliseName(p.familyName),
    givenKey: keys.givenKey,
    at: ctx.clock.now(),
  });
  const { createdAt: _c, updatedAt: _u, ...view } = person;
  await appendAudit(tx, ctx, {
    action: 'person.registered',
    targetType: 'person',
    targetId: userId,
    before: null,
    after: view,
    reason: confirmedDifferentFrom.length > 0 ? `confirmed different from ${confirmedDifferentFrom.join(', ')}` : null,
  });
  return person;
}

/**
 * Gives a person a position inside the caller's transaction (the same steps as access.assignRoleProfile), creating
 * their person-organisation link on first use. The caller has locked the person and checked the policy.
 */
export async function insertRoleProfile(
  tx: Repositories,
  ctx: ServiceContext,
  person: Person,
  position: Position,
  dates: { startDate: string; endDate: string | null },
): Promise<RoleProfile> {
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
      startDate: dates.startDate,
      endDate: dates.endDate,
    },
    now,
  );
  const profile: RoleProfile = {
    personRoleId,
    userId: person.userId,
    personOrgId,
    positionId: position.positionId,
    odsCode: position.odsCode,
    startDate: dates.startDate,
    endDate: dates.endDate,
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
}
