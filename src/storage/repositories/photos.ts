/** Photos taken at an identity check, and the images sent with a remote application (after their checks pass). */
import type { CheckedPhoto } from '../../domain/identity/photo.ts';
import type { Queryable } from '../database.ts';

export async function insertPhoto(
  q: Queryable,
  p: {
    photoId: string;
    userId: string | null;
    purpose: 'portrait' | 'selfie' | 'document';
    photo: CheckedPhoto;
  },
  now: Date,
): Promise<void> {
  const { photoId, userId, purpose, photo } = p;
  await q.query(
    `INSERT INTO photos (photo_id, user_id, purpose, media_type, bytes, sha256, size, width, height, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [
      photoId,
      userId,
      purpose,
      photo.mediaType,
      photo.bytes,
      photo.sha256,
      photo.bytes.length,
      photo.width,
      photo.height,
      now,
    ],
  );
}

/** The photo `photoId`, as stored (metadata stripped). */
export async function photoById(
  q: Queryable,
  photoId: string,
): Promise<{ mediaType: 'image/jpeg' | 'image/png'; bytes: Buffer } | undefined> {
  const { rows } = await q.query<{ media_type: 'image/jpeg' | 'image/png'; bytes: Uint8Array }>(
    'SELECT media_type, bytes FROM photos WHERE photo_id = $1',
    [photoId],
  );
  return rows[0] && { mediaType: rows[0].media_type, bytes: Buffer.from(rows[0].bytes) };
}

export async function deletePhotos(q: Queryable, photoIds: readonly string[]): Promise<void> {
  await q.query('DELETE FROM photos WHERE photo_id = ANY($1)', [photoIds]);
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
