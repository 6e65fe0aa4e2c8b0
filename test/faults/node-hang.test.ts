import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  type Acknowledged,
  assertAcknowledgedWritesKept,
  assertAuditVerifies,
  errorSummary,
  type FaultCluster,
  faultCluster,
  loadWithWrites,
  log,
  type RedisServer,
  runLoad,
  sleep,
  startRedis,
} from './support.ts';

/**
 * The load balancer losing a node that has not died: one node of three stops answering (SIGSTOP: its connections stay
 * open, nothing comes back, as with a node cut off by the network or stalled). HAProxy's health checks take it out;
 * requests already sent to it fail (never a 500, never a wrong answer); nothing acknowledged is lost; the others carry
 * the load; when it answers again (SIGCONT) it rejoins by itself. No timing is asserted: only what happened.
 */
let redis: RedisServer;
let fc: FaultCluster;

before(async () => {
  redis = await startRedis({ persistent: true });
  fc = await faultCluster({ name: 'nodehang', nodes: 3, basePort: 3400, redisUrl: redis.url });
});
after(async () => {
  for (const n of fc?.cluster.nodes ?? []) n.proc?.kill('SIGCONT');
  await fc?.close();
  await redis?.close();
});

test('the load balancer loses a node (it stops answering, SIGSTOP) under load: taken out, nothing acknowledged lost, back by itself', async () => {
  const { flows, cluster } = fc;
  const victim = cluster.nodes[2]!;
  const earlier = [];
  for (let i = 0; i < 3; i++) earlier.push((await flows.signIn('card')).tokens);

  const acks: Acknowledged = { registered: [], refused: new Map() };
  const load = runLoad(fc, loadWithWrites(flows, 3, 2, acks), 12);
  await sleep(4_000);
  victim.proc!.kill('SIGSTOP');
  log(`stopped ${victim.name} (SIGSTOP)`);
  // HAProxy's health checks find it silent and take it out.
  await cluster.waitBalanced(2, 120);
  const result = await load;
  log(`load: ${result.recorder.totalOk} ok, ${result.recorder.totalErrors} errors (${errorSummary(result)})`);
  assert.ok(result.recorder.totalOk > 10, 'the other nodes carried the load');
  for (const [reason] of result.recorder.errorReasons()) {
    assert.doesNotMatch(reason, /HTTP 500/, 'no 500s');
  }

  // With the node out, nothing fails.
  const during = await runLoad(fc, loadWithWrites(flows, 3, 1, acks), 4);
  assert.equal(during.recorder.totalErrors, 0, errorSummary(during));
  for (const t of earlier) assert.equal(await flows.userinfo(t.accessToken), true);

  // It answers again and rejoins, with no restart; still nothing fails and nothing acknowledged is lost.
  victim.proc!.kill('SIGCONT');
  await cluster.waitBalanced(3, 120);
  const afterwards = await runLoad(fc, loadWithWrites(flows, 3, 1, acks), 4);
  assert.equal(afterwards.recorder.totalErrors, 0, errorSummary(afterwards));
  await assertAcknowledgedWritesKept(fc, acks);
  await assertAuditVerifies(fc);
});
