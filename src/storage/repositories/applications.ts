/**
 * Apply for Care ID (DOMAIN §5.2): remote applications, from submission to the RA's decision. A decision locks the
 * application's row (`lock`); the images it refers to are photos (photos.ts).
 */
import type { NewPerson } from '../../domain/identity/person.ts';
import type { Queryable } from '../database.ts';

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

export async function insertApplication(
  q: Queryable,
  a: { applicationId: string; odsCode: string; applicant: Applicant; selfieId: string; documentIds: string[] },
  now: Date,
): Promise<void> {
  await q.query(
    `INSERT INTO remote_applications (application_id, status, ods_code, applicant, photo_id, document_photo_ids, submitted_at)
       VALUES ($1, 'submitted', $2, $3, $4, $5, $6)`,
    [a.applicationId, a.odsCode, JSON.stringify(a.applicant), a.selfieId, a.documentIds, now],
  );
}

/** Applications with status `status` in organisations `orgs` (null: all), oldest first. */
export async function listApplications(
  q: Queryable,
  f: { status: ApplicationStatus; orgs: readonly string[] | null; limit: number },
): Promise<Application[]> {
  const { rows } = await q.query<ApplicationRow>(
    `SELECT * FROM remote_applications WHERE status = $1 AND ($2::text[] IS NULL OR ods_code = ANY($2))
       ORDER BY submitted_at, application_id LIMIT $3`,
    [f.status, f.orgs, f.limit],
  );
  return rows.map(fromRow);
}

/** The application `applicationId` (`lock`: its row, for the rest of the transaction). */
export async function findApplication(
  q: Queryable,
  applicationId: string,
  lock = false,
): Promise<Application | undefined> {
  const { rows } = await q.query<ApplicationRow>(
    lock
      ? 'SELECT * FROM remote_applications WHERE application_id = $1 FOR UPDATE'
      : 'SELECT * FROM remote_applications WHERE application_id = $1',
    [applicationId],
  );
  return rows[0] && fromRow(rows[0]);
}

/** The application's images after its decision: only `keep` (the person's photo now), or none. */
export async function keepOnlyImage(q: Queryable, applicationId: string, keep: string | null): Promise<void> {
  await q.query('UPDATE remote_applications SET photo_id = $2, document_photo_ids = $3 WHERE application_id = $1', [
    applicationId,
    keep,
    [],
  ]);
}

export async function markVerified(
  q: Queryable,
  applicationId: string,
  d: { reviewedBy: string; userId: string },
  now: Date,
): Promise<Application> {
  const { rows } = await q.query<ApplicationRow>(
    `UPDATE remote_applications SET status = 'verified', reviewed_by = $2, reviewed_at = $3, user_id = $4,
             version = version + 1 WHERE application_id = $1 RETURNING *`,
    [applicationId, d.reviewedBy, now, d.userId],
  );
  return fromRow(rows[0]!);
}

export async function markRejected(
  q: Queryable,
  applicationId: string,
  d: { reviewedBy: string; reason: string },
  now: Date,
): Promise<Application> {
  const { rows } = await q.query<ApplicationRow>(
    `UPDATE remote_applications SET status = 'rejected', reviewed_by = $2, reviewed_at = $3, reason = $4,
           version = version + 1 WHERE application_id = $1 RETURNING *`,
    [applicationId, d.reviewedBy, now, d.reason],
  );
  return fromRow(rows[0]!);
}
