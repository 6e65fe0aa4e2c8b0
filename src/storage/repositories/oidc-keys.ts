/**
 * The ID token signing keys (oidc_signing_keys), shared by every node: private halves sealed by the caller. Creating
 * and rotating keys first takes one advisory lock, so two nodes starting (or rotating) at once make one key set.
 */
import type { Queryable } from '../database.ts';

export type KeyStatus = 'active' | 'retiring' | 'retired';

/** Serialises key creation and rotation across nodes, until the transaction ends. */
export async function lockKeyRing(q: Queryable): Promise<void> {
  await q.query('SELECT pg_advisory_xact_lock(727275)');
}

/** The algorithms that have an active key. */
export async function activeAlgorithms(q: Queryable): Promise<string[]> {
  const { rows } = await q.query<{ alg: string }>("SELECT DISTINCT alg FROM oidc_signing_keys WHERE status = 'active'");
  return rows.map((r) => r.alg);
}

export interface NewSigningKey {
  kid: string;
  alg: string;
  publicJwk: object;
  privateJwkSealed: string;
  at: Date;
  /** When it starts to sign (null: at once). */
  activateAfter: Date | null;
}

export async function insertSigningKey(q: Queryable, k: NewSigningKey): Promise<void> {
  await q.query(
    `INSERT INTO oidc_signing_keys (kid, alg, public_jwk, private_jwk_sealed, status, created_at, activate_after)
     VALUES ($1, $2, $3, $4, 'active', $5, $6)`,
    [k.kid, k.alg, JSON.stringify(k.publicJwk), k.privateJwkSealed, k.at, k.activateAfter],
  );
}

/** Every active key becomes retiring until `retireAfter`; returns their kids. */
export async function retireActiveKeys(q: Queryable, retireAfter: Date): Promise<string[]> {
  const { rows } = await q.query<{ kid: string }>(
    `UPDATE oidc_signing_keys SET status = 'retiring', retire_after = $1 WHERE status = 'active' RETURNING kid`,
    [retireAfter],
  );
  return rows.map((r) => r.kid);
}

export interface LiveSigningKey {
  kid: string;
  alg: string;
  privateJwkSealed: string;
  status: 'active' | 'retiring';
  retireAfter: Date | null;
  signsFrom: Date;
}

/** The active and retiring keys, the one that started signing last first. */
export async function liveSigningKeys(q: Queryable): Promise<LiveSigningKey[]> {
  const { rows } = await q.query<{
    kid: string;
    alg: string;
    private_jwk_sealed: string;
    status: 'active' | 'retiring';
    retire_after: Date | string | null;
    signs_from: Date | string;
  }>(
    `SELECT kid, alg, private_jwk_sealed, status, retire_after, COALESCE(activate_after, created_at) AS signs_from
     FROM oidc_signing_keys WHERE status IN ('active', 'retiring') ORDER BY signs_from DESC, kid`,
  );
  return rows.map((r) => ({
    kid: r.kid,
    alg: r.alg,
    privateJwkSealed: r.private_jwk_sealed,
    status: r.status,
    retireAfter: r.retire_after === null ? null : new Date(r.retire_after),
    signsFrom: new Date(r.signs_from),
  }));
}

/** Retires the retiring keys named (past their overlap). */
export async function markKeysRetired(q: Queryable, kids: readonly string[]): Promise<void> {
  await q.query("UPDATE oidc_signing_keys SET status = 'retired' WHERE kid = ANY($1) AND status = 'retiring'", [
    [...kids],
  ]);
}

export interface SigningKeyListing {
  kid: string;
  alg: string;
  status: KeyStatus;
  createdAt: Date;
  retireAfter: Date | null;
  activateAfter: Date | null;
}

/** The keys for the operator's listing: signing first, then retiring, then (with `all`) retired; newest first. */
export async function listSigningKeys(q: Queryable, all: boolean): Promise<SigningKeyListing[]> {
  const { rows } = await q.query<{
    kid: string;
    alg: string;
    status: KeyStatus;
    created_at: Date | string;
    retire_after: Date | string | null;
    activate_after: Date | string | null;
  }>(
    `SELECT kid, alg, status, created_at, retire_after, activate_after FROM oidc_signing_keys
             WHERE $1 OR status <> 'retired'
             ORDER BY CASE status WHEN 'active' THEN 0 WHEN 'retiring' THEN 1 ELSE 2 END, created_at DESC, alg`,
    [all],
  );
  const date = (d: Date | string | null) => (d === null ? null : new Date(d));
  return rows.map((r) => ({
    kid: r.kid,
    alg: r.alg,
    status: r.status,
    createdAt: new Date(r.created_at),
    retireAfter: date(r.retire_after),
    activateAfter: date(r.activate_after),
  }));
}
