/** The certificate authorities (pki_authorities): one active, the retired ones kept while their certificates live. */
import type { Queryable } from '../database.ts';

export interface AuthorityRow {
  id: string;
  name: string;
  key_algorithm: 'ECDSA-P256' | 'RSA-2048';
  certificate_der: Uint8Array;
  private_key_sealed: string;
}

/** pg_advisory_xact_lock key serialising CA creation across nodes (migrations use 727274). */
const CA_LOCK = 7_272_740_004;

export async function findAuthority(q: Queryable, id: string): Promise<AuthorityRow | undefined> {
  const { rows } = await q.query<AuthorityRow>(
    'SELECT id, name, key_algorithm, certificate_der, private_key_sealed FROM pki_authorities WHERE id = $1',
    [id],
  );
  return rows[0];
}

/** Every CA's id and status, active first, newest first. */
export async function authorityIds(q: Queryable): Promise<{ id: string; status: 'active' | 'retired' }[]> {
  const { rows } = await q.query<{ id: string; status: 'active' | 'retired' }>(
    "SELECT id, status FROM pki_authorities ORDER BY status = 'active' DESC, created_at DESC",
  );
  return rows;
}

export async function activeAuthorityId(q: Queryable): Promise<string | undefined> {
  const { rows } = await q.query<{ id: string }>("SELECT id FROM pki_authorities WHERE status = 'active'");
  return rows[0]?.id;
}

/** Serialises CA creation across nodes until the transaction ends. */
export async function lockAuthorities(q: Queryable): Promise<void> {
  await q.query('SELECT pg_advisory_xact_lock($1)', [CA_LOCK]);
}

export async function activeAuthorityCertificate(
  q: Queryable,
): Promise<{ id: string; certificate_der: Uint8Array } | undefined> {
  const { rows } = await q.query<{ id: string; certificate_der: Uint8Array }>(
    "SELECT id, certificate_der FROM pki_authorities WHERE status = 'active'",
  );
  return rows[0];
}

export async function insertAuthority(
  q: Queryable,
  a: { id: string; name: string; algorithm: string; der: Buffer; sealedKey: string; notAfter: Date; now: Date },
): Promise<void> {
  await q.query(
    `INSERT INTO pki_authorities (id, name, key_algorithm, certificate_der, private_key_sealed, status, not_after, created_at)
     VALUES ($1, $2, $3, $4, $5, 'active', $6, $7)`,
    [a.id, a.name, a.algorithm, a.der, a.sealedKey, a.notAfter, a.now],
  );
}

export async function retireAuthority(q: Queryable, id: string): Promise<void> {
  await q.query("UPDATE pki_authorities SET status = 'retired' WHERE id = $1", [id]);
}

export async function authorityIdWithCertificate(q: Queryable, der: Buffer): Promise<string | undefined> {
  const known = await q.query<{ id: string }>('SELECT id FROM pki_authorities WHERE certificate_der = $1', [der]);
  return known.rows[0]?.id;
}

export async function activateAuthority(q: Queryable, id: string): Promise<void> {
  await q.query("UPDATE pki_authorities SET status = 'active' WHERE id = $1", [id]);
}

/** Retires the active CA; its id, if there was one. */
export async function retireActiveAuthority(q: Queryable): Promise<string | undefined> {
  const { rows } = await q.query<{ id: string }>(
    "UPDATE pki_authorities SET status = 'retired' WHERE status = 'active' RETURNING id",
  );
  return rows[0]?.id;
}
