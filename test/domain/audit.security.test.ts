import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { auditHash, auditKeyring, auditLaneOf, canonicalJson } from '../../src/domain/audit/chain.ts';
import { createSealer } from '../../src/secrets/sealer.ts';
import { type AuditRow, appendAudit, auditEventFromRow } from '../../src/services/audit.ts';
import { sealAudit } from '../../src/services/audit-seal.ts';
import { verifyAuditChain } from '../../src/services/audit-verify.ts';
import type { Database } from '../../src/storage/database.ts';
import { openPglite } from '../../src/storage/pglite.ts';
import { dropPostgresSchema, openPostgres } from '../../src/storage/postgres.ts';
import { repositoriesOn, unitOfWork } from '../../src/storage/repositories/index.ts';
import { cliEnvFor, runOpencis } from '../support/cli.ts';
import { testContext, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, POSTGRES_URL, type TestDatabase } from '../support/db.ts';

/**
 * An attacker with SQL rights on the database (a stolen backup restored and put back, a compromised DBA account, a
 * PostgreSQL exploit) but not the server's keys. They read the published source for how hashes are computed, and
 * rewrite history so that every check still passes: the event, every later event of its lane, the lane's head and
 * every seal.
 */
let t: TestDatabase | undefined;
let db: Database;
const ctx = () => testContext(db, { clock: { now: () => new Date() } });

// Each attack on a database of its own: a rewritten trail stays broken.
beforeEach(async () => {
  t = await createTestDatabase();
  db = t.db;
});
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const sha256 = (prev: string, body: string) =>
  createHash('sha256').update(prev).update('\n').update(body).digest('hex');

async function columnsOf(db: Database, table: string): Promise<Set<string>> {
  const { rows } = await db.query<{ column_name: string }>(
    'SELECT column_name FROM information_schema.columns WHERE table_name = $1 AND table_schema = current_schema()',
    [table],
  );
  return new Set(rows.map((r) => r.column_name));
}

interface Row {
  seq: string;
  lane: number;
  lane_seq: string | null;
  at: Date;
  actor: string;
  action: string;
  target_type: string;
  target_id: string | null;
  before: unknown;
  after: unknown;
  request_id: string | null;
  reason: string | null;
  prev_hash: string;
  hash: string;
}

/** The hash the published code computes for an event without a key: what the attacker can compute. */
function unkeyedHash(r: Row, prevHash: string): string {
  const fields = {
    seq: Number(r.seq),
    at: new Date(r.at).toISOString(),
    actor: r.actor,
    action: r.action,
    targetType: r.target_type,
    targetId: r.target_id,
    before: r.before ?? null,
    after: r.after ?? null,
    requestId: r.request_id,
    reason: r.reason ?? null,
  };
  const body = r.lane_seq === null ? fields : { ...fields, lane: Number(r.lane), laneSeq: Number(r.lane_seq) };
  return sha256(prevHash, canonicalJson(body));
}

/**
 * Rewrites event `seq` with `edit`, re-hashes it and every later event in its lane, moves the lane's head, and
 * re-computes every seal — turning any key column back to "none" (the form events from before keys had), since that
 * is the form the attacker can compute; or, with `keepKeyIds`, leaving the key ids as they were.
 */
async function rewriteHistory(
  db: Database,
  seq: number,
  edit: (after: Record<string, unknown>) => Record<string, unknown>,
  options: { keepKeyIds?: boolean; seals?: boolean } = {},
) {
  const strip = (columns: Set<string>) => (columns.has('key_id') && !options.keepKeyIds ? ', key_id = NULL' : '');
  const eventColumns = await columnsOf(db, 'audit_events');
  const sealColumns = await columnsOf(db, 'audit_seals');
  await db.exec('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
  await db.exec('ALTER TABLE audit_seals DISABLE TRIGGER audit_seals_no_update');
  const target = (await db.query<Row>('SELECT * FROM audit_events WHERE seq = $1', [seq])).rows[0]!;
  const lane = Number(target.lane);
  const { rows } = await db.query<Row>('SELECT * FROM audit_events WHERE lane = $1 ORDER BY coalesce(lane_seq, seq)', [
    lane,
  ]);
  const rewritten = new Map<number, string>(); // lane position → new hash
  let prev: string | null = null;
  for (const r of rows) {
    const position = Number(r.lane_seq ?? r.seq);
    if (prev === null && Number(r.seq) !== seq) continue;
    if (prev === null) {
      prev = r.prev_hash;
      r.after = edit(r.after as Record<string, unknown>);
    }
    const hash = unkeyedHash(r, prev);
    await db.query(
      `UPDATE audit_events SET after = $2, prev_hash = $3, hash = $4${strip(eventColumns)} WHERE seq = $1`,
      [r.seq, JSON.stringify(r.after), prev, hash],
    );
    rewritten.set(position, hash);
    prev = hash;
  }
  await db.query('UPDATE audit_lanes SET hash = $2 WHERE lane = $1', [lane, prev]);
  if (options.seals === false) return;

  const seals = await db.query<{ id: string; at: Date; tips: [number, string][] }>(
    'SELECT id, at, tips FROM audit_seals ORDER BY id',
  );
  let prevSeal = '0'.repeat(64);
  for (const s of seals.rows) {
    const tips = s.tips.map(([position, hash], l) => [position, l === lane ? (rewritten.get(position) ?? hash) : hash]);
    const hash = sha256(prevSeal, canonicalJson({ id: Number(s.id), at: new Date(s.at).toISOString(), tips }));
    await db.query(`UPDATE audit_seals SET tips = $2, prev_hash = $3, hash = $4${strip(sealColumns)} WHERE id = $1`, [
      s.id,
      JSON.stringify(tips),
      prevSeal,
      hash,
    ]);
    prevSeal = hash;
  }
}

async function audited(targetId: string, n: number): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) {
    const e = await unitOfWork(db)((tx) =>
      appendAudit(tx, ctx(), {
        action: 'person.details_changed',
        targetType: 'person',
        targetId,
        before: null,
        after: { familyName: `Name ${i}` },
      }),
    );
    seqs.push(e.seq);
  }
  return seqs;
}

test(`[${backend}] editing a sealed event and re-hashing its lane, the lane head and every seal fails audit verify, naming the lane and the event`, async () => {
  const victim = '555073103107';
  const [first] = await audited(victim, 3);
  await audited('555073103115', 2);
  await sealAudit(ctx());
  await audited(victim, 2);
  await sealAudit(ctx());
  assert.ok((await verifyAuditChain(repositoriesOn(db), testSealer.auditKeys)).ok);

  await rewriteHistory(db, first!, (after) => ({ ...after, familyName: 'Someone else' }));
  const res = await verifyAuditChain(repositoriesOn(db), testSealer.auditKeys);
  assert.equal(res.ok, false, 'the rewritten trail must not verify');
  assert.equal(!res.ok && res.lane, auditLaneOf(`person\u0000${victim}`));
  assert.equal(!res.ok && res.seq, first);
  // Unkeyed, the form anyone can compute, is trusted only as far as a signed seal vouched for it; none is left.
  assert.equal(!res.ok && res.problem, 'unkeyed_not_sealed');
  // And the hourly seal does not sign the rewritten trail: only an operator adopts unkeyed events.
  await assert.rejects(sealAudit(ctx()), { code: 'audit.adoption_required' });
});

test(`[${backend}] editing an event written after the last seal and re-hashing its lane and head fails audit verify`, async () => {
  const victim = '555073103123';
  await audited(victim, 1);
  await sealAudit(ctx());
  const [later] = await audited(victim, 2);
  await rewriteHistory(db, later!, (after) => ({ ...after, familyName: 'Rewritten after the seal' }));
  const res = await verifyAuditChain(repositoriesOn(db), testSealer.auditKeys);
  assert.equal(res.ok, false, 'a lane re-hashed after the last seal must not verify');
  assert.equal(!res.ok && res.lane, auditLaneOf(`person\u0000${victim}`));
  assert.equal(!res.ok && res.seq, later);
});

test(`[${backend}] re-hashing without the key but keeping the seals' key ids is caught at the first seal or event it touches`, async () => {
  const victim = '555073103131';
  const [first] = await audited(victim, 2);
  await sealAudit(ctx());
  const [after] = await audited(victim, 2);
  // Events after the last seal only (no seal to re-compute): unkeyed after keyed events in the lane.
  await rewriteHistory(db, after!, (a) => ({ ...a, familyName: 'X' }), { keepKeyIds: true, seals: false });
  const events = await verifyAuditChain(repositoriesOn(db), testSealer.auditKeys);
  assert.deepEqual(events.ok ? events : [events.problem, events.seq], ['key_downgrade', after]);
  // A sealed event, and the seals re-computed as well: the seal's signature no longer verifies.
  await rewriteHistory(db, first!, (a) => ({ ...a, familyName: 'Y' }), { keepKeyIds: true });
  const sealed = await verifyAuditChain(repositoriesOn(db), testSealer.auditKeys);
  assert.deepEqual(sealed.ok ? sealed : [sealed.problem, sealed.lane, sealed.position], [
    'seal_hash_mismatch',
    null,
    1,
  ]);
});

test(`[${backend}] forging with a key of one's own: matches no key of the ring`, async () => {
  const [seq] = await audited('555073103149', 1);
  await db.exec('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
  const forger = createSealer(randomBytes(32)).auditKeys.keys[0]!;
  const row = (await db.query<AuditRow>('SELECT * FROM audit_events WHERE seq = $1', [seq])).rows[0]!;
  const forged = { ...auditEventFromRow(row), after: { familyName: 'Forged' } };
  const hash = auditHash(forged, forger);
  await db.query('UPDATE audit_events SET after = $2, hash = $3 WHERE seq = $1', [
    seq,
    JSON.stringify(forged.after),
    hash,
  ]);
  await db.query('UPDATE audit_lanes SET hash = $2 WHERE lane = $1', [forged.lane, hash]);
  const res = await verifyAuditChain(repositoriesOn(db), testSealer.auditKeys);
  assert.deepEqual(res.ok ? res : [res.problem, res.seq], ['hash_mismatch', seq]);
});

test(`[${backend}] cutting the newest seals and events off the trail is caught against the seal sink`, async () => {
  const sink = join(mkdtempSync(join(tmpdir(), 'opencis-sink-')), 'seals.jsonl');
  const victim = '555073103156';
  await audited(victim, 2);
  await sealAudit(ctx(), { sinkFile: sink });
  await audited(victim, 2);
  const last = await sealAudit(ctx(), { sinkFile: sink });
  const lines = readFileSync(sink, 'utf8').trim().split('\n');
  assert.equal(lines.length, 2);
  assert.equal(JSON.parse(lines[1]!).hash, last.hash);
  const ok = await verifyAuditChain(repositoriesOn(db), testSealer.auditKeys, { sinkFile: sink });
  assert.ok(ok.ok && ok.sink?.seals === 2 && ok.sink.notShipped.length === 0, JSON.stringify(ok));

  // The attacker deletes the newest seal and the two events after the first one, and rewinds the lane's head.
  const lane = auditLaneOf(`person\u0000${victim}`);
  await db.exec('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
  await db.exec('ALTER TABLE audit_seals DISABLE TRIGGER audit_seals_no_update');
  await db.query('DELETE FROM audit_seals WHERE id = $1', [last.id]);
  const first = (await db.query<{ tips: [number, string][] }>('SELECT tips FROM audit_seals WHERE id = 1')).rows[0]!;
  const [position, hash] = first.tips[lane]!;
  await db.query('DELETE FROM audit_events WHERE lane = $1 AND lane_seq > $2', [lane, position]);
  await db.query('UPDATE audit_lanes SET lane_seq = $2, hash = $3 WHERE lane = $1', [lane, position, hash]);
  // From inside the database the cut cannot be seen …
  assert.ok((await verifyAuditChain(repositoriesOn(db), testSealer.auditKeys)).ok);
  // … but the sink still holds the seal that saw the lost events.
  const res = await verifyAuditChain(repositoriesOn(db), testSealer.auditKeys, { sinkFile: sink });
  assert.deepEqual(res.ok ? res : [res.problem, res.position], ['sink_seal_missing', last.id]);
});

test(`[${backend}] a key rotation: what the old key signed still verifies with it listed after the new one`, async () => {
  const [oldSecret, newSecret] = [randomBytes(32), randomBytes(32)];
  const before = createSealer(randomBytes(32), { auditKeys: auditKeyring([oldSecret]) });
  const rotated = createSealer(randomBytes(32), { auditKeys: auditKeyring([newSecret, oldSecret]) });
  // A fresh trail keyed with the old key from its start (the template's events are keyed with the test key).
  await db.exec('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
  await db.exec('ALTER TABLE audit_seals DISABLE TRIGGER audit_seals_no_update');
  await db.query('DELETE FROM audit_events');
  await db.query('DELETE FROM audit_seals');
  await db.query(`UPDATE audit_lanes SET lane_seq = 0, hash = '${'0'.repeat(64)}'`);
  const write = (sealer: typeof before, targetId: string) =>
    unitOfWork(db)((tx) =>
      appendAudit(tx, testContext(db, { sealer }), {
        action: 'x',
        targetType: 'person',
        targetId,
        before: null,
        after: null,
      }),
    );
  await write(before, '555073103164');
  await sealAudit(testContext(db, { sealer: before }));
  assert.ok((await verifyAuditChain(repositoriesOn(db), before.auditKeys)).ok);
  await write(rotated, '555073103164');
  const seal = await sealAudit(testContext(db, { sealer: rotated }));
  assert.equal(seal.keyId, rotated.auditKeys.keys[0]!.id);
  const res = await verifyAuditChain(repositoriesOn(db), rotated.auditKeys);
  assert.ok(res.ok, JSON.stringify(res));
  assert.deepEqual(res.keyIdsSeen, rotated.auditKeys.keys.map((k) => k.id).sort());
  // Dropping the old key from the ring: what it signed can no longer be checked.
  const dropped = await verifyAuditChain(repositoriesOn(db), auditKeyring([newSecret]));
  assert.deepEqual(dropped.ok ? dropped : [dropped.problem, dropped.position], ['seal_unknown_key', 1]);
});

test(`[${backend}] opencis audit verify with the key in a file apart from the database: rotation keeps old seals verifying; a re-hashed lane exits 1 naming the lane and the event`, async () => {
  const apart = mkdtempSync(join(tmpdir(), 'opencis-audit-key-'));
  const keyFile = join(apart, 'audit.keys');
  const [oldKey, newKey] = [randomBytes(32).toString('base64'), randomBytes(32).toString('base64')];
  writeFileSync(keyFile, `${oldKey}\n`, { mode: 0o600 });
  const sink = join(apart, 'seals.jsonl');
  const schema = backend === 'postgres' ? `t_${process.pid}_${randomBytes(4).toString('hex')}` : null;
  const base = schema ? { DATABASE_URL: POSTGRES_URL, DATABASE_SCHEMA: schema } : cliEnvFor(null);
  const env = { ...base, AUDIT_KEY_FILE: keyFile, AUDIT_SEAL_SINK: sink };
  const open = () =>
    schema
      ? openPostgres({ url: POSTGRES_URL, schema })
      : openPglite({ dataDir: (base as { DATA_DIR: string }).DATA_DIR });
  try {
    assert.equal((await runOpencis(['seed', '--demo'], env)).code, 0);
    const sealed = await runOpencis(['audit', 'seal'], env);
    assert.equal(sealed.code, 0, sealed.stderr);
    const oldId = /\(key ([0-9a-f]{16})\)/.exec(sealed.stdout)?.[1];
    assert.ok(oldId, sealed.stdout);

    // Rotation: the new key first, the old one kept below it.
    writeFileSync(keyFile, `# rotated\n${newKey}\n${oldKey}\n`);
    const resealed = await runOpencis(['audit', 'seal'], env);
    assert.equal(resealed.code, 0, resealed.stderr);
    const newId = /\(key ([0-9a-f]{16})\)/.exec(resealed.stdout)?.[1];
    assert.ok(newId && newId !== oldId);
    const ok = await runOpencis(['audit', 'verify'], env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`Last seal 2 at \\S+: [0-9a-f]{64} \\(signed, key ${newId}\\)`));
    assert.match(ok.stdout, new RegExp(`Audit key ${newId}; keys seen: ${[oldId, newId].sort().join(', ')}`));
    assert.match(ok.stdout, /Seal sink: 2 seals, all in the database as shipped/);
    assert.equal(readFileSync(sink, 'utf8').trim().split('\n').length, 2);

    // The attacker rewrites a demo person's registration and re-hashes lane, head and seals.
    const db = await open();
    let seq: number;
    let lane: number;
    try {
      const row = (
        await db.query<{ seq: string; lane: number }>(
          "SELECT seq, lane FROM audit_events WHERE action = 'person.registered' ORDER BY seq LIMIT 1",
        )
      ).rows[0]!;
      seq = Number(row.seq);
      lane = Number(row.lane);
      await rewriteHistory(db, seq, (a) => ({ ...a, familyName: 'Tampered' }));
    } finally {
      await db.close();
    }
    const broken = await runOpencis(['audit', 'verify'], env);
    assert.equal(broken.code, 1);
    assert.match(
      broken.stderr,
      new RegExp(
        `Audit chain BROKEN at event ${seq} in lane ${lane} at position \\d+ \\((key_downgrade|unkeyed_not_sealed)\\): person\\.registered`,
      ),
    );
    // No seal signs it: the first signed seal is made only over a trail that verifies (here: unkeyed after keyed).
    const refused = await runOpencis(['audit', 'seal', '--adopt-unkeyed'], env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /audit\.chain_broken/);
  } finally {
    if (schema) await dropPostgresSchema(POSTGRES_URL, schema);
  }
});
