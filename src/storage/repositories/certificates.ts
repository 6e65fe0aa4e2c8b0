/**
 * Issued certificates (pki_certificates) and the CRL state (pki_crl_state): the source of truth for status that
 * smartcard sign-in, the CRL and OCSP all read.
 */
import type { Queryable } from '../database.ts';

export type RevocationReasonName = string;

export async function insertCertificate(
  q: Queryable,
  c: {
    serial: string;
    authorityId: string;
    userId: string;
    cardId: string | null;
    subject: string;
    notBefore: Date;
    notAfter: Date;
    der: Buffer;
    publicKeySha256: string;
    now: Date;
  },
): Promise<void> {
  await q.query(
    `INSERT INTO pki_certificates (serial, authority_id, user_id, card_id, purpose, subject, not_before, not_after, status,
         certificate_der, public_key_sha256, created_at)
       VALUES ($1, $2, $3, $4, 'authentication', $5, $6, $7, 'valid', $8, $9, $10)`,
    [c.serial, c.authorityId, c.userId, c.cardId, c.subject, c.notBefore, c.notAfter, c.der, c.publicKeySha256, c.now],
  );
}

/** Valid authentication certificates ending in [from, to), per UK day. */
export async function validEndsPerDay(q: Queryable, from: Date, to: Date): Promise<{ day: string; n: number }[]> {
  const { rows } = await q.query<{ day: string; n: number }>(
    `SELECT (not_after AT TIME ZONE 'Europe/London')::date::text AS day, count(*)::int AS n FROM pki_certificates
     WHERE status = 'valid' AND purpose = 'authentication' AND not_after >= $1 AND not_after < $2 GROUP BY 1`,
    [from, to],
  );
  return rows;
}

/**
 * Valid authentication certificates ending in (now, until], per UK day; only those of people in `odsCodes` when given
 * (the expiry forecast).
 */
export async function expiriesPerDay(
  q: Queryable,
  now: Date,
  until: Date,
  odsCodes: string[] | null,
): Promise<{ day: string; n: number }[]> {
  const { rows } = await q.query<{ day: string; n: number }>(
    `SELECT (pc.not_after AT TIME ZONE 'Europe/London')::date::text AS day, count(*)::int AS n
     FROM pki_certificates pc
     WHERE pc.status = 'valid' AND pc.purpose = 'authentication' AND pc.not_after > $1 AND pc.not_after <= $2
       AND ($3::text[] IS NULL OR EXISTS (
         SELECT 1 FROM person_orgs po WHERE po.user_id = pc.user_id AND po.ods_code = ANY($3)))
     GROUP BY 1`,
    [now, until, odsCodes],
  );
  return rows;
}

/** Every node's cached CRL is stale from this commit on. */
export async function bumpRevocationVersion(q: Queryable): Promise<void> {
  await q.query('UPDATE pki_crl_state SET revocation_version = revocation_version + 1 WHERE id = 1');
}

export interface RevokedCertificateRow {
  serial: string;
  user_id: string;
  card_id: string | null;
}

/** Revokes a valid certificate; what was revoked (nothing when it was not valid). */
export async function revokeValidCertificate(
  q: Queryable,
  serial: string,
  at: Date,
  reason: RevocationReasonName,
): Promise<RevokedCertificateRow[]> {
  const { rows } = await q.query<RevokedCertificateRow>(
    `UPDATE pki_certificates SET status = 'revoked', revoked_at = $2, revocation_reason = $3
     WHERE serial = $1 AND status = 'valid' RETURNING serial, user_id, card_id`,
    [serial, at, reason],
  );
  return rows;
}

export async function certificateExists(q: Queryable, serial: string): Promise<boolean> {
  const known = await q.query('SELECT 1 FROM pki_certificates WHERE serial = $1', [serial]);
  return known.rows.length > 0;
}

/** Revokes every valid certificate on a card; what was revoked. */
export async function revokeValidCertificatesOfCard(
  q: Queryable,
  cardId: string,
  at: Date,
  reason: RevocationReasonName,
): Promise<RevokedCertificateRow[]> {
  const { rows } = await q.query<RevokedCertificateRow>(
    `UPDATE pki_certificates SET status = 'revoked', revoked_at = $2, revocation_reason = $3
     WHERE card_id = $1 AND status = 'valid' RETURNING serial, user_id, card_id`,
    [cardId, at, reason],
  );
  return rows;
}

/** A presented certificate's status row under each CA (none under a CA that never issued the serial). */
export interface VerificationRow {
  authority_id: string;
  user_id: string | null;
  card_id: string | null;
  status: 'valid' | 'revoked' | null;
  not_before: Date | null;
  not_after: Date | null;
  public_key_sha256: string | null;
}

const VERIFICATION_SELECT = `SELECT a.id AS authority_id, c.user_id, c.card_id, c.status, c.not_before, c.not_after, c.public_key_sha256
     FROM pki_authorities a
     LEFT JOIN pki_certificates c ON c.authority_id = a.id AND c.serial = $1 AND c.purpose = 'authentication'`;

/** One row per CA, with the certificate of that serial when the CA issued it. */
export async function verificationRows(q: Queryable, serial: string): Promise<VerificationRow[]> {
  const { rows } = await q.query<VerificationRow>(VERIFICATION_SELECT, [serial]);
  return rows;
}

/** The row of one CA only (a certificate whose CA signature has been checked already). */
export async function verificationRow(
  q: Queryable,
  serial: string,
  authorityId: string,
): Promise<VerificationRow | undefined> {
  const { rows } = await q.query<VerificationRow>(`${VERIFICATION_SELECT} WHERE a.id = $2`, [serial, authorityId]);
  return rows[0];
}

export async function revocationVersion(q: Queryable): Promise<string> {
  const { rows } = await q.query<{ revocation_version: string }>(
    'SELECT revocation_version::text AS revocation_version FROM pki_crl_state WHERE id = 1',
  );
  return rows[0]!.revocation_version;
}

/** Reserves the next CRL number; with the revocation version it goes with. */
export async function nextCrlNumber(q: Queryable): Promise<{ crl_number: string; revocation_version: string }> {
  const state = await q.query<{ crl_number: string; revocation_version: string }>(
    `UPDATE pki_crl_state SET crl_number = crl_number + 1 WHERE id = 1
       RETURNING crl_number::text AS crl_number, revocation_version::text AS revocation_version`,
  );
  return state.rows[0]!;
}

export interface RevokedEntryRow {
  serial: string;
  revoked_at: Date;
  revocation_reason: string;
}

/** A CA's revoked certificates that have not expired at `now`, for its CRL. */
export async function revokedUnexpired(q: Queryable, authorityId: string, now: Date): Promise<RevokedEntryRow[]> {
  const entries = await q.query<RevokedEntryRow>(
    `SELECT serial, revoked_at, revocation_reason FROM pki_certificates
       WHERE authority_id = $1 AND status = 'revoked' AND not_after > $2 ORDER BY revoked_at, serial`,
    [authorityId, now],
  );
  return entries.rows;
}

export interface CertificateStatusRow {
  serial: string;
  authority_id: string;
  status: 'valid' | 'revoked';
  revoked_at: Date | null;
  revocation_reason: string | null;
}

/** Status of these serials issued by one CA (OCSP). */
export async function statusesOf(
  q: Queryable,
  authorityId: string,
  serials: readonly string[],
): Promise<CertificateStatusRow[]> {
  const { rows } = await q.query<CertificateStatusRow>(
    `SELECT serial, authority_id, status, revoked_at, revocation_reason FROM pki_certificates
       WHERE authority_id = $1 AND serial IN (${serials.map((_, i) => `$${i + 2}`).join(', ')})`,
    [authorityId, ...serials],
  );
  return rows;
}

export async function certificateWithKey(
  q: Queryable,
  serial: string,
): Promise<{ certificate_der: Buffer; public_key_sha256: string } | undefined> {
  const { rows } = await q.query<{ certificate_der: Buffer; public_key_sha256: string }>(
    'SELECT certificate_der, public_key_sha256 FROM pki_certificates WHERE serial = $1',
    [serial],
  );
  return rows[0];
}

/** The newest certificate a renewal superseded on this card with the same key (renewal pages). */
export async function supersededWithSameKey(
  q: Queryable,
  cardId: string,
  publicKeySha256: string,
  currentSerial: string,
): Promise<{ certificate_der: Buffer } | undefined> {
  const replaced = await q.query<{ certificate_der: Buffer }>(
    `SELECT certificate_der FROM pki_certificates
     WHERE card_id = $1 AND public_key_sha256 = $2 AND serial <> $3 AND revocation_reason = 'superseded'
     ORDER BY created_at DESC LIMIT 1`,
    [cardId, publicKeySha256, currentSerial],
  );
  return replaced.rows[0];
}
