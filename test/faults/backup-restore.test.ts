import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import pg from 'pg';
import { Flows } from '../../bench/load/flows.ts';
import { HttpClient } from '../../bench/load/http.ts';
import { startCluster } from '../../scripts/cluster/cluster.ts';
import {
  type Acknowledged,
  assertAuditVerifies,
  auditVerify,
  createDatabase,
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

const run = promisify(execFile);

/**
 * Backup and restore of a live system, as docs/operations.md describes it: `pg_dump -Fc` of the OpenCIS schema while
 * the cluster is under load (writes included), `pg_restore` into another database, `opencis audit verify` on the
 * copy, then a node started on the copy (same SECRETS_KEY) where people sign in — a smartcard sign-in through a whole
 * OpenID Connect flow, and an authenticator-app sign-in.
 */
let redis: RedisServer;
let fc: FaultCluster;
const work = mkdtempSync(join(tmpdir(), 'opencis-backup-'));

before(async () => {
  redis = await startRedis({ persistent: false });
  fc = await faultCluster({ name: 'backup', nodes: 2, basePort: 3350, redisUrl: redis.url });
});
after(async () => {
  await fc?.close();
  await redis?.close();
  rmSync(work, { recursive: true, force: true });
});

test('pg_dump of a live system restores into a working copy: audit chain verifies, people sign in', async () => {
  const { flows, cluster } = fc;
  const acks: Acknowledged = { registered: [], refused: new Map() };
  const load = runLoad(fc, loadWithWrites(flows, 2, 2, acks), 12);
  await sleep(5_000);

  // The backup, while the load writes.
  const dump = join(work, 'opencis.dump');
  const acknowledgedBeforeDump = [...acks.registered];
  const t0 = performance.now();
  await run('pg_dump', [
    '--format=custom',
    '--schema=opencis',
    '--no-owner',
    '--no-privileges',
    `--file=${dump}`,
    fc.db.url,
  ]);
  log(`pg_dump of the live schema: ${((performance.now() - t0) / 1000).toFixed(1)} s, ${statSync(dump).size} bytes`);
  const result = await load;
  log(
    `load during the backup: ${result.recorder.totalOk} ok, ${result.recorder.totalErrors} errors ${errorSummary(result)}`,
  );
  assert.equal(result.recorder.totalErrors, 0, 'the backup does not disturb the service');
  await assertAuditVerifies(fc);

  // The restore, into another database.
  const restored = await createDatabase('f_restored');
  try {
    await run('pg_restore', ['--no-owner', '--no-privileges', '--exit-on-error', `--dbname=${restored.url}`, dump]);
    const verify = await auditVerify({
      DATABASE_URL: restored.url,
      DATABASE_SCHEMA: 'opencis',
      SECRETS_KEY: fc.cluster.secretsKey,
    });
    log(`restored copy: ${verify.stdout.trim()}`);
    assert.equal(verify.code, 0, `audit verify on the restored copy: ${verify.stdout}${verify.stderr}`);

    // Everything acknowledged before the backup began is in it.
    const c = new pg.Client({ connectionString: restored.url });
    await c.connect();
    try {
      const { rows } = await c.query<{ user_id: string }>(
        'SELECT user_id FROM opencis.people WHERE user_id = ANY($1)',
        [acknowledgedBeforeDump],
      );
      assert.equal(rows.length, acknowledgedBeforeDump.length, 'registrations acknowledged before the dump are in it');
    } finally {
      await c.end();
    }

    // A node on the restored copy (same secrets key: the CA key, TOTP seeds and client secrets are sealed with it).
    const copy = await startCluster({
      nodes: 1,
      basePort: 3360,
      databaseUrl: restored.url,
      schema: 'opencis',
      redisUrl: null,
      stateDir: cluster.stateDir,
      log,
    });
    const http = new HttpClient(32);
    try {
      // The card signs a message bound to the origin of the server it signs in to: the copy's address.
      const population = { ...fc.population, publicUrl: copy.publicUrl };
      const onCopy = new Flows(http, await Flows.discover(http, copy.lbUrl, population), population);
      const card = await onCopy.signIn('card');
      assert.equal(card.method, 'card');
      assert.ok(card.tokens.accessToken);
      const app = await onCopy.signIn('totp');
      assert.equal(app.method, 'totp', 'an authenticator-app sign-in (its seed was restored, sealed)');
      await onCopy.raSearch();
    } finally {
      http.close();
      await copy.stop();
    }
  } finally {
    await restored.drop();
  }
});
