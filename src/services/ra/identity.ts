/**
 * Identity checks (DOMAIN §5.1): register a new person with a face-to-face (or remote) check against the NHS Employers
 * identity check standard, or record a check for someone already registered. The duplicate check is resolved first: the
 * RA either attaches the check to an existing record or confirms, candidate by candidate, that this is someone else.
 */
import { z } from 'zod';
import { ukDate } from '../../domain/dates.ts';
import { AppError } from '../../domain/errors.ts';
import {
  checkIdentityDocuments,
  type IdentityDocument,
  identityDocumentsSchema,
} from '../../domain/identity/documents.ts';
import type { IdentityAssuranceLevel, NewPerson, Person } from '../../domain/identity/person.ts';
import { type CheckedPhoto, checkPhoto, photoBytesFromBase64 } from '../../domain/identity/photo.ts';
import { isNationalId } from '../../domain/identity/user-id.ts';
import { authorize } from '../../domain/policy.ts';
import { optionalText } from '../../domain/text.ts';
import { PG_UNIQUE_VIOLATION, pgConstraint, pgErrorCode } from '../../storage/database.ts';
import type { CheckMethod, IdentityCheck } from '../../storage/repositories/identity-checks.ts';
import type { Repositories } from '../../storage/repositories/index.ts';
import { appendAudit } from '../audit.ts';
import type { ServiceContext } from '../context.ts';
import { validateNewPerson } from '../people.ts';
import { personTarget } from '../targets.ts';
import { parseInput } from '../validation.ts';
import {
  identityKeys,
  insertNewPerson,
  lockIdentity,
  lockPerson,
  raAction,
  requireUserId,
  storePhoto,
} from './common.ts';

export type { CheckMethod, IdentityCheck };

/** base64 of at most 5 MB, plus slack: photo.ts refuses anything larger before decoding. */
export const imageInputSchema = z.object({ data: z.string().min(1).max(7_200_000) });

const duplicateResolutionSchema = z
  .string()
  .refine((v) => v === 'new_person' || (v.startsWith('existing:') && isNationalId(v.slice(9))), {
    message: "must be 'new_person' or 'existing:<user ID>'",
  });

export const resolutionFields = {
  duplicateResolution: duplicateResolutionSchema.optional(),
  /** With 'new_person': every duplicate candidate the RA looked at and found to be someone else. */
  confirmedDifferentFrom: z.array(z.string().refine(isNationalId, 'must be a user ID')).max(20).default([]),
};

const checkFields = {
  method: z.enum(['face_to_face', 'remote']),
  place: optionalText(200),
  documents: identityDocumentsSchema,
  photo: imageInputSchema,
  notes: optionalText(1000),
};

const placeNeeded = (v: { method: CheckMethod; place: string | null }) =>
  v.method !== 'face_to_face' || v.place != null;
const placeMessage = { message: 'say where the face-to-face check took place', path: ['place'] };

export const checkSchema = z.object(checkFields).refine(placeNeeded, placeMessage);
export const registerSchema = z
  .object({ person: z.unknown(), ...checkFields, ...resolutionFields })
  .refine(placeNeeded, placeMessage);

/** The documents must meet the standard on the day of the check. */
export function requireAcceptableDocuments(ctx: Pick<ServiceContext, 'clock'>, documents: IdentityDocument[]): void {
  const problems = checkIdentityDocuments(documents, ukDate(ctx.clock.now()));
  if (problems.length > 0) throw new AppError('identity_check.documents_insufficient', { problems });
}

interface CheckRecord {
  method: CheckMethod;
  place: string | null;
  checkedAt: Date;
  documents: IdentityDocument[];
  photoRef: string | null;
  duplicateResolution: string;
  applicationId: string | null;
  notes: string | null;
}

/**
 * Records a check against a person and raises their identity assurance level to what it gives (never lowers it: a
 * remote check after a face-to-face one leaves level 3). Audited with the documents' types, never their numbers.
 */
export async function recordIdentityCheck(
  tx: Repositories,
  ctx: ServiceContext,
  person: Person,
  c: CheckRecord,
): Promise<{ person: Person; check: IdentityCheck }> {
  const level: 2 | 3 = c.method === 'face_to_face' ? 3 : 2;
  const checkId = await tx.identityChecks.insertIdentityCheck(
    {
      userId: person.userId,
      checkedBy: ctx.actor.id,
      method: c.method,
      place: c.place,
      checkedAt: c.checkedAt,
      documents: c.documents,
      photoRef: c.photoRef,
      resultingLevel: level,
      duplicateResolution: c.duplicateResolution,
      applicationId: c.applicationId,
      notes: c.notes,
    },
    ctx.clock.now(),
  );
  const newLevel = Math.max(person.identityAssuranceLevel, level) as IdentityAssuranceLevel;
  const photoRef = c.photoRef ?? person.photoRef;
  if (newLevel !== person.identityAssuranceLevel || photoRef !== person.photoRef) {
    await tx.people.setAssurance(person.userId, newLevel, photoRef, ctx.clock.now());
  }
  if (c.photoRef) await tx.photos.assignPhoto(c.photoRef, person.userId);
  const check: IdentityCheck = {
    checkId,
    userId: person.userId,
    checkedBy: ctx.actor.id,
    method: c.method,
    place: c.place,
    checkedAt: c.checkedAt.toISOString(),
    documents: c.documents,
    photoRef: c.photoRef,
    resultingLevel: level,
    duplicateResolution: c.duplicateResolution,
    applicationId: c.applicationId,
    notes: c.notes,
  };
  await appendAudit(tx, ctx, {
    action: 'person.identity_verified',
    targetType: 'person',
    targetId: person.userId,
    before: { identityAssuranceLevel: person.identityAssuranceLevel },
    after: {
      identityAssuranceLevel: newLevel,
      checkId: check.checkId,
      method: c.method,
      place: c.place,
      documents: c.documents.map((d) => ({ category: d.category, type: d.type })),
      applicationId: c.applicationId,
    },
  });
  const updated = await tx.people.findPersonByUserId(person.userId);
  return { person: updated!, check };
}

export interface Resolution {
  duplicateResolution?: string | undefined;
  confirmedDifferentFrom: readonly string[];
}

/**
 * Settles the duplicate check for a would-be new person inside the caller's transaction (under the identity locks):
 * returns the existing person to attach the check to, or the candidates confirmed different when a new record may be
 * created. The same NI number is never "someone else": NI numbers are unique.
 */
export async function resolveDuplicates(
  tx: Repositories,
  ctx: ServiceContext,
  p: NewPerson,
  resolution: Resolution,
): Promise<{ existing: Person } | { existing: null; confirmed: string[] }> {
  const keys = identityKeys(p);
  await lockIdentity(tx, keys);
  const wanted = resolution.duplicateResolution;
  if (wanted?.startsWith('existing:')) {
    const userId = wanted.slice(9);
    const existing = await lockPerson(tx, userId);
    authorize(ctx.actor, 'person:verify_identity', await personTarget(tx, ctx.clock, userId));
    if (existing.status === 'deceased') {
      throw new AppError('person.invalid_status_change', {
        from: 'deceased',
        reason: 'the person is recorded as deceased',
      });
    }
    return { existing };
  }
  const candidates = await tx.people.findDuplicateCandidates(keys);
  const sameNi = candidates.filter((c) => p.niNumber && c.niNumber === p.niNumber);
  if (sameNi.length > 0) {
    throw new AppError('person.duplicate', { reason: 'ni_number', candidates: sameNi.map((c) => c.userId) });
  }
  const confirmed = new Set(wanted === 'new_person' ? resolution.confirmedDifferentFrom : []);
  const unresolved = candidates.filter((c) => !confirmed.has(c.userId));
  if (unresolved.length > 0) {
    throw new AppError('identity_check.duplicate_unresolved', { candidates: unresolved.map((c) => c.userId) });
  }
  return { existing: null, confirmed: candidates.map((c) => c.userId) };
}

export function niConflictAsDuplicate(err: unknown): unknown {
  if (pgErrorCode(err) === PG_UNIQUE_VIOLATION && pgConstraint(err) === 'people_ni_number') {
    return new AppError('person.duplicate', { reason: 'ni_number' });
  }
  return err;
}

/**
 * Registers a person with an identity check, in one transaction: duplicate check resolved, photo stored without its
 * metadata, the person created at level 3 (face to face) or 2 (remote) — or the check attached to the existing record
 * the RA chose — and audited.
 */
export async function registerWithIdentityCheck(
  ctx: ServiceContext,
  input: unknown,
): Promise<{ person: Person; check: IdentityCheck; created: boolean }> {
  return raAction(
    ctx,
    'person.register_with_identity_check',
    { targetType: 'person', targetId: null },
    async (about) => {
      const form = parseInput(registerSchema, input);
      const details = validateNewPerson(ctx, form.person);
      requireAcceptableDocuments(ctx, form.documents);
      const photo = checkPhoto(photoBytesFromBase64(form.photo.data));
      if (form.duplicateResolution?.startsWith('existing:')) about.targetId = form.duplicateResolution.slice(9);
      else {
        authorize(ctx.actor, 'person:create', { kind: 'national' });
        authorize(ctx.actor, 'person:verify_identity', { kind: 'national' });
      }
      try {
        return await ctx.transaction(async (tx) => {
          const resolved = await resolveDuplicates(tx, ctx, details, form);
          const photoRef = await storePhoto(tx, ctx, photo, 'portrait', null);
          const check = { ...form, checkedAt: ctx.clock.now(), photoRef, applicationId: null };
          if (resolved.existing) {
            const res = await recordIdentityCheck(tx, ctx, resolved.existing, {
              ...check,
              duplicateResolution: `existing:${resolved.existing.userId}`,
            });
            return { ...res, created: false };
          }
          const created = await insertNewPerson(tx, ctx, details, 1, null, resolved.confirmed);
          about.targetId = created.userId;
          const res = await recordIdentityCheck(tx, ctx, created, { ...check, duplicateResolution: 'new_person' });
          return { ...res, created: true };
        });
      } catch (err) {
        throw niConflictAsDuplicate(err);
      }
    },
  );
}

/** Records an identity check for a person already registered, raising their identity assurance level. */
export async function verifyIdentity(
  ctx: ServiceContext,
  userId: string,
  input: unknown,
): Promise<{ person: Person; check: IdentityCheck }> {
  return raAction(ctx, 'person.verify_identity', { targetType: 'person', targetId: userId }, async () => {
    requireUserId(userId);
    const form = parseInput(checkSchema, input);
    requireAcceptableDocuments(ctx, form.documents);
    const photo: CheckedPhoto = checkPhoto(photoBytesFromBase64(form.photo.data));
    return ctx.transaction(async (tx) => {
      const person = await lockPerson(tx, userId);
      authorize(ctx.actor, 'person:verify_identity', await personTarget(tx, ctx.clock, userId));
      if (person.status === 'deceased') {
        throw new AppError('person.invalid_status_change', {
          from: 'deceased',
          reason: 'the person is recorded as deceased',
        });
      }
      const photoRef = await storePhoto(tx, ctx, photo, 'portrait', userId);
      return recordIdentityCheck(tx, ctx, person, {
        ...form,
        checkedAt: ctx.clock.now(),
        photoRef,
        applicationId: null,
        duplicateResolution: `existing:${userId}`,
      });
    });
  });
}

/** A person's photo (as stored: metadata already stripped), for RA screens and the card. */
export async function personPhoto(
  ctx: ServiceContext,
  userId: string,
): Promise<{ mediaType: 'image/jpeg' | 'image/png'; bytes: Buffer }> {
  return raAction(ctx, 'person.read_photo', { targetType: 'person', targetId: userId }, async () => {
    requireUserId(userId);
    const person = await ctx.repos.people.findPersonByUserId(userId);
    if (!person) throw new AppError('person.not_found');
    authorize(ctx.actor, 'person:read', await personTarget(ctx.repos, ctx.clock, userId));
    if (!person.photoRef) throw new AppError('photo.not_found');
    const photo = await ctx.repos.photos.photoOf(person.photoRef, userId);
    if (!photo) throw new AppError('photo.not_found');
    return photo;
  });
}

/** The identity checks recorded for a person, newest first. */
export async function identityChecksOf(ctx: ServiceContext, userId: string): Promise<IdentityCheck[]> {
  return raAction(ctx, 'person.read_identity_checks', { targetType: 'person', targetId: userId }, async () => {
    requireUserId(userId);
    authorize(ctx.actor, 'person:read', await personTarget(ctx.repos, ctx.clock, userId));
    return ctx.repos.identityChecks.identityChecksOf(userId);
  });
}
