import { generateKeyPairSync, type JsonWebKey, randomBytes } from 'node:crypto';
import { AppError } from '../domain/errors.ts';
import { authorize } from '../domain/policy.ts';
import { appendAudit } from '../services/audit.ts';
import type { ServiceContext } from '../services/context.ts';
import type { Queryable } from '../storage/database.ts';

/**
 * ID token signing keys, kept in the database (private halves sealed) so every node signs with the same keys.
 * CIS2 signs ID tokens with RS256 by default; ES256 and PS256 are there for clients that ask for them.
 * Rotation (`opencis oidc rotate-keys`): a new key of each algorithm becomes active; the old ones become 'retiring' and
 * stay in the JWKS until every token they signed has expired (the longest token lifetime), then are retired.
 */
export type SigningAlg = 'RS256' | 'PS256' | 'ES256';
export const SIGNING_ALGS: readonly SigningAlg[] = ['RS256', 'ES256', 'PS256'];
const PURPOSE = 'oidc.signing-key';

export interface SigningKeys {
  /** Private JWKs for oidc-provider: active keys first (the library signs with the first key of an algorithm). */
  jwks: JsonWebKey[];
  /** Identifies this key set: nodes rebuild their provider when it changes. */
  version: string;
}

function newKey(alg: SigningAlg): { kid: string; privateJwk: JsonWebKey; publicJwk: JsonWebKey } {
  const pair =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomBytes(12).toString('base64url');
  const privateJwk = { ...pair.privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } as JsonWebKey;
  const publicJwk = { ...pair.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } as JsonWebKey;
  return { kid, privateJwk, publicJwk };
}

async function insertKey(tx: Queryable, ctx: ServiceContext, alg: SigningAlg): Promise<string> {
  const key = newKey(alg);
  await tx.query(
    `INSERT INTO oidc_signing_keys (kid, alg, public_jwk, private_jwk_sealed, status, created_at)
     VALUES ($1, $2, $3, $4, 'active', $5)`,
    [
      key.kid,
      alg,
      JSON.stringify(key.publicJwk),
      ctx.sealer.seal(JSON.stringify(key.privateJwk), PURPOSE),
      ctx.clock.now(),
    ],
  );
  return key.kid;
}

/** Makes sure one active key of each algorithm exists (first start); two nodes starting at once create one set. */
export async function ensureSigningKeys(ctx: ServiceContext): Promise<void> {
  await ctx.db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(727275)');
    const { rows } = await tx.query<{ alg: SigningAlg }>(
      "SELECT DISTINCT alg FROM oidc_signing_keys WHERE status = 'active'",
    );
    const have = new Set(rows.map((r) => r.alg));
    const created: string[] = [];
    for (const alg of SIGNING_ALGS) if (!have.has(alg)) created.push(await insertKey(tx, ctx, alg));
    if (created.length > 0) {
      await appendAudit(tx, ctx, {
        action: 'oidc.signing_keys_created',
        targetType: 'oidc_signing_keys',
        targetId: null,
        before: null,
        after: { kids: created },
      });
    }
  });
}

/**
 * Rotates the signing keys. `overlapSeconds` is how long the old keys stay published: at least the longest lifetime of
 * a token they may have signed (ID tokens, and access tokens the userinfo endpoint still accepts).
 */
export async function rotateSigningKeys(
  ctx: ServiceContext,
  overlapSeconds: number,
): Promise<{ active: string[]; retiring: string[] }> {
  // Key rotation is an operator action (the CLI, or the system on a schedule), never an RA Manager's: no statement of
  // its own exists in the policy module, so it is guarded by 'catalogue:load', which only operators and the system hold.
  authorize(ctx.actor, 'catalogue:load');
  if (!Number.isInteger(overlapSeconds) || overlapSeconds < 0 || overlapSeconds > 30 * 86_400) {
    throw new AppError('request.invalid', { field: 'overlapSeconds' });
  }
  return ctx.db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(727275)');
    const now = ctx.clock.now();
    const { rows: old } = await tx.query<{ kid: string }>(
      `UPDATE oidc_signing_keys SET status = 'retiring', retire_after = $1 WHERE status = 'active' RETURNING kid`,
      [new Date(now.getTime() + overlapSeconds * 1000)],
    );
    const active: string[] = [];
    for (const alg of SIGNING_ALGS) active.push(await insertKey(tx, ctx, alg));
    await appendAudit(tx, ctx, {
      action: 'oidc.signing_keys_rotated',
      targetType: 'oidc_signing_keys',
      targetId: null,
      before: { active: old.map((r) => r.kid) },
      after: { active, retiringUntil: new Date(now.getTime() + overlapSeconds * 1000).toISOString() },
    });
    return { active, retiring: old.map((r) => r.kid) };
  });
}

/** The key set to publish and sign with now; retiring keys past their overlap are retired on the way. */
export async function loadSigningKeys(ctx: Pick<ServiceContext, 'db' | 'sealer' | 'clock'>): Promise<SigningKeys> {
  await ctx.db.query(
    "UPDATE oidc_signing_keys SET status = 'retired' WHERE status = 'retiring' AND retire_after < $1",
    [ctx.clock.now()],
  );
  const { rows } = await ctx.db.query<{ kid: string; private_jwk_sealed: string; status: string }>(
    `SELECT kid, private_jwk_sealed, status FROM oidc_signing_keys WHERE status IN ('active', 'retiring')
     ORDER BY CASE status WHEN 'active' THEN 0 ELSE 1 END, created_at DESC, kid`,
  );
  return {
    jwks: rows.map((r) => JSON.parse(ctx.sealer.open(r.private_jwk_sealed, PURPOSE).toString()) as JsonWebKey),
    version: rows.map((r) => `${r.kid}:${r.status}`).join(','),
  };
}
