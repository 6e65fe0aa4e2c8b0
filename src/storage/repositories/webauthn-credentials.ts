/** WebAuthn credentials (services/webauthn.ts): public key, signature counter, the level the key earned. */
import type { Queryable } from '../database.ts';

export interface CredentialRow {
  credential_id: string;
  user_id: string;
  public_key: Uint8Array;
  sign_count: string;
  transports: string[];
  aaguid: string;
  attestation_format: string;
  backup_eligible: boolean;
  kind: 'security_key' | 'platform' | 'passkey';
  aal: number;
  nickname: string;
  status: string;
  clone_warning: boolean;
  created_at: Date;
  last_used_at: Date | null;
}

export async function activeCredentialsOf(q: Queryable, userId: string): Promise<CredentialRow[]> {
  const { rows } = await q.query<CredentialRow>(
    "SELECT * FROM webauthn_credentials WHERE user_id = $1 AND status = 'active' ORDER BY created_at",
    [userId],
  );
  return rows;
}

/** Records a new credential; undefined when that credential id is registered already. */
export async function insertCredential(
  q: Queryable,
  c: {
    credentialId: string;
    userId: string;
    publicKey: Buffer;
    counter: number;
    transports: string[];
    aaguid: string;
    format: string;
    backupEligible: boolean;
    backedUp: boolean;
    kind: string;
    aal: number;
    nickname: string;
    now: Date;
  },
): Promise<CredentialRow | undefined> {
  const { rows } = await q.query<CredentialRow>(
    `INSERT INTO webauthn_credentials (credential_id, user_id, public_key, sign_count, transports, aaguid, attestation_format,
         backup_eligible, backed_up, kind, aal, nickname, status, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'active', $13)
       ON CONFLICT (credential_id) DO NOTHING RETURNING *`,
    [
      c.credentialId,
      c.userId,
      c.publicKey,
      c.counter,
      c.transports,
      c.aaguid,
      c.format,
      c.backupEligible,
      c.backedUp,
      c.kind,
      c.aal,
      c.nickname,
      c.now,
    ],
  );
  return rows[0];
}

export async function activeCredentialIdsOf(
  q: Queryable,
  userId: string,
): Promise<{ credential_id: string; transports: string[] }[]> {
  const { rows } = await q.query<{ credential_id: string; transports: string[] }>(
    "SELECT credential_id, transports FROM webauthn_credentials WHERE user_id = $1 AND status = 'active'",
    [userId],
  );
  return rows;
}

/** The credential `credentialId` (also what a person is told about the key they signed in with). */
export async function findCredential(q: Queryable, credentialId: string): Promise<CredentialRow | undefined> {
  const { rows } = await q.query<CredentialRow>('SELECT * FROM webauthn_credentials WHERE credential_id = $1', [
    credentialId,
  ]);
  return rows[0];
}

/**
 * Records a use, only if the counter still increases over the stored one (or both are 0); false otherwise: two
 * assertions with the same counter (a cloned key used twice at once) must not both succeed.
 */
export async function recordCredentialUse(
  q: Queryable,
  credentialId: string,
  newCounter: number,
  now: Date,
  backedUp: boolean,
): Promise<boolean> {
  const { rowCount } = await q.query(
    `UPDATE webauthn_credentials SET sign_count = $2, last_used_at = $3, backed_up = $4
     WHERE credential_id = $1 AND (sign_count < $2 OR (sign_count = 0 AND $2 = 0))`,
    [credentialId, newCounter, now, backedUp],
  );
  return rowCount > 0;
}

export async function flagCloneWarning(q: Queryable, credentialId: string): Promise<void> {
  await q.query('UPDATE webauthn_credentials SET clone_warning = true WHERE credential_id = $1', [credentialId]);
}

/** Marks a person's active credential removed; false when there is none. */
export async function removeCredentialOf(q: Queryable, credentialId: string, userId: string): Promise<boolean> {
  const { rowCount } = await q.query(
    "UPDATE webauthn_credentials SET status = 'removed' WHERE credential_id = $1 AND user_id = $2 AND status = 'active'",
    [credentialId, userId],
  );
  return rowCount > 0;
}
