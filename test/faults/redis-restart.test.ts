import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { HttpError } from '../../bench/load/http.ts';
import {
  assertAuditVerifies,
  assertOutageHandled,
  type FaultCluster,
  faultCluster,
  type RedisServer,
  runLoad,
  sleep,
  startRedis,
} from './support.ts';

/**
 * Redis (the OpenID Connect protocol state: provider sessions, codes, tokens) killed under load and started again
 * EMPTY — the worst case, no persistence. Web sessions (PostgreSQL) survive; relying parties' tokens from before are
 * refused with the protocol's 4xx (the person signs in again, by single sign-on on their web session); during the
 * outage requests are refused, never a loop of 500s; once Redis is back everything works without a restart.
 */
let redis: RedisServer;
let fc: FaultCluster;

before(async () => {
  redis = await startRedis({ persistent: false });
  fc = await faultCluster({ name: 'redis', nodes: 2, basePort: 3330, redisUrl: redis.url });
});
after(async () => {
  await fc?.close();
  await redis?.close();
});

test('Redis lost and restarted empty: web sessions survive, RPs re-authenticate, no 500 loop, back by itself', async () => {
  const { flows } = fc;
  const earlier = [];
  for (let i = 0; i < 4; i++) earlier.push((await flows.signIn('card')).tokens);
  await flows.raSearch();

  const ops = [
    { kind: 'sign-in (card)', rate: () => 2.5, run: async () => (await flows.signIn('card')) && 'sign-in' },
    {
      kind: 'RA search',
      rate: () => 1,
      run: async () => {
        await flows.raSearch();
        return 'RA search';
      },
    },
  ];
  const load = runLoad(fc, ops, 22);
  await sleep(5_000);
  const down = performance.now();
  await redis.stop('SIGKILL');
  await sleep(3_000);
  await redis.start();
  const up = performance.now();
  const result = await load;
  assertOutageHandled(result, 'Redis down', down, up);

  // Web sessions are in PostgreSQL: the RA signed in before is still signed in (no sign-in in between: same browser).
  await flows.raSearch();

  // Tokens from before are gone with Redis: refused with the protocol's answer (sign in again), not a server error.
  for (const t of earlier) {
    const err = await flows.userinfo(t.accessToken).then(
      () => null,
      (e: unknown) => e,
    );
    if (err === null) continue; // (a token issued after… cannot be: they were all issued before)
    assert.ok(err instanceof HttpError, String(err));
    assert.equal(err.status, 401, `userinfo with a lost token: ${err.message}`);
  }

  await assertAuditVerifies(fc);
});
