/**
 * Apply for Care ID (DOMAIN §5.2): a person applies online with their details, an image of their photo ID and a
 * selfie; an RA of the organisation they are joining checks them (on a video call) and verifies — the person is created,
 * or linked to their existing record, at identity assurance level 2 — or rejects with a reason. Once decided, the photo
 * ID image is deleted: OpenCIS keeps which documents were seen, never scans of them (DOMAIN §5.1).
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { AppError } from '../../domain/errors.ts';
import { identityDocumentsSchema } from '../../domain/identity/documents.ts';
import type { Person } from '../../domain/identity/person.ts';
import { checkPhoto, photoBytesFromBase64 } from '../../domain/identity/photo.ts';
import { isOdsCode, normaliseOdsCode } from '../../domain/organisations/organisation.ts';
import { authorize, organisationsWhere } from '../../domain/policy.ts';
import { optionalText, text } from '../../domain/text.ts';
import type { Applicant, Application, ApplicationStatus } from '../../storage/repositories/applications.ts';
import type { Repositories } from '../../storage/repositories/index.ts';
import { type AttemptPolicy, assertNotLocked, recordFailure } from '../attempts.ts';
import { appendAudit } from '../audit.ts';
import type { ServiceContext } from '../context.ts';
import { validateNewPerson } from '../people.ts';
import { parseInput } from '../validation.ts';
import { insertNewPerson, raAction, storePhoto } from './common.ts';
import {
  type IdentityCheck,
  imageInputSchema,
  niConflictAsDuplicate,
  recordIdentityCheck,
  requireAcceptableDocuments,
  resolutionFields,
  resolveDuplicates,
} from './identity.ts';

export type { Applicant, Application, ApplicationStatus };

/** Submissions per client IP: a handful an hour is plenty for a ward's shared connection, and stops bulk abuse. */
export const applicationAttemptPolicy: AttemptPolicy = { limit: 10, windowMs: 60 * 60_000, lockMs: 60 * 60_000 };

export const submissionSchema = z.object({
  applicant: z.unknown(),
  odsCode: z.string().max(10),
  selfie: imageInputSchema,
  photoIdImage: imageInputSchema,
});

export const verifySchema = z.object({
  videoCheckedAt: z.iso.datetime({ offset: true }),
  notes: optionalText(1000),
  documents: identityDocumentsSchema,
  ...resolutionFields,
});

export const rejectSchema = z.object({ reason: text(1000) });
export const applicationListSchema = z.object({
  status: z.enum(['submitted', 'verified', 'rejected']).default('submitted'),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

function requireApplicationId(id: string): string {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)) {
    throw new AppError('application.not_found');
  }
  return id;
}

/**
 * Public, no sign-in: stores an application. Every submission counts against the client IP's counter first, valid or
 * not, so the endpoint cannot be used to fill the database. Answers only with the application's ID and status.
 */
export async function submitApplication(
  ctx: ServiceContext,
  input: unknown,
  client: { ip: string | null },
): Promise<{ applicationId: string; status: 'submitted' }> {
  const now = ctx.clock.now();
  const keys = client.ip ? [{ key: `apply:ip:${client.ip}`, policy: applicationAttemptPolicy }] : [];
  await assertNotLocked(ctx.repos, keys, now);
  await recordFailure(ctx.repos, keys, now);
  const form = parseInput(submissionSchema, input);
  const { identityAssuranceLevel: _l, photoRef: _p, ...applicant } = validateNewPerson(ctx, form.applicant);
  if (!applicant.email) {
    throw new AppError('request.invalid', {
      problems: [{ field: 'applicant.email', message: 'give an email address so that the RA can contact you' }],
    });
  }
  const odsCode = normaliseOdsCode(form.odsCode);
  if (!isOdsCode(odsCode)) throw new AppError('organisation.invalid_ods_code');
  const selfie = checkPhoto(photoBytesFromBase64(form.selfie.data));
  const document = checkPhoto(photoBytesFromBase64(form.photoIdImage.data));
  return ctx.transaction(async (tx) => {
    if (!(await tx.organisations.findOrganisation(odsCode))) throw new AppError('organisation.not_found');
    const applicationId = randomUUID();
    const selfieId = await storePhoto(tx, ctx, selfie, 'selfie', null);
    const documentId = await storePhoto(tx, ctx, document, 'document', null);
    await tx.applications.insertApplication(
      { applicationId, odsCode, applicant, selfieId, documentIds: [documentId] },
      now,
    );
    await appendAudit(tx, ctx, {
      action: 'application.submitted',
      targetType: 'application',
      targetId: applicationId,
      before: null,
      after: { odsCode, selfiePhotoId: selfieId, documentPhotoIds: [documentId] },
    });
    return { applicationId, status: 'submitted' as const };
  });
}

/** Applications the actor may review (their organisations only), oldest first. */
export async function listApplications(ctx: ServiceContext, query: unknown = {}): Promise<Application[]> {
  return raAction(ctx, 'application.list', { targetType: 'application', targetId: null }, async () => {
    const q = parseInput(applicationListSchema, query);
    const orgs = organisationsWhere(ctx.actor, 'application:review');
    if (orgs !== 'all' && orgs.length === 0) throw new AppError('auth.forbidden', { statement: 'application:review' });
    return ctx.repos.applications.listApplications({
      status: q.status,
      orgs: orgs === 'all' ? null : orgs,
      limit: q.limit,
    });
  });
}

export async function getApplication(ctx: ServiceContext, applicationId: string): Promise<Application> {
  return raAction(ctx, 'application.read', { targetType: 'application', targetId: applicationId }, async () => {
    requireApplicationId(applicationId);
    const app = await ctx.repos.applications.findApplication(applicationId);
    if (!app) throw new AppError('application.not_found');
    authorize(ctx.actor, 'application:review', { kind: 'organisation', odsCode: app.odsCode });
    return app;
  });
}

/** One of an application's images (the selfie, or the photo ID until the application is decided). */
export async function applicationImage(
  ctx: ServiceContext,
  applicationId: string,
  photoId: string,
): Promise<{ mediaType: 'image/jpeg' | 'image/png'; bytes: Buffer }> {
  const app = await getApplication(ctx, applicationId);
  if (photoId !== app.selfiePhotoId && !app.documentPhotoIds.includes(photoId)) throw new AppError('photo.not_found');
  const photo = await ctx.repos.photos.photoById(photoId);
  if (!photo) throw new AppError('photo.not_found');
  return photo;
}

async function lockSubmitted(tx: Repositories, ctx: ServiceContext, applicationId: string): Promise<Application> {
  const app = await tx.applications.findApplication(applicationId, true);
  if (!app) throw new AppError('application.not_found');
  authorize(ctx.actor, 'application:review', { kind: 'organisation', odsCode: app.odsCode });
  if (app.status !== 'submitted') {
    throw new AppError('application.already_decided', { status: app.status, reviewedBy: app.reviewedBy });
  }
  return app;
}

/** Deletes the images of a decided application that are not the person's photo. */
async function deleteReviewImages(tx: Repositories, app: Application, keep: string | null): Promise<void> {
  const ids = [...app.documentPhotoIds, ...(app.selfiePhotoId ? [app.selfiePhotoId] : [])].filter((id) => id !== keep);
  await tx.applications.keepOnlyImage(app.applicationId, keep);
  if (ids.length > 0) await tx.photos.deletePhotos(ids);
}

/**
 * The RA has seen the applicant and their documents on a video call: the applicant becomes a person at identity
 * assurance level 2 (or the check is attached to the existing record the RA chose), with the selfie as their photo.
 */
export async function verifyApplication(
  ctx: ServiceContext,
  applicationId: string,
  input: unknown,
): Promise<{ application: Application; person: Person; check: IdentityCheck; created: boolean }> {
  const about = { targetType: 'application', targetId: applicationId };
  return raAction(ctx, 'application.verify', about, async () => {
    requireApplicationId(applicationId);
    const form = parseInput(verifySchema, input);
    const videoCheckedAt = new Date(form.videoCheckedAt);
    if (videoCheckedAt.getTime() > ctx.clock.now().getTime()) {
      throw new AppError('request.invalid', {
        problems: [{ field: 'videoCheckedAt', message: 'must not be in the future' }],
      });
    }
    requireAcceptableDocuments(ctx, form.documents);
    try {
      return await ctx.transaction(async (tx) => {
        const app = await lockSubmitted(tx, ctx, applicationId);
        const details = validateNewPerson(ctx, app.applicant);
        const resolved = await resolveDuplicates(tx, ctx, details, form);
        const check = {
          method: 'remote' as const,
          place: null,
          checkedAt: videoCheckedAt,
          documents: form.documents,
          notes: form.notes,
          applicationId,
        };
        let res: { person: Person; check: IdentityCheck };
        let created = false;
        if (resolved.existing) {
          // An existing photo (from a face-to-face check) is kept; the selfie becomes the photo only if there is none.
          const photoRef = resolved.existing.photoRef ? null : app.selfiePhotoId;
          res = await recordIdentityCheck(tx, ctx, resolved.existing, {
            ...check,
            photoRef,
            duplicateResolution: `existing:${resolved.existing.userId}`,
          });
        } else {
          const person = await insertNewPerson(tx, ctx, details, 1, null, resolved.confirmed);
          res = await recordIdentityCheck(tx, ctx, person, {
            ...check,
            photoRef: app.selfiePhotoId,
            duplicateResolution: 'new_person',
          });
          created = true;
        }
        const keep = res.check.photoRef;
        await deleteReviewImages(tx, app, keep);
        const now = ctx.clock.now();
        const verified = await tx.applications.markVerified(
          applicationId,
          { reviewedBy: ctx.actor.id, userId: res.person.userId },
          now,
        );
        await appendAudit(tx, ctx, {
          action: 'application.verified',
          targetType: 'application',
          targetId: applicationId,
          before: { status: 'submitted' },
          after: { status: 'verified', userId: res.person.userId, checkId: res.check.checkId, created },
        });
        return { application: verified, ...res, created };
      });
    } catch (err) {
      throw niConflictAsDuplicate(err);
    }
  });
}

/** The RA rejects an application, with a reason the applicant can be told. Its images are deleted. */
export async function rejectApplication(
  ctx: ServiceContext,
  applicationId: string,
  input: unknown,
): Promise<Application> {
  const about = { targetType: 'application', targetId: applicationId };
  return raAction(ctx, 'application.reject', about, async () => {
    requireApplicationId(applicationId);
    const { reason } = parseInput(rejectSchema, input);
    return ctx.transaction(async (tx) => {
      const app = await lockSubmitted(tx, ctx, applicationId);
      await deleteReviewImages(tx, app, null);
      const rejected = await tx.applications.markRejected(
        applicationId,
        { reviewedBy: ctx.actor.id, reason },
        ctx.clock.now(),
      );
      await appendAudit(tx, ctx, {
        action: 'application.rejected',
        targetType: 'application',
        targetId: applicationId,
        before: { status: 'submitted' },
        after: { status: 'rejected' },
        reason,
      });
      return rejected;
    });
  });
}
