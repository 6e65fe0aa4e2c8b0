import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { repositoriesOn, unitOfWork } from '../../src/storage/repositories/index.ts';
import { testContext } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';
import { saveTestOrganisations } from '../support/organisations.ts';

/*
 * The repositories (src/storage/repositories/): one suite, run unchanged on PGlite and PostgreSQL (npm test runs the
 * database tests on both). Each aggregate's own statements are tested in its file (repositories-*.test.ts); this
 * file checks what they all stand on: binding to a handle, and the unit of work.
 */
let t: TestDatabase;
before(async () => {
  t = await createTestDatabase();
  await saveTestOrganisations(testContext(t.db));
});
after(() => t.close());

test(`[${backend}] repositories bound to a handle run their statements on it`, async () => {
  const repos = repositoriesOn(t.db);
  assert.equal(repos.handle, t.db);
  assert.deepEqual(await repos.positions.positionsOf('RR8'), []);
  assert.equal(await repos.positions.findPosition('999999'), undefined);
  assert.equal(await repos.accessFacts.loadPersonFacts('555000000001', '2026-11-26'), undefined);
  // CIS1 validation (uncached, kept by catalogue version) and claims (cached a minute) read the same inclusions.
  assert.deepEqual(await repos.accessFacts.activityInclusionsUncached(), await repos.accessFacts.activityInclusions());
});

test(`[${backend}] the unit of work commits what its function did, or nothing when it throws`, async () => {
  const transaction = unitOfWork(t.db);
  const count = async () =>
    (await t.db.query<{ n: number }>("SELECT count(*)::int AS n FROM organisations WHERE ods_code = 'UOW1'")).rows[0]!
      .n;
  await assert.rejects(
    transaction(async (tx) => {
      await tx.handle.query(
        "INSERT INTO organisations (ods_code, name, type, created_at, updated_at) VALUES ('UOW1', 'x', 'other', now(), now())",
      );
      assert.equal((await tx.positions.positionsOf('UOW1')).length, 0, 'the transaction sees its own handle');
      throw new Error('rolled back');
    }),
    /rolled back/,
  );
  assert.equal(await count(), 0);
  await transaction(async (tx) => {
    await tx.handle.query(
      "INSERT INTO organisations (ods_code, name, type, created_at, updated_at) VALUES ('UOW1', 'x', 'other', now(), now())",
    );
  });
  assert.equal(await count(), 1);
});
