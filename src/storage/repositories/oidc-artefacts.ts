/**
 * oidc-provider's artefacts on PostgreSQL (oidc_payloads): sessions, interactions, grants, codes and tokens, written
 * and read by the adapter (src/oidc/adapter.ts). Each function is one statement, as the adapter has always made them:
 * the write of a token and the use of the code it is given for are one statement, and a token is read with its grant,
 * session and claims in one (oidc_read_together, migration 0015).
 */
import type { Queryable } from '../database.ts';

export interface ArtefactValues {
  model: string;
  id: string;
  /** The payload as JSON text. */
  json: string;
  grantId: string | null;
  userCode: string | null;
  uid: string | null;
  accountId: string | null;
  expiresAt: Date | null;
}

const valuesOf = (a: ArtefactValues) => [a.model, a.id, a.json, a.grantId, a.userCode, a.uid, a.accountId, a.expiresAt];

/** Writes an artefact (insert or replace); returns when it was consumed, if it was. */
export async function upsertArtefact(q: Queryable, a: ArtefactValues): Promise<{ consumedAt: Date | null }[]> {
  const { rows } = await q.query<{ consumed_at: Date | null }>(
    `INSERT INTO oidc_payloads (model, id, payload, grant_id, user_code, uid, account_id, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (model, id) DO UPDATE SET payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id,
               user_code = EXCLUDED.user_code, uid = EXCLUDED.uid, account_id = EXCLUDED.account_id, expires_at = EXCLUDED.expires_at
             RETURNING consumed_at`,
    valuesOf(a),
  );
  return rows.map((r) => ({ consumedAt: r.consumed_at }));
}

/**
 * Marks `used` consumed and writes the artefact in the same statement, only if this statement is the one that marked
 * it: no row back means it was used already (a replay) and nothing was written.
 */
export async function upsertArtefactUsing(
  q: Queryable,
  a: ArtefactValues,
  used: { model: string; id: string },
): Promise<{ consumedAt: Date | null }[]> {
  const { rows } = await q.query<{ consumed_at: Date | null }>(
    `WITH used AS (
               UPDATE oidc_payloads SET consumed_at = now()
               WHERE model = $9::text AND id = $10::text AND consumed_at IS NULL RETURNING 1
             )
             INSERT INTO oidc_payloads (model, id, payload, grant_id, user_code, uid, account_id, expires_at)
             SELECT $1::text, $2::text, $3::jsonb, $4::text, $5::text, $6::text, $7::text, $8::timestamptz
             WHERE EXISTS (SELECT 1 FROM used)
             ON CONFLICT (model, id) DO UPDATE SET payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id,
               user_code = EXCLUDED.user_code, uid = EXCLUDED.uid, account_id = EXCLUDED.account_id, expires_at = EXCLUDED.expires_at
             RETURNING consumed_at`,
    [...valuesOf(a), used.model, used.id],
  );
  return rows.map((r) => ({ consumedAt: r.consumed_at }));
}

/** Marks an artefact consumed if it was not; returns when (undefined: used already, or gone). */
export async function consumeArtefact(q: Queryable, model: string, id: string): Promise<Date | undefined> {
  const { rows } = await q.query<{ consumed_at: Date }>(
    `UPDATE oidc_payloads SET consumed_at = now()
             WHERE model = $1 AND id = $2 AND consumed_at IS NULL RETURNING consumed_at`,
    [model, id],
  );
  return rows[0]?.consumed_at;
}

/** The grant an artefact belongs to (null: none, or no such artefact). */
export async function grantOfArtefact(q: Queryable, model: string, id: string): Promise<string | null> {
  const { rows } = await q.query<{ grant_id: string | null }>(
    'SELECT grant_id FROM oidc_payloads WHERE model = $1 AND id = $2',
    [model, id],
  );
  return rows[0]?.grant_id ?? null;
}

export interface StoredArtefact {
  /** The payload as stored (jsonb, or its text on drivers that return text). */
  payload: unknown;
  consumedAt: Date | null;
  expiresAt: Date | null;
}

/** An artefact by id, uid or user code (expired ones too: the caller decides). */
export async function findArtefact(
  q: Queryable,
  model: string,
  by: 'id' | 'uid' | 'user_code',
  value: string,
): Promise<StoredArtefact | undefined> {
  const { rows } = await q.query<{ payload: unknown; consumed_at: Date | null; expires_at: Date | null }>(
    `SELECT payload, consumed_at, expires_at FROM oidc_payloads WHERE model = $1 AND ${by} = $2`,
    [model, value],
  );
  const row = rows[0];
  return row && { payload: row.payload, consumedAt: row.consumed_at, expiresAt: row.expires_at };
}

/**
 * A token or code with its grant, SSO session and (for `use`) its account's claims for `day`, in one statement
 * (oidc_read_together, migration 0015); its JSON as the function returns it (null: not found).
 */
export async function readArtefactTogether(
  q: Queryable,
  model: string,
  id: string,
  day: string,
  use: string | null,
): Promise<unknown> {
  const { rows } = await q.query<{ found: unknown }>('SELECT oidc_read_together($1, $2, $3, $4) AS found', [
    model,
    id,
    day,
    use,
  ]);
  return rows[0]?.found ?? null;
}

export async function deleteArtefact(q: Queryable, model: string, id: string): Promise<void> {
  await q.query('DELETE FROM oidc_payloads WHERE model = $1 AND id = $2', [model, id]);
}

/** Deletes every artefact of a grant (its revocation). */
export async function deleteGrantArtefacts(q: Queryable, grantId: string): Promise<void> {
  await q.query('DELETE FROM oidc_payloads WHERE grant_id = $1', [grantId]);
}

/** Deletes expired artefacts; returns how many. */
export async function purgeExpiredArtefacts(q: Queryable): Promise<number> {
  const { rowCount } = await q.query('DELETE FROM oidc_payloads WHERE expires_at < now()');
  return rowCount;
}

/** An account's live OpenID Connect sessions: id and payload (for back-channel logout when OpenCIS ends them). */
export async function liveSessionsOf(q: Queryable, accountId: string): Promise<{ id: string; payload: unknown }[]> {
  const { rows } = await q.query<{ id: string; payload: unknown }>(
    "SELECT id, payload FROM oidc_payloads WHERE model = 'Session' AND account_id = $1 AND (expires_at IS NULL OR expires_at > now())",
    [accountId],
  );
  return rows;
}
