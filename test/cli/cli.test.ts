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
  const events = Number(/verified: (\d+) events in 32 lanes, tips [0-9a-f]{64}/.exec(ok.stdout)?.[1]);
  assert.ok(events > 20, ok.stdout);
  assert.match(ok.stdout, /No seal yet/);

  // An attacker with database rights disables the append-only trigger and rewrites history.
  const db = await openShared();
  let original: unknown;
  try {
    const lanes = await db.query<{ n: string }>('SELECT count(DISTINCT lane)::text AS n FROM audit_events');
    assert.ok(Number(lanes.rows[0]!.n) > 1, 'the demo data is spread over several lanes');
    original = (
      await db.query<{ after: unknown }>(
        "SELECT after FROM audit_events WHERE seq = (SELECT min(seq) FROM audit_events WHERE action = 'person.registered')",
      )
    ).rows[0]!.after;
    await db.exec('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
    await db.query(`UPDATE audit_events SET after = jsonb_set(after, '{familyName}', '"Tampered"') WHERE seq = (
      SELECT min(seq) FROM audit_events WHERE action = 'person.registered')`);
  } finally {
    await db.close();
  }
  const broken = await runOpencis(['audit', 'verify'], env);
  assert.equal(broken.code, 1);
  assert.match(
    broken.stderr,
    /Audit chain BROKEN at event \d+ in lane \d+ at position \d+ \(hash_mismatch\): person\.registered on person \d{12}/,
  );

  // Put back exactly as it was, it verifies again.
  const db2 = await openShared();
  try {
    await db2.query(
      "UPDATE audit_events SET after = $1 WHERE seq = (SELECT min(seq) FROM audit_events WHERE action = 'person.registered')",
      [JSON.stringify(original)],
    );
    await db2.exec('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update');
  } finally {
    await db2.close();
  }
  const restored = await runOpencis(['audit', 'verify'], env);
  assert.equal(restored.code, 0, restored.stderr);
});

test(`[${backend}] deleting the newest event of one lane fails verify; rewinding that lane's head too is caught by a seal`, async () => {
  const sealed = await runOpencis(['audit', 'seal'], env);
  assert.equal(sealed.code, 0, sealed.stderr);
  const sealHash = /Audit sealed: seal 1 at \S+, hash ([0-9a-f]{64})/.exec(sealed.stdout)?.[1];
  assert.ok(sealHash, sealed.stdout);
  const ok = await runOpencis(['audit', 'verify'], env);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`Last seal 1 at \\S+: ${sealHash}`));

  const db = await openShared();
  let lane: number;
  let tip: number;
  try {
    // The lane with most events, so one remains before the cut.
    const { rows } = await db.query<{ lane: number; lane_seq: string }>(
      'SELECT lane, lane_seq FROM audit_lanes ORDER BY lane_seq DESC, lane LIMIT 1',
    );
    lane = Number(rows[0]!.lane);
    tip = Number(rows[0]!.lane_seq);
    assert.ok(tip >= 2);
    await db.exec('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
    const deleted = await db.query('DELETE FROM audit_events WHERE lane = $1 AND coalesce(lane_seq, seq) = $2', [
      lane,
      tip,
    ]);
    assert.equal(deleted.rowCount, 1);
  } finally {
    await db.close();
  }
  const cut = await runOpencis(['audit', 'verify'], env);
  assert.equal(cut.code, 1);
  assert.match(cut.stderr, new RegExp(`BROKEN at lane ${lane} at position ${tip} \\(missing_events_at_tail\\)`));

  // Covering the tracks: the lane's head rewound to the event before. The lane is self-consistent again, but the
  // seal saw it reach further.
  const db2 = await openShared();
  try {
    await db2.query(
      `UPDATE audit_lanes SET lane_seq = $2, hash = (
         SELECT hash FROM audit_events WHERE lane = $1 AND coalesce(lane_seq, seq) = $2) WHERE lane = $1`,
      [lane, tip - 1],
    );
  } finally {
    await db2.close();
  }
  const rewound = await runOpencis(['audit', 'verify'], env);
  assert.equal(rewound.code, 1);
  assert.match(rewound.stderr, new RegExp(`BROKEN at lane ${lane} at position ${tip} \\(sealed_events_missing\\)`));
});

test(`[${backend}] the append-only triggers refuse updates and deletes of audit events and seals`, async () => {
  const db = await openShared();
  try {
    await db.exec('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update');
    await assert.rejects(db.query('DELETE FROM audit_events WHERE seq = 1'), /append-only/);
    await assert.rejects(db.query("UPDATE audit_events SET actor = 'x' WHERE seq = 1"), /append-only/);
    await assert.rejects(db.query('DELETE FROM audit_seals WHERE id = 1'), /append-only/);
    await assert.rejects(db.query("UPDATE audit_seals SET hash = 'x' WHERE id = 1"), /append-only/);
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

test(`[${backend}] serve refuses bad notification settings before it starts, naming the variable`, async () => {
  const noHost = await runOpencis(['serve'], { ...env, NOTIFICATIONS_TRANSPORT: 'smtp', SMTP_FROM: 'a@b.nhs.uk' });
  assert.equal(noHost.code, 2);
  assert.match(noHost.stderr, /SMTP_HOST: required with NOTIFICATIONS_TRANSPORT=smtp/);
  const noCa = await runOpencis(['serve'], {
    ...env,
    NOTIFICATIONS_TRANSPORT: 'smtp',
    SMTP_HOST: 'mail.example.nhs.uk',
    SMTP_FROM: 'a@b.nhs.uk',
    SMTP_CA_FILE: '/nonexistent/ca.pem',
  });
  assert.equal(noCa.code, 2);
  assert.match(noCa.stderr, /SMTP_CA_FILE: cannot be read/);
  const badKey = await runOpencis(['serve'], { ...env, NOTIFICATIONS_TRANSPORT: 'notify', NOTIFY_API_KEY: 'x' });
  assert.equal(badKey.code, 2);
  assert.match(badKey.stderr, /NOTIFY_API_KEY: must be a GOV.UK Notify API key/);
});
