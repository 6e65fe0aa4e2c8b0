import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPublicKey, verify as verifySignature } from 'node:crypto';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../../scripts/cluster/cluster.ts';
import { KEY_RELOAD_SECONDS } from '../../src/oidc/keys.ts';
import {
  assertAuditVerifies,
  type FaultCluster,
  faultCluster,
  log,
  type RedisServer,
  sleep,
  startRedis,
} from './support.ts';

const run = promisify(execFile);

/**
 * OpenID Connect signing keys rotated (`opencis oidc rotate-keys`) while a three-node cluster serves. No downtime means:
 * every ID token a relying party receives verifies against the JWKS it can fetch — from whichever node — at every
 * moment through the rotation, although each node reloads the keys on its own timer (every KEY_RELOAD_SECONDS, so up
 * to a minute apart); tokens signed before the rotation keep verifying (the old keys stay published for the overlap);
 * and a minute after the new keys' time to sign, every node signs with them.
 */
let redis: RedisServer;
let fc: FaultCluster;
/** Publication before signing: one reload period and a margin (the operator's default is two periods). */
const PUBLISH_SECONDS = KEY_RELOAD_SECONDS + 15;

before(async () => {
  redis = await startRedis({ persistent: false });
  fc = await faultCluster({ name: 'keys', nodes: 3, basePort: 3370, redisUrl: redis.url, cards: 8 });
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
  const oldKid = kidOf(before).kid;

  // The rotation, by the operator's command on the cluster's database.
  const { stdout } = await run(
    process.execPath,
    ['bin/opencis.js', 'oidc', 'rotate-keys', '--publish', String(PUBLISH_SECONDS)],
    {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        ...cluster.envFor(cluster.nodes[0]!),
        LOG_LEVEL: 'silent',
      },
    },
  );
  const rotatedAt = performance.now();
  log(`opencis oidc rotate-keys: ${stdout.trim().replace(/\n/g, ' | ')}`);
  const newKids = new Set(/^new\s+(.+?) \(/m.exec(stdout)?.[1]?.split(' ') ?? []);
  assert.equal(newKids.size, 3, 'a new key of each algorithm');

  // From the rotation until every node must have moved to the new keys (their time to sign + one reload period):
  // sign in, and check the ID token against the JWKS of each node.
  const problems = new Set<string>();
  const seen: { at: number; kid: string }[] = [];
  const deadline = rotatedAt + (PUBLISH_SECONDS + KEY_RELOAD_SECONDS + 22) * 1000;
  while (performance.now() < deadline) {
    const idToken = (await flows.signIn('card')).tokens.idToken!;
    const { kid } = kidOf(idToken);
    const at = (performance.now() - rotatedAt) / 1000;
    seen.push({ at, kid });
    if (newKids.has(kid) && at < PUBLISH_SECONDS - 5)
      problems.add(`a new key signed ${at.toFixed(0)} s after rotation`);
    for (const node of cluster.nodes) {
      const jwks = await jwksOf(node.url);
      const jwk = jwks.find((k) => k.kid === kid);
      if (!jwk) problems.add(`${node.name}'s JWKS lacks kid ${kid}, which signed an ID token`);
      else if (!verifies(idToken, jwk)) problems.add(`ID token does not verify with ${node.name}'s key ${kid}`);
      // A token signed before the rotation still verifies.
      const old = jwks.find((k) => k.kid === oldKid);
      if (!old || !verifies(before, old)) problems.add(`${node.name} no longer publishes the pre-rotation key`);
    }
    await sleep(1_500);
  }
  const switched = seen.find((s) => newKids.has(s.kid));
  log(
    `${seen.length} sign-ins checked over ${seen.at(-1)?.at.toFixed(0)} s; first new kid at ${switched?.at.toFixed(0)} s`,
  );
  assert.deepEqual([...problems], [], 'relying parties must be able to verify every ID token at every moment');
  assert.ok(
    seen.some((s) => s.kid === oldKid && s.at > 5),
    'the old key went on signing while the new one was published',
  );
  // Every node moved: after the last possible reload, only the new keys sign (round-robin over the three nodes).
  const late = seen.filter((s) => s.at > PUBLISH_SECONDS + KEY_RELOAD_SECONDS + 2);
  assert.ok(late.length >= 3, 'sign-ins after every node must have moved');
  assert.deepEqual(
    late.filter((s) => !newKids.has(s.kid)),
    [],
    'every node signs with the new key one reload period after its time to sign',
  );
  await assertAuditVerifies(fc);
});
