/** The keys that sign CIS1 role assertions (cis1_signing_keys): private halves sealed by the caller. */
import type { Queryable } from '../database.ts';

export interface StoredSigningKey {
  keyId: string;
  certificateDer: Uint8Array;
  privateKeySealed: string;
  notAfter: Date;
}

export async function findSigningKey(q: Queryable, keyId: string): Promise<StoredSigningKey | undefined> {
  const { rows } = await q.query<{
    key_id: string;
    certificate_der: Uint8Array;
    private_key_sealed: string;
    not_after: Date;
  }>('SELECT key_id, certificate_der, private_key_sealed, not_after FROM cis1_signing_keys WHERE key_id = $1', [keyId]);
  const r = rows[0];
  return (
    r && {
      keyId: r.key_id,
      certificateDer: r.certificate_der,
      privateKeySealed: r.private_key_sealed,
      notAfter: r.not_after,
    }
  );
}

/** The id of the key that signs now, if there is one. */
export async function activeSigningKeyId(q: Queryable): Promise<string | undefined> {
  const { rows } = await q.query<{ key_id: string }>("SELECT key_id FROM cis1_signing_keys WHERE status = 'active'");
  return rows[0]?.key_id;
}

/** Serialises key creation across nodes until the transaction ends (`lock`: the advisory lock's key). */
export async function lockSigningKeyCreation(q: Queryable, lock: number): Promise<void> {
  await q.query('SELECT pg_advisory_xact_lock($1)', [lock]);
}

export async function insertSigningKey(
  q: Queryable,
  k: { keyId: string; certificateDer: Buffer; privateKeySealed: string; notAfter: Date; at: Date },
): Promise<void> {
  await q.query(
    `INSERT INTO cis1_signing_keys (key_id, certificate_der, private_key_sealed, status, not_after, created_at)
       VALUES ($1, $2, $3, 'active', $4, $5)`,
    [k.keyId, k.certificateDer, k.privateKeySealed, k.notAfter, k.at],
  );
}
