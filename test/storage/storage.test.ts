import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { listMigrations, migrate, migrationStatus, splitStatements } from '../../src/storage/migrate.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';

let t: TestDatabase;
before(async () => {
  t = await createTestDatabase();
  await t.db.exec(
    'CREATE TABLE counters (id int PRIMARY KEY, value int NOT NULL); INSERT INTO counters VALUES (1, 0), (2, 0)',
  );
  await t.db.exec(
    'CREATE TABLE ledger (id serial PRIMARY KEY, tx int NOT NULL, step int NOT NULL, value int NOT NULL)',
  );
});
after(() => t.close());

test(`[${backend}] migrations are applied once and re-running them changes nothing`, async () => {
  const status = await migrationStatus(t.db);
  assert.deepEqual(status.pending, []);
  assert.deepEqual(
    status.applied,
    listMigrations().map((m) => m.version),
  );
  const again = await migrate(t.db);
  assert.equal(again.applied.length, 0);
});

test(`[${backend}] 60 concurrent transactions contending for the same rows neither interleave nor lose updates`, async () => {
  const N = 60;
  await Promise.all(
    Array.from({ length: N }, (_, i) =>
      t.db.transaction(async (tx) => {
        // read-modify-write on two shared rows, with a pause in the middle to invite interleaving
        const a = await tx.query<{ value: number }>('SELECT value FROM counters WHERE id = 1 FOR UPDATE');
        await new Promise((r) => setTimeout(r, 1));
        await tx.query('INSERT INTO ledger (tx, step, value) VALUES ($1, 1, $2)', [i, a.rows[0]!.value]);
        await tx.query('UPDATE counters SET value = $1 WHERE id = 1', [a.rows[0]!.value + 1]);
        const b = await tx.query<{ value: number }>('SELECT value FROM counters WHERE id = 2 FOR UPDATE');
        await tx.query('UPDATE counters SET value = $1 WHERE id = 2', [b.rows[0]!.value + 2]);
        await tx.query('INSERT INTO ledger (tx, step, value) VALUES ($1, 2, $2)', [i, a.rows[0]!.value]);
      }),
    ),
  );
  const { rows } = await t.db.query<{ id: number; value: number }>('SELECT id, value FROM counters ORDER BY id');
  assert.deepEqual(
    rows.map((r) => r.value),
    [N, 2 * N],
  );
  // every transaction saw a distinct value of the counter: no two read the same state
  const seen = await t.db.query<{ value: number }>('SELECT value FROM ledger WHERE step = 1 ORDER BY value');
  assert.deepEqual(
    seen.rows.map((r) => r.value),
    Array.from({ length: N }, (_, i) => i),
  );
});

test(`[${backend}] a transaction that throws leaves nothing behind`, async () => {
  await assert.rejects(
    t.db.transaction(async (tx) => {
      await tx.query('UPDATE counters SET value = -1 WHERE id = 1');
      throw new Error('boom');
    }),
    /boom/,
  );
  const { rows } = await t.db.query<{ value: number }>('SELECT value FROM counters WHERE id = 1');
  assert.notEqual(rows[0]!.value, -1);
});

test(`[${backend}] queries outside transactions run while transactions are open`, async () => {
  const results = await Promise.all([
    t.db.transaction(async (tx) => (await tx.query<{ n: number }>('SELECT 1 AS n')).rows[0]!.n),
    t.db.query<{ n: number }>('SELECT 2 AS n').then((r) => r.rows[0]!.n),
  ]);
  assert.deepEqual(results, [1, 2]);
});

test('the migration splitter understands comments, quotes and dollar-quoted bodies', () => {
  const parts = splitStatements(`-- a; comment
CREATE TABLE a (x text DEFAULT 'a;b'); CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END; $$;
SELECT 1`);
  assert.equal(parts.length, 3);
  assert.match(parts[1]!, /RETURN 1; END; \$\$$/);
});
