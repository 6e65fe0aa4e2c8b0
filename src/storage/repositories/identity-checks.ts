/**
 * Identity checks (DOMAIN §5.2): who checked whom, how, where, with which documents (types and last characters, never
 * whole numbers), the photo taken and the level it gives. What a check changes on the person and their photo is
 * written through people.ts (setAssurance) and photos.ts (assignPhoto).
 */
import type { IdentityDocument } from '../../domain/identity/documents.ts';
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
