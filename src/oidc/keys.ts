import { generateKeyPairSync, type JsonWebKey, randomBytes } from 'node:crypto';
import { AppError } from '../domain/errors.ts';
import { authorize } from '../domain/policy.ts';
import { appendAudit } from '../services/audit.ts';
import type { ServiceContext } from '../services/context.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import type { LiveSigningKey } from '../storage/repositories/oidc-keys.ts';

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

async function insertKey(
  tx: Repositories,
  ctx: ServiceContext,
  alg: SigningAlg,
  signsFrom: Date | null,
): Promise<string> {
  const key = newKey(alg);
  await tx.oidcKeys.insertSigningKey({
    kid: key.kid,
    alg,
    publicJwk: key.publicJwk,
    privateJwkSealed: ctx.sealer.seal(JSON.stringify(key.privateJwk), PURPOSE),
    at: ctx.clock.now(),
    activateAfter: signsFrom,
  });
  return key.kid;
}

/** Makes sure one active key of each algorithm exists (first start); two nodes starting at once create one set. */
export async function ensureSigningKeys(ctx: ServiceContext): Promise<void> {
  await ctx.transaction(async (tx) => {
    await tx.oidcKeys.lockKeyRing();
    const have = new Set(await tx.oidcKeys.activeAlgorithms());
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
  return ctx.transaction(async (tx) => {
    await tx.oidcKeys.lockKeyRing();
    const now = ctx.clock.now();
    const signsFrom = new Date(now.getTime() + publishSeconds * 1000);
    // A node may go on signing with an old key until its first reload after signsFrom.
    const retiringUntil = new Date(signsFrom.getTime() + (KEY_RELOAD_SECONDS + overlapSeconds) * 1000);
    const old = await tx.oidcKeys.retireActiveKeys(retiringUntil);
    // With no key to replace (a database without keys yet), there is nothing to wait for.
    const from = old.length > 0 ? signsFrom : now;
    const active: string[] = [];
    for (const alg of SIGNING_ALGS) active.push(await insertKey(tx, ctx, alg, from));
    await appendAudit(tx, ctx, {
      action: 'oidc.signing_keys_rotated',
      targetType: 'oidc_signing_keys',
      targetId: null,
      before: { active: old },
      after: { active, signsFrom: from.toISOString(), retiringUntil: retiringUntil.toISOString() },
    });
    return { active, retiring: old, signsFrom: from, retiringUntil };
  });
}

/**
 * The key set to publish and sign with now: per algorithm, the newest key whose time to sign has come signs; every
 * other live key is only published. Retiring keys past their overlap are retired on the way.
 */
export async function loadSigningKeys(ctx: Pick<ServiceContext, 'repos' | 'sealer' | 'clock'>): Promise<SigningKeys> {
  const now = ctx.clock.now().getTime();
  const rows = await ctx.repos.oidcKeys.liveSigningKeys();
  const expired = rows.filter((r) => r.status === 'retiring' && r.retireAfter && r.retireAfter.getTime() < now);
  if (expired.length > 0) {
    await ctx.repos.oidcKeys.markKeysRetired(expired.map((r) => r.kid));
  }
  const live = rows.filter((r) => !expired.includes(r));
  const signing = new Set<LiveSigningKey>();
  for (const alg of SIGNING_ALGS) {
    const ofAlg = live.filter((r) => r.alg === alg);
    // Newest first; a node whose clock is behind every key's start still signs, with the oldest one.
    const key = ofAlg.find((r) => r.signsFrom.getTime() <= now) ?? ofAlg.at(-1);
    if (key) signing.add(key);
  }
  const ordered = [...signing, ...live.filter((r) => !signing.has(r))];
  return {
    jwks: ordered.map((r) => JSON.parse(ctx.sealer.open(r.privateJwkSealed, PURPOSE).toString()) as JsonWebKey),
    signing: [...signing].map((r) => r.kid),
    version: ordered.map((r) => `${r.kid}:${signing.has(r) ? 'signs' : 'published'}`).join(','),
  };
}
