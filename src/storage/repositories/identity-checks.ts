/**
 * Identity checks (DOMAIN §5.2): who checked whom, how, where, with which documents (types and last characters, never
 * whole numbers), the photo taken and the level it gives; and what a check changes on the person and their photo.
 */
import type { IdentityDocument } from '../../domain/identity/documents.ts';
import type { IdentityAssuranceLevel } from '../../domain/identity/person.ts';
import type { Queryable } from '../database.ts';

export type CheckMethod = 'face_to_face' | 'remote';

export interface IdentityCheck {
  checkId: string;
  userId: string;
  checkedBy: string;
  method: CheckMethod;
  place: string | null;
  checkedAt: string;
  documents: IdentityDocument[];
  photoRef: string | null;
  resultingLevel: 2 | 3;
  duplicateResolution: string;
  applicationId: string | null;
  notes: string | null;
}

/** A new identity check; its ID. */
export async function insertIdentityCheck(
  q: Queryable,
  c: {
    userId: string;
    checkedBy: string;
    method: CheckMethod;
    place: string | null;
    checkedAt: Date;
    documents: IdentityDocument[];
    photoRef: string | null;
    resultingLevel: 2 | 3;
    duplicateResolution: string;
    applicationId: string | null;
    notes: string | null;
  },
  now: Date,
): Promise<string> {
  const { rows } = await q.query<{ check_id: string }>(
    `INSERT INTO identity_checks (user_id, checked_by, method, place, checked_at, documents, photo_ref, resulting_level,
       duplicate_resolution, application_id, notes, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING check_id::text AS check_id`,
    [
      c.userId,
      c.checkedBy,
      c.method,
      c.place,
      c.checkedAt,
      JSON.stringify(c.documents),
      c.photoRef,
      c.resultingLevel,
      c.duplicateResolution,
      c.applicationId,
      c.notes,
      now,
    ],
  );
  return rows[0]!.check_id;
}

/** A person's identity assurance level and photo after a check; the record's version moves on. */
export async function setAssurance(
  q: Queryable,
  userId: string,
  level: IdentityAssuranceLevel,
  photoRef: string | null,
  now: Date,
): Promise<void> {
  await q.query(
    `UPDATE people SET identity_assurance_level = $2, photo_ref = $3, updated_at = $4, version = version + 1
       WHERE user_id = $1`,
    [userId, level, photoRef, now],
  );
}

/** The photo `photoId` now belongs to `userId`. */
export async function assignPhoto(q: Queryable, photoId: string, userId: string): Promise<void> {
  await q.query('UPDATE photos SET user_id = $2 WHERE photo_id = $1', [photoId, userId]);
}

/** The photo `photoId` of `userId`, as stored (metadata stripped). */
export async function photoOf(
  q: Queryable,
  photoId: string,
  userId: string,
): Promise<{ mediaType: 'image/jpeg' | 'image/png'; bytes: Buffer } | undefined> {
  const { rows } = await q.query<{ media_type: 'image/jpeg' | 'image/png'; bytes: Uint8Array }>(
    'SELECT media_type, bytes FROM photos WHERE photo_id = $1 AND user_id = $2',
    [photoId, userId],
  );
  const row = rows[0];
  return row && { mediaType: row.media_type, bytes: Buffer.from(row.bytes) };
}

/** The identity checks recorded for a person, newest first. */
export async function identityChecksOf(q: Queryable, userId: string): Promise<IdentityCheck[]> {
  const { rows } = await q.query<{
    check_id: string;
    user_id: string;
    checked_by: string;
    method: CheckMethod;
    place: string | null;
    checked_at: Date;
    documents: IdentityDocument[] | string;
    photo_ref: string | null;
    resulting_level: number;
    duplicate_resolution: string;
    application_id: string | null;
    notes: string | null;
  }>(
    `SELECT check_id::text AS check_id, user_id, checked_by, method, place, checked_at, documents, photo_ref,
         resulting_level, duplicate_resolution, application_id, notes
       FROM identity_checks WHERE user_id = $1 ORDER BY identity_checks.check_id DESC`,
    [userId],
  );
  return rows.map((r) => ({
    checkId: r.check_id,
    userId: r.user_id,
    checkedBy: r.checked_by,
    method: r.method,
    place: r.place,
    checkedAt: new Date(r.checked_at).toISOString(),
    documents: typeof r.documents === 'string' ? (JSON.parse(r.documents) as IdentityDocument[]) : r.documents,
    photoRef: r.photo_ref,
    resultingLevel: r.resulting_level === 3 ? 3 : 2,
    duplicateResolution: r.duplicate_resolution,
    applicationId: r.application_id,
    notes: r.notes,
  }));
}
