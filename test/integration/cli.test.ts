import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Database } from '../../src/storage/database.ts';
import { openPglite } from '../../src/storage/pglite.ts';
import { openPostgres } from '../../src/storage/postgres.ts';
import { cliEnvFor, runOpencis } from '../support/cli.ts';
import { backend, createTestDatabase, POSTGRES_URL, type TestDatabase } from '../support/db.ts';

let t: TestDatabase | null = null;
let env: Record<string, string>;

before(async () => {
  if (backend === 'postgres') t = await createTestDatabase();
  env = cliEnvFor(t);
});
after(async () => {
  await t?.close();
});

/** Opens the same database the child process uses, in this process (the child must have exited for PGlite). */
async function openShared(): Promise<Database> {
  if (backend === 'postgres') return openPostgres({ url: POSTGRES_URL, schema: t!.schema });
  return openPglite({ dataDir: env.DATA_DIR });
}

test(`[${backend}] seed --demo, then audit verify passes; altering one stored event makes it name that event and exit 1`, async () => {
  const seeded = await runOpencis(['seed', '--demo'], env);
  assert.equal(seeded.code, 0, seeded.stderr);
  assert.match(seeded.stdout, /Seeded demo data/);
  assert.match(seeded.stdout, /\d{12} {2}Zoë Nguyễn \(7 role profiles\)/);
  const again = await runOpencis(['seed', '--demo'], env);
  assert.equal(again.code, 0);
  assert.match(again.stdout, /already there/);

  const ok = await runOpencis(['audit', 'verify'], env);
  assert.equal(ok.code, 0, ok.stderr);
  const events = Number(/verified: (\d+) events/.exec(ok.stdout)?.[1]);
  assert.ok(events > 20, ok.stdout);

  // An attacker with database rights disables the append-only trigger and rewrites history.
  const db = await openShared();
  try {
    await db.exec('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
    await db.query(`UPDATE audit_events SET after = jsonb_set(after, '{familyName}', '"Tampered"') WHERE seq = (
      SELECT min(seq) FROM audit_events WHERE action = 'person.registered')`);
  } finally {
    await db.close();
  }
  const broken = await runOpencis(['audit', 'verify'], env);
  assert.equal(broken.code, 1);
  assert.match(broken.stderr, /Audit chain BROKEN at event \d+ \(hash_mismatch\): person\.registered on person \d{12}/);
});

test(`[${backend}] the append-only trigger refuses updates and deletes of audit events`, async () => {
  const db = await openShared();
  try {
    await db.exec('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update');
    await assert.rejects(db.query('DELETE FROM audit_events WHERE seq = 1'), /append-only/);
    await assert.rejects(db.query("UPDATE audit_events SET actor = 'x' WHERE seq = 1"), /append-only/);
  } finally {
    await db.close();
  }
});

test(`[${backend}] migrate --status lists applied migrations`, async () => {
  const res = await runOpencis(['migrate', '--status'], env);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /applied: 1/);
  assert.match(res.stdout, /pending: none/);
});

test(`[${backend}] rbac load refuses an invalid catalogue file and loads nothing`, async () => {
  const res = await runOpencis(['rbac', 'load', 'package.json'], env);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /rbac\.catalogue_invalid/);
  const missing = await runOpencis(['rbac', 'load', '/nonexistent/file.json'], env);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /import\.file_not_found/);
});

test('every command has --help, and usage errors exit 2 with a message', async () => {
  const none = await runOpencis([], {});
  assert.equal(none.code, 2);
  assert.match(none.stdout, /Usage: opencis <command>/);
  for (const cmd of ['serve', 'migrate', 'seed', 'import', 'audit', 'rbac']) {
    const help = await runOpencis([cmd, '--help'], {});
    assert.equal(help.code, 0, cmd);
    assert.match(help.stdout, new RegExp(`Usage: opencis ${cmd}`), cmd);
  }
  for (const bad of [
    ['nope'],
    ['seed'],
    ['seed', '--synthetic', 'abc'],
    ['seed', '--bogus'],
    ['audit', 'check'],
    ['rbac'],
    ['migrate', 'extra'],
  ]) {
    const res = await runOpencis(bad, {});
    assert.equal(res.code, 2, `${bad.join(' ')}: ${res.stderr}`);
    assert.ok(res.stderr.length > 0);
  }
});

test('a bad setting is reported clearly and exits 2', async () => {
  const res = await runOpencis(['migrate'], { DATABASE_URL: 'mysql://nope', PORT: 'eighty' });
  assert.equal(res.code, 2);
  assert.match(res.stderr, /DATABASE_URL: must be a postgres:\/\/ URL/);
  assert.match(res.stderr, /PORT/);
});
