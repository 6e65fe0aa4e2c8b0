import assert from 'node:assert/strict';
import { createPublicKey, verify as verifySignature } from 'node:crypto';
import { after, before, test } from 'node:test';
import { rotateSigningKeys } from '../../src/oidc/keys.ts';
import { createSealer } from '../../src/secrets/sealer.ts';
import { systemClock } from '../../src/services/context.ts';
import { openPostgres } from '../../src/storage/postgres.ts';
import {
  assertAuditVerifies,
  type FaultCluster,
  faultCluster,
  log,
  type RedisServer,
  sleep,
  startRedis,
} from './support.ts';

/**
 * OpenID Connect signing keys rotated (`opencis oidc rotate-keys`) while the cluster serves. No downtime means: every
 * ID token a relying party receives verifies against the JWKS it can fetch — from whichever node the load balancer
 * picks — at every moment through the rotation (each node reloads the keys on its own timer, up to a minute apart);
 * and tokens signed before the rotation keep verifying (the old keys stay published for the overlap).
 */
let redis: RedisServer;
let fc: FaultCluster;

before(async () => {
  redis = await startRedis({ persistent: false });
  fc = await faultCluster({ name: 'keys', nodes: 2, basePort: 3370, redisUrl: redis.url, cards: 8 });
});
after(async () => {
  await fc?.close();
  await redis?.close();
});

interface Jwk {
  kid: string;
  kty: string;
  alg?: string;
}

function kidOf(idToken: string): { kid: string; alg: string } {
  return JSON.parse(Buffer.from(idToken.split('.')[0]!, 'base64url').toString()) as { kid: string; alg: string };
}

function verifies(idToken: string, jwk: Jwk): boolean {
  const [h, p, s] = idToken.split('.') as [string, string, string];
  const { alg } = kidOf(idToken);
  const key = createPublicKey({ key: jwk as never, format: 'jwk' });
  const data = Buffer.from(`${h}.${p}`);
  const sig = Buffer.from(s, 'base64url');
  if (alg === 'RS256') return verifySignature('sha256', data, key, sig);
  if (alg === 'ES256') return verifySignature('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
  return verifySignature('sha256', data, { key, padding: 6, saltLength: 32 }, sig);
}

test('signing keys rotated under load: every ID token verifies against the JWKS of every node, throughout', async () => {
  const { flows, cluster, http } = fc;
  const jwksOf = async (base: string): Promise<Jwk[]> => {
    const res = await http.request(`${base}/oidc/connect/jwk_uri`, 'GET');
    assert.equal(res.status, 200);
    return (JSON.parse(res.body) as { keys: Jwk[] }).keys;
  };
  const before = (await flows.signIn('card')).tokens.idToken!;

  // The rotation, as `opencis oidc rotate-keys` does it.
  const db = await openPostgres({ url: fc.db.url, schema: 'opencis', poolSize: 2 });
  try {
    const rotated = await rotateSigningKeys(
      {
        db,
        clock: systemClock,
        actor: { kind: 'operator', id: 'cli:faults@localhost' },
        requestId: null,
        allowExampleNiPrefix: false,
        sealer: createSealer(Buffer.from(cluster.secretsKey, 'base64')),
      },
      3_600,
    );
    log(`rotated: active ${rotated.active.join(' ')}; retiring ${rotated.retiring.join(' ')}`);
  } finally {
    await db.close();
  }

  // For a little over the nodes' reload period: sign in, and check the ID token against each node's JWKS.
  const problems = new Set<string>();
  const newKids = new Set<string>();
  const deadline = performance.now() + 66_000;
  let checks = 0;
  while (performance.now() < deadline) {
    const idToken = (await flows.signIn('card')).tokens.idToken!;
    const { kid } = kidOf(idToken);
    newKids.add(kid);
    for (const node of cluster.nodes) {
      const jwk = (await jwksOf(node.url)).find((k) => k.kid === kid);
      if (!jwk) problems.add(`${node.name}'s JWKS lacks kid ${kid}, which signed an ID token`);
      else if (!verifies(idToken, jwk)) problems.add(`ID token does not verify with ${node.name}'s key ${kid}`);
      // A token signed before the rotation still verifies.
      const old = (await jwksOf(node.url)).find((k) => k.kid === kidOf(before).kid);
      if (!old || !verifies(before, old)) problems.add(`${node.name} no longer publishes the pre-rotation key`);
    }
    checks++;
    await sleep(2_000);
  }
  log(`${checks} sign-ins checked; ID tokens signed with ${[...newKids].join(', ')}`);
  assert.ok(!newKids.has(kidOf(before).kid) || newKids.size > 1, 'the nodes moved to the new keys within a minute');
  await assertAuditVerifies(fc);
  assert.deepEqual([...problems], [], 'relying parties must be able to verify every ID token at every moment');
});
