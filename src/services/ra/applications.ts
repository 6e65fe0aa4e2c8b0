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
import type { NewPerson, Person } from '../../domain/identity/person.ts';
import { checkPhoto, photoBytesFromBase64 } from '../../domain/identity/photo.ts';
import { isOdsCode, normaliseOdsCode } from '../../domain/organisations/organisation.ts';
import { authorize, organisationsWhere } from '../../domain/policy.ts';
import { optionalText, text } from '../../domain/text.ts';
import type { Queryable } from '../../storage/database.ts';
import { type AttemptPolicy, assertNotLocked, recordFailure } from '../attempts.ts';
import { appendAudit } from '../audit.ts';
import type { ServiceContext } from '../context.ts';
import { findOrganisation } from '../organisations.ts';
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

export type ApplicationStatus = 'submitted' | 'verified' | 'rejected';

/** The applicant's details as they gave them: a person record's fields, without any assurance level or photo. */
export type Applicant = Omit<NewPerson, 'identityAssuranceLevel' | 'photoRef'>;

export interface Application {
  applicationId: string;
  status: ApplicationStatus;
  odsCode: string;
  applicant: Applicant;
  selfiePhotoId: string | null;
  documentPhotoIds: string[];
  submittedAt: string;
  reviewedBy: string | null;
  reviewedAt: string | null;
  reason: string | null;
  userId: string | null;
}

/** Submissions per client IP: a handful an hour is plenty for a ward's shared connection, and stops bulk abuse. */
export const applicationAttemptPolicy: AttemptPolicy = { limit: 10, windowMs: 60 * 60_000, lockMs: 60 * 60_000 };

const submissionSchema = z.object({
  applicant: z.unknown(),
  odsCode: z.string().max(10),
  selfie: imageInputSchema,
  photoIdImage: imageInputSchema,
});

const verifySchema = z.object({
  videoCheckedAt: z.iso.datetime({ offset: true }),
  notes: optionalText(1000),
  documents: identityDocumentsSchema,
  ...resolutionFields,
});

const rejectSchema = z.object({ reason: text(1000) });

interface ApplicationRow {
  application_id: string;
  status: ApplicationStatus;
  ods_code: string;
  applicant: Applicant | string;
  photo_id: string | null;
  document_photo_ids: string[];
  submitted_at: Date;
  reviewed_by: string | null;
  reviewed_at: Date | null;
  reason: string | null;
  user_id: string | null;
}

function fromRow(r: ApplicationRow): Application {
  return {
    applicationId: r.application_id,
    status: r.status,
    odsCode: r.ods_code,
    applicant: typeof r.applicant === 'string' ? (JSON.parse(r.applicant) as Applicant) : r.applicant,
    selfiePhotoId: r.photo_id,
    documentPhotoIds: r.document_photo_ids,
    submittedAt: new Date(r.submitted_at).toISOString(),
    reviewedBy: r.reviewed_by,
    reviewedAt: r.reviewed_at ? new Date(r.reviewed_at).toISOString() : null,
    reason: r.reason,
    userId: r.user_id,
  };
}

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
  await assertNotLocked(ctx.db, keys, now);
  await recordFailure(ctx.db, keys, now);
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
  return ctx.db.transaction(async (tx) => {
    if (!(await findOrganisation(tx, odsCode))) throw new AppError('organisation.not_found');
    const applicationId = randomUUID();
    const selfieId = await storePhoto(tx, ctx, selfie, 'selfie', null);
    const documentId = await storePhoto(tx, ctx, document, 'document', null);
    await tx.query(
      `INSERT INTO remote_applications (application_id, status, ods_code, applicant, photo_id, document_photo_ids, submitted_at)
       VALUES ($1, 'submitted', $2, $3, $4, $5, $6)`,
      [applicationId, odsCode, JSON.stringify(applicant), selfieId, [documentId], now],
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
    const q = parseInput(
      z.object({
        status: z.enum(['submitted', 'verified', 'rejected']).default('submitted'),
        limit: z.coerce.number().int().min(1).max(500).default(100),
      }),
      query,
    );
    const orgs = organisationsWhere(ctx.actor, 'application:review');
    if (orgs !== 'all' && orgs.length === 0) throw new AppError('auth.forbidden', { statement: 'application:review' });
    const { rows } = await ctx.db.query<ApplicationRow>(
      `SELECT * FROM remote_applications WHERE status = $1 AND ($2::text[] IS NULL OR ods_code = ANY($2))
       ORDER BY submitted_at, application_id LIMIT $3`,
      [q.status, orgs === 'all' ? null : orgs, q.limit],
    );
    return rows.map(fromRow);
  });
}

export async function getApplication(ctx: ServiceContext, applicationId: string): Promise<Application> {
  return raAction(ctx, 'application.read', { targetType: 'application', targetId: applicationId }, async () => {
    requireApplicationId(applicationId);
    const { rows } = await ctx.db.query<ApplicationRow>('SELECT * FROM remote_applications WHERE application_id = $1', [
      applicationId,
    ]);
    if (!rows[0]) throw new AppError('application.not_found');
    authorize(ctx.actor, 'application:review', { kind: 'organisation', odsCode: rows[0].ods_code });
    return fromRow(rows[0]);
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
  const { rows } = await ctx.db.query<{ media_type: 'image/jpeg' | 'image/png'; bytes: Uint8Array }>(
    'SELECT media_type, bytes FROM photos WHERE photo_id = $1',
    [photoId],
  );
  if (!rows[0]) throw new AppError('photo.not_found');
  return { mediaType: rows[0].media_type, bytes: Buffer.from(rows[0].bytes) };
}

async function lockSubmitted(tx: Queryable, ctx: ServiceContext, applicationId: string): Promise<Application> {
  const { rows } = await tx.query<ApplicationRow>(
    'SELECT * FROM remote_applications WHERE application_id = $1 FOR UPDATE',
    [applicationId],
  );
  if (!rows[0]) throw new AppError('application.not_found');
  authorize(ctx.actor, 'application:review', { kind: 'organisation', odsCode: rows[0].ods_code });
  if (rows[0].status !== 'submitted') {
    throw new AppError('application.already_decided', { status: rows[0].status, reviewedBy: rows[0].reviewed_by });
  }
  return fromRow(rows[0]);
}

/** Deletes the images of a decided application that are not the person's photo. */
async function deleteReviewImages(tx: Queryable, app: Application, keep: string | null): Promise<void> {
  const ids = [...app.documentPhotoIds, ...(app.selfiePhotoId ? [app.selfiePhotoId] : [])].filter((id) => id !== keep);
  await tx.query('UPDATE remote_applications SET photo_id = $2, document_photo_ids = $3 WHERE application_id = $1', [
    app.applicationId,
    keep,
    [],
  ]);
  if (ids.length > 0) await tx.query('DELETE FROM photos WHERE photo_id = ANY($1)', [ids]);
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
      return await ctx.db.transaction(async (tx) => {
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
        const { rows } = await tx.query<ApplicationRow>(
          `UPDATE remote_applications SET status = 'verified', reviewed_by = $2, reviewed_at = $3, user_id = $4,
             version = version + 1 WHERE application_id = $1 RETURNING *`,
          [applicationId, ctx.actor.id, now, res.person.userId],
        );
        await appendAudit(tx, ctx, {
          action: 'application.verified',
          targetType: 'application',
          targetId: applicationId,
          before: { status: 'submitted' },
          after: { status: 'verified', userId: res.person.userId, checkId: res.check.checkId, created },
        });
        return { application: fromRow(rows[0]!), ...res, created };
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
    return ctx.db.transaction(async (tx) => {
      const app = await lockSubmitted(tx, ctx, applicationId);
      await deleteReviewImages(tx, app, null);
      const { rows } = await tx.query<ApplicationRow>(
        `UPDATE remote_applications SET status = 'rejected', reviewed_by = $2, reviewed_at = $3, reason = $4,
           version = version + 1 WHERE application_id = $1 RETURNING *`,
        [applicationId, ctx.actor.id, ctx.clock.now(), reason],
      );
      await appendAudit(tx, ctx, {
        action: 'application.rejected',
        targetType: 'application',
        targetId: applicationId,
        before: { status: 'submitted' },
        after: { status: 'rejected' },
        reason,
      });
      return fromRow(rows[0]!);
    });
  });
}
