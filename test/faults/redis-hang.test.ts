import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
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
 * Redis HANGING under load — its process stopped (SIGSTOP): connections stay open, nothing answers, which is worse for
 * a client than a refused connection (a request could wait forever). The nodes give up on a command after 2 s
 * (`commandTimeout`), so requests are refused with a clear 503 and never hang or 500; when Redis answers again
 * (SIGCONT), everything works without a restart, and nothing Redis held was lost: relying parties' tokens from before
 * still work.
 */
let redis: RedisServer;
let fc: FaultCluster;

before(async () => {
  redis = await startRedis({ persistent: false });
  fc = await faultCluster({ name: 'redishang', nodes: 2, basePort: 3390, redisUrl: redis.url });
});
after(async () => {
  redis?.proc.kill('SIGCONT');
  await fc?.close();
  await redis?.close();
});

test('Redis hanging (SIGSTOP) under load: 503s within seconds, never a hang or a 500; back by itself, nothing lost', async () => {
  const { flows } = fc;
  const earlier = [];
  for (let i = 0; i < 3; i++) earlier.push((await flows.signIn('card')).tokens);

  const ops = [
    { kind: 'sign-in (card)', rate: () => 2.5, run: async () => (await flows.signIn('card')) && 'sign-in' },
    { kind: 'userinfo', rate: () => 2, run: async () => ((await flows.userinfo()) ? 'userinfo' : null) },
  ];
  const load = runLoad(fc, ops, 24);
  await sleep(5_000);
  const hung = performance.now();
  redis.proc.kill('SIGSTOP');
  await sleep(6_000);
  redis.proc.kill('SIGCONT');
  const resumed = performance.now();
  const result = await load;
  assertOutageHandled(result, 'Redis hung', hung, resumed);
  // Refused while it hung, and never a request left waiting (the load generator's own limit is 30 s; a node gives up
  // on Redis after 2 s).
  const reasons = result.recorder.errorReasons().map(([r]) => r);
  assert.ok(reasons.length > 0, 'requests needing Redis were refused while it hung');
  // (A request left waiting would have failed with the load generator's timeout, not a 503: assertOutageHandled.)

  // Nothing Redis held was lost: the tokens issued before the hang still work.
  for (const t of earlier) assert.ok(await flows.userinfo(t.accessToken));
  await assertAuditVerifies(fc);
});
