import { generateKeyPairSync, type JsonWebKey, randomBytes } from 'node:crypto';
import { AppError } from '../domain/errors.ts';
import { authorize } from '../domain/policy.ts';
import { appendAudit } from '../services/audit.ts';
import type { ServiceContext } from '../services/context.ts';
import type { Queryable } from '../storage/database.ts';

/**
 * ID token signing keys, kept in the database (private halves sealed) so every node signs with the same keys.
 * CIS2 signs ID tokens with RS256 by default; ES256 and PS256 are there for clients that ask for them.
 *
 * Rotation (`opencis oidc rotate-keys`) is in two phases, because each node reloads the keys on its own timer (every
 * KEY_RELOAD_SECONDS) and a relying party may fetch the JWKS from any node:
 *  1. publish: a new key of each algorithm is added (status 'active', activate_after in the future); every node
 *     publishes it in its JWKS within one reload period but goes on signing with the current key;
 *  2. sign: from activate_after, each node signs with the new key at its next reload. By then every node publishes it,
 *     so no relying party meets an ID token whose kid its JWKS lacks.
 * The old keys become 'retiring' and stay published until every token they may have signed has expired (the overlap,
 * counted from the last moment a node may still sign with them), then are retired.
 */
export type SigningAlg = 'RS256' | 'PS256' | 'ES256';
export const SIGNING_ALGS: readonly SigningAlg[] = ['RS256', 'ES256', 'PS256'];
const PURPOSE = 'oidc.signing-key';

/** How often every node looks for rotated keys (mount.ts). */
export const KEY_RELOAD_SECONDS = 60;
/**
 * Default time between publishing a new key and signing with it: two reload periods, so every node publishes it before
 * any node signs with it, with room for node clocks a little apart.
 */
export const DEFAULT_PUBLISH_SECONDS = 2 * KEY_RELOAD_SECONDS;

export interface SigningKeys {
  /**
   * Private JWKs for oidc-provider: the keys that sign now first (the library signs with the first key of an
   * algorithm), then those only published (next, retiring). The library publishes the public halves of all of them.
   */
  jwks: JsonWebKey[];
  /** The kids this node signs with now, one per algorithm. */
  signing: string[];
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

async function insertKey(tx: Queryable, ctx: ServiceContext, alg: SigningAlg, signsFrom: Date | null): Promise<string> {
  const key = newKey(alg);
  await tx.query(
    `INSERT INTO oidc_signing_keys (kid, alg, public_jwk, private_jwk_sealed, status, created_at, activate_after)
     VALUES ($1, $2, $3, $4, 'active', $5, $6)`,
    [
      key.kid,
      alg,
      JSON.stringify(key.publicJwk),
      ctx.sealer.seal(JSON.stringify(key.privateJwk), PURPOSE),
      ctx.clock.now(),
      signsFrom,
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
    for (const alg of SIGNING_ALGS) if (!have.has(alg)) created.push(await insertKey(tx, ctx, alg, null));
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

export interface Rotation {
  /** The new keys (one per algorithm): published now, signing from `signsFrom`. */
  active: string[];
  /** The keys they replace: published until `retiringUntil`. */
  retiring: string[];
  signsFrom: Date;
  retiringUntil: Date;
}

/**
 * Rotates the signing keys. `publishSeconds` is how long the new keys are published before they sign (at least one
 * reload period, KEY_RELOAD_SECONDS, or a node may sign with a key another node does not publish yet).
 * `overlapSeconds` is how long the old keys stay published once no node signs with them any more: at least the longest
 * lifetime of a token they may have signed (ID tokens, and access tokens the userinfo endpoint still accepts).
 */
export async function rotateSigningKeys(
  ctx: ServiceContext,
  overlapSeconds: number,
  publishSeconds: number = DEFAULT_PUBLISH_SECONDS,
): Promise<Rotation> {
  // Key rotation is an operator action (the CLI, or the system on a schedule), never an RA Manager's: no statement of
  // its own exists in the policy module, so it is guarded by 'catalogue:load', which only operators and the system hold.
  authorize(ctx.actor, 'catalogue:load', { kind: 'national' });
  if (!Number.isInteger(overlapSeconds) || overlapSeconds < 0 || overlapSeconds > 30 * 86_400) {
    throw new AppError('request.invalid', { field: 'overlapSeconds' });
  }
  if (!Number.isInteger(publishSeconds) || publishSeconds < 0 || publishSeconds > 86_400) {
    throw new AppError('request.invalid', { field: 'publishSeconds' });
  }
  return ctx.db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(727275)');
    const now = ctx.clock.now();
    const signsFrom = new Date(now.getTime() + publishSeconds * 1000);
    // A node may go on signing with an old key until its first reload after signsFrom.
    const retiringUntil = new Date(signsFrom.getTime() + (KEY_RELOAD_SECONDS + overlapSeconds) * 1000);
    const { rows: old } = await tx.query<{ kid: string }>(
      `UPDATE oidc_signing_keys SET status = 'retiring', retire_after = $1 WHERE status = 'active' RETURNING kid`,
      [retiringUntil],
    );
    // With no key to replace (a database without keys yet), there is nothing to wait for.
    const from = old.length > 0 ? signsFrom : now;
    const active: string[] = [];
    for (const alg of SIGNING_ALGS) active.push(await insertKey(tx, ctx, alg, from));
    await appendAudit(tx, ctx, {
      action: 'oidc.signing_keys_rotated',
      targetType: 'oidc_signing_keys',
      targetId: null,
      before: { active: old.map((r) => r.kid) },
      after: { active, signsFrom: from.toISOString(), retiringUntil: retiringUntil.toISOString() },
    });
    return { active, retiring: old.map((r) => r.kid), signsFrom: from, retiringUntil };
  });
}

interface KeyRow {
  kid: string;
  alg: SigningAlg;
  private_jwk_sealed: string;
  status: 'active' | 'retiring';
  retire_after: Date | string | null;
  signs_from: Date | string;
}

/**
 * The key set to publish and sign with now: per algorithm, the newest key whose time to sign has come signs; every
 * other live key is only published. Retiring keys past their overlap are retired on the way.
 */
export async function loadSigningKeys(ctx: Pick<ServiceContext, 'db' | 'sealer' | 'clock'>): Promise<SigningKeys> {
  const now = ctx.clock.now().getTime();
  const { rows } = await ctx.db.query<KeyRow>(
    `SELECT kid, alg, private_jwk_sealed, status, retire_after, COALESCE(activate_after, created_at) AS signs_from
     FROM oidc_signing_keys WHERE status IN ('active', 'retiring') ORDER BY signs_from DESC, kid`,
  );
  const expired = rows.filter(
    (r) => r.status === 'retiring' && r.retire_after && new Date(r.retire_after).getTime() < now,
  );
  if (expired.length > 0) {
    await ctx.db.query("UPDATE oidc_signing_keys SET status = 'retired' WHERE kid = ANY($1) AND status = 'retiring'", [
      expired.map((r) => r.kid),
    ]);
  }
  const live = rows.filter((r) => !expired.includes(r));
  const signing = new Set<KeyRow>();
  for (const alg of SIGNING_ALGS) {
    const ofAlg = live.filter((r) => r.alg === alg);
    // Newest first; a node whose clock is behind every key's start still signs, with the oldest one.
    const key = ofAlg.find((r) => new Date(r.signs_from).getTime() <= now) ?? ofAlg.at(-1);
    if (key) signing.add(key);
  }
  const ordered = [...signing, ...live.filter((r) => !signing.has(r))];
  return {
    jwks: ordered.map((r) => JSON.parse(ctx.sealer.open(r.private_jwk_sealed, PURPOSE).toString()) as JsonWebKey),
    signing: [...signing].map((r) => r.kid),
    version: ordered.map((r) => `${r.kid}:${signing.has(r) ? 'signs' : 'published'}`).join(','),
  };
}
