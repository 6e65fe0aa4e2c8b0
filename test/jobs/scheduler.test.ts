import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { endRoleProfilesPastEndDate, standardJobs, vacuumEmbeddedDatabase } from '../../src/jobs/jobs.ts';
import { registerJobs, startScheduler } from '../../src/jobs/scheduler.ts';
import { assignRoleProfile, createPosition, effectiveRoles } from '../../src/services/access.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { TestClock, testContext } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';
import { recordingOutbox } from '../support/outbox.ts';

let t: TestDatabase;
before(async () => {
  t = await createTestDatabase();
});
after(() => t.close());

test(`[${backend}] a job runs exactly once per period across several nodes ticking at once`, async () => {
  let runs = 0;
  const job = {
    name: 'count',
    everySeconds: 3_600,
    run: async () => {
      runs++;
      await new Promise((r) => setTimeout(r, 20));
      return runs;
    },
  };
  await registerJobs(t.db, [job]);
  const nodes = ['node-a', 'node-b', 'node-c'].map((nodeId) =>
    startScheduler(t.db, [job], { nodeId, autoStart: false }),
  );
  const ran = await Promise.all(nodes.flatMap((n) => [n.tick(), n.tick()]));
  assert.equal(runs, 1);
  assert.equal(ran.flat().length, 1);
  // Not due again within the period.
  await Promise.all(nodes.map((n) => n.tick()));
  assert.equal(runs, 1);
  // Due again once its time comes (here: moved by hand).
  await t.db.query("UPDATE scheduled_jobs SET next_run_at = now() - interval '1 second' WHERE name = 'count'");
  await Promise.all(nodes.map((n) => n.tick()));
  assert.equal(runs, 2);
  const { rows } = await t.db.query<{ runs: string; last_result: string }>(
    "SELECT runs::text, last_result FROM scheduled_jobs WHERE name = 'count'",
  );
  assert.deepEqual(rows[0], { runs: '2', last_result: '2' });
});

test(`[${backend}] a node that died mid-run frees its job when the lease ends`, async () => {
  await registerJobs(t.db, [{ name: 'stuck', everySeconds: 60, run: async () => 'x' }]);
  await t.db.query(
    "UPDATE scheduled_jobs SET leased_by = 'dead', lease_until = now() + interval '1 hour', next_run_at = now() - interval '1 second' WHERE name = 'stuck'",
  );
  let ran = 0;
  const live = startScheduler(t.db, [{ name: 'stuck', everySeconds: 60, run: async () => void ran++ }], {
    nodeId: 'alive',
    autoStart: false,
  });
  await live.tick();
  assert.equal(ran, 0, 'leased by a node that may still be running');
  await t.db.query("UPDATE scheduled_jobs SET lease_until = now() - interval '1 second' WHERE name = 'stuck'");
  await live.tick();
  assert.equal(ran, 1);
});

test(`[${backend}] role profiles past their end date are ended by the job and their sessions asked to end`, async () => {
  const clock = new TestClock(new Date('2026-11-26T09:00:00Z'));
  const ctx = testContext(t.db, { clock });
  await saveOrganisation(ctx, { odsCode: 'RX1', name: 'Trust', type: 'trust' });
  const pos = await createPosition(ctx, 'RX1', { name: 'Locum', jobRoles: ['R8000'] });
  const p = await registerPerson(ctx, { givenName: 'Lo', familyName: 'Cum', dateOfBirth: '1970-01-01' });
  await assignRoleProfile(ctx, {
    userId: p.userId,
    positionId: pos.positionId,
    startDate: '2026-11-01',
    endDate: '2026-11-26',
  });
  assert.equal(await endRoleProfilesPastEndDate(ctx), 0);
  clock.set('2026-11-27T09:00:00Z');
  assert.equal((await effectiveRoles(t.repos, p.userId, clock.now())).length, 0, 'already not effective by date');
  assert.equal(await endRoleProfilesPastEndDate(ctx), 1);
  const { rows } = await t.db.query<{ reason: string }>('SELECT reason FROM session_end_events WHERE user_id = $1', [
    p.userId,
  ]);
  assert.deepEqual(
    rows.map((r) => r.reason),
    ['role_ended'],
  );
});

test(`[${backend}] the embedded database is vacuumed and analysed by a job (PGlite has no autovacuum); PostgreSQL has its own`, async () => {
  const names = standardJobs(t.db, testContext(t.db), recordingOutbox(t.db).outbox, 'http://localhost').map(
    (j) => j.name,
  );
  assert.equal(names.includes('embedded-vacuum'), backend === 'pglite');
  if (backend !== 'pglite') return;
  await t.db.exec(`CREATE TABLE churn (id int PRIMARY KEY, v text);
    INSERT INTO churn SELECT g, g::text FROM generate_series(1, 2000) g;
    UPDATE churn SET v = v || 'x'; DELETE FROM churn WHERE id % 2 = 0;`);
  // Statistics are flushed to the shared counters when the backend goes idle, at most once a second (PostgreSQL 15+):
  // without forcing it, whether the counts above are in yet depends on how long ago the last flush was.
  await t.db.query('SELECT pg_stat_force_next_flush()');
  const ms = await vacuumEmbeddedDatabase(t.db);
  assert.ok(ms >= 0);
  // reltuples is what VACUUM (ANALYZE) itself counted; n_live_tup comes from the statistics the DELETE's backend sends
  // at most once a second, so under load it may still say 2000.
  const { rows } = await t.db.query<{ vacuumed: boolean; analysed: boolean; live: string }>(
    `SELECT s.last_vacuum IS NOT NULL AS vacuumed, s.last_analyze IS NOT NULL AS analysed, c.reltuples::int::text AS live
     FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid WHERE s.relname = 'churn'`,
  );
  assert.deepEqual(rows[0], { vacuumed: true, analysed: true, live: '1000' });
});
