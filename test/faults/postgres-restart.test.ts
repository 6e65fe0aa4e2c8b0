import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  type Acknowledged,
  assertAcknowledgedWritesKept,
  assertAuditVerifies,
  errorSeconds,
  errorSummary,
  type FaultCluster,
  faultCluster,
  loadWithWrites,
  log,
  type RedisServer,
  restartPostgres,
  runLoad,
  sleep,
  startRedis,
  waitPostgres,
} from './support.ts';

/**
 * PostgreSQL restarted (pg_ctlcluster … restart: a fast shutdown cutting every connection) under load. While it is
 * down, requests that need it are refused with 503 and the catalogued `service.unavailable` shape (by the node, or by
 * HAProxy once readiness fails) — never a 500; the nodes reconnect by themselves; nothing acknowledged is lost and the
 * audit chain verifies.
 */
let redis: RedisServer;
let fc: FaultCluster;

before(async () => {
  redis = await startRedis({ persistent: true });
  fc = await faultCluster({ name: 'pgrestart', nodes: 2, basePort: 3320, redisUrl: redis.url });
});
after(async () => {
  await fc?.close();
  await redis?.close();
});

test('PostgreSQL restart during load: clear 503s, automatic reconnection, no write lost, audit chain intact', async () => {
  const { flows } = fc;
  const earlier = [];
  for (let i = 0; i < 4; i++) earlier.push((await flows.signIn('card')).tokens);
  await flows.raSearch();

  const acks: Acknowledged = { registered: [], refused: new Map() };
  const load = runLoad(fc, loadWithWrites(flows, 3, 2, acks), 24);
  await sleep(5_000);
  const t0 = performance.now();
  await restartPostgres();
  const restartSeconds = (performance.now() - t0) / 1000;
  await waitPostgres();
  const result = await load;
  const restartSecond = Math.floor((t0 - result.started) / 1000);
  log(`PostgreSQL restart took ${restartSeconds.toFixed(1)} s, at second ${restartSecond}`);
  log(`load: ${result.recorder.totalOk} ok, ${result.recorder.totalErrors} errors (${errorSummary(result)})`);
  log(`errors at seconds ${JSON.stringify(errorSeconds(result))}`);
  log(`registrations acknowledged: ${acks.registered.length}; refused: ${JSON.stringify([...acks.refused])}`);

  // Reconnected by themselves: nothing fails from 10 s after the restart to the end of the run.
  const lastError = Math.max(-1, ...errorSeconds(result));
  assert.ok(lastError <= restartSecond + Math.ceil(restartSeconds) + 10, `errors until second ${lastError}`);
  const afterwards = await runLoad(fc, loadWithWrites(flows, 3, 1, acks), 4);
  assert.equal(afterwards.recorder.totalErrors, 0, errorSummary(afterwards));

  // Sessions and tokens from before survive (web sessions in PostgreSQL, OpenID Connect state in Redis).
  for (const t of earlier) assert.equal(await flows.userinfo(t.accessToken), true);
  await flows.raSearch();

  await assertAcknowledgedWritesKept(fc, acks);
  await assertAuditVerifies(fc);

  // Refusals are clear: 503 (OpenCIS's `service.unavailable`, from a node or HAProxy; the OpenID Connect endpoints may
  // answer in the protocol's own shape, e.g. `temporarily_unavailable`), or a connection cut mid-answer; never a 500.
  for (const [reason] of result.recorder.errorReasons()) {
    assert.match(reason, /HTTP 503|ECONNRESET|socket hang up/, `unexpected failure: ${reason}`);
  }
});
