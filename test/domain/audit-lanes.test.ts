import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AUDIT_LANES, type AuditEvent, auditHash, auditLaneOf, GENESIS_HASH } from '../../src/domain/audit/chain.ts';
import { appendAudit, auditTrailOf } from '../../src/services/audit.ts';
import { sealAudit } from '../../src/services/audit-seal.ts';
import { verifyAuditChain } from '../../src/services/audit-verify.ts';
import { storeContext } from '../../src/services/context.ts';
import type { Database, Queryable } from '../../src/storage/database.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { openPglite } from '../../src/storage/pglite.ts';
import { dropPostgresSchema, openPostgres } from '../../src/storage/postgres.ts';
import { repositoriesOn, unitOfWork } from '../../src/storage/repositories/index.ts';
import { testSealer } from '../support/context.ts';
import { backend, POSTGRES_URL } from '../support/db.ts';

const SQL_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../src/storage/sql');
const clock = { now: () => new Date() };
const ctx = { clock, actor: { kind: 'system' as const, id: 'system:test' }, requestId: null, sealer: testSealer };
const keys = testSealer.auditKeys;

let db: Database;
let schema: string | undefined;
const legacy: AuditEvent[] = [];

/** A target whose events go to lane `lane`. */
function targetInLane(lane: number, from = 0): string {
  for (let i = from; ; i++) if (auditLaneOf(`person\u0000${i}`) === lane) return String(i);
}

/** Appends the way the single chain did before migration 0011, on a database migrated only that far. */
async function appendSingleChain(q: Queryable, targetId: string, action: string): Promise<void> {
  const { rows } = await q.query<{ seq: string; hash: string }>('SELECT seq, hash FROM audit_head WHERE id = 1');
  const e = {
    seq: Number(rows[0]!.seq) + 1,
    lane: 0,
    laneSeq: null,
    at: new Date(Date.UTC(2026, 0, 1, 0, 0, legacy.length)).toISOString(),
    actor: 'system:test',
    action,
    targetType: 'person',
    targetId,
    before: null,
    after: { n: legacy.length },
    requestId: null,
    reason: null,
    prevHash: rows[0]!.hash,
    keyId: null,
  };
  const hash = auditHash(e);
  await q.query(
    `INSERT INTO audit_events (seq, at, actor, action, target_type, target_id, before, after, request_id, reason, prev_hash, hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [
      e.seq,
      e.at,
      e.actor,
      e.action,
      e.targetType,
      e.targetId,
      null,
      JSON.stringify(e.after),
      null,
      null,
      e.prevHash,
      hash,
    ],
  );
  await q.query('UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1', [e.seq, hash]);
  legacy.push({ ...e, hash });
}

before(async () => {
  if (backend === 'postgres') {
    schema = `t_${process.pid}_${randomBytes(4).toString('hex')}`;
    db = await openPostgres({ url: POSTGRES_URL, schema, poolSize: 20 });
  } else {
    db = await openPglite();
  }
  // Migrate to just before lanes, write a single-chain history, then apply the rest.
  const upTo10 = mkdtempSync(join(tmpdir(), 'opencis-sql-'));
  try {
    for (const f of readdirSync(SQL_DIR).filter((f) => /^00(0\d|10)_.*\.sql$/.test(f))) {
      copyFileSync(join(SQL_DIR, f), join(upTo10, f));
    }
    await migrate(db, upTo10);
  } finally {
    rmSync(upTo10, { recursive: true, force: true });
  }
  await db.transaction(async (tx) => {
    for (let i = 0; i < 6; i++) await appendSingleChain(tx, i % 2 === 0 ? '900000000001' : '900000000002', 'old.event');
  });
  await migrate(db);
});
after(async () => {
  await db?.close();
  if (schema) await dropPostgresSchema(POSTGRES_URL, schema);
});

test(`[${backend}] the single chain written before lanes becomes lane 0 and still verifies, with new events after it`, async () => {
  const { rows } = await db.query<{ lane: number; lane_seq: string | null }>(
    'SELECT lane, lane_seq FROM audit_events ORDER BY seq',
  );
  assert.deepEqual(
    rows.map((r) => [Number(r.lane), r.lane_seq]),
    legacy.map(() => [0, null]),
    'the migration leaves existing rows as they were',
  );
  const heads = await db.query<{ lane: number; lane_seq: string; hash: string }>(
    'SELECT lane, lane_seq, hash FROM audit_lanes ORDER BY lane',
  );
  assert.equal(heads.rows.length, AUDIT_LANES);
  assert.deepEqual(heads.rows[0], { lane: 0, lane_seq: '6', hash: legacy.at(-1)!.hash });
  assert.ok(heads.rows.slice(1).every((h) => h.lane_seq === '0' && h.hash === GENESIS_HASH));

  // One new event lands in lane 0 and carries on from the old chain's tip; others go elsewhere.
  const inLane0 = targetInLane(0);
  const e = await unitOfWork(db)((tx) =>
    appendAudit(tx, ctx, { action: 'new.event', targetType: 'person', targetId: inLane0, before: null, after: null }),
  );
  assert.deepEqual([e.lane, e.laneSeq, e.seq, e.prevHash], [0, 7, 7, legacy.at(-1)!.hash]);
  const inLane5 = targetInLane(5);
  const f = await unitOfWork(db)((tx) =>
    appendAudit(tx, ctx, { action: 'new.event', targetType: 'person', targetId: inLane5, before: null, after: null }),
  );
  assert.deepEqual([f.lane, f.laneSeq, f.seq, f.prevHash], [5, 1, 8, GENESIS_HASH]);

  // Anyone could have computed those unkeyed hashes: until a signed seal vouches for them, they do not verify, and
  // the hourly seal does not vouch for them on its own.
  const unvouched = await verifyAuditChain(repositoriesOn(db), keys);
  assert.deepEqual(unvouched.ok ? unvouched : [unvouched.problem, unvouched.lane, unvouched.position], [
    'unkeyed_not_sealed',
    0,
    1,
  ]);
  await assert.rejects(sealAudit(storeContext({ db, clock, sealer: testSealer })), { code: 'audit.adoption_required' });
  assert.equal((await db.query('SELECT * FROM audit_seals')).rows.length, 0, 'no seal written');
  // The operator adopts them once (`opencis audit seal --adopt-unkeyed`); they then verify as they were written.
  const adoption = await sealAudit(storeContext({ db, clock, sealer: testSealer }), { adoptUnkeyed: true });
  assert.equal(adoption.adopted, 6);
  const res = await verifyAuditChain(repositoriesOn(db), keys);
  assert.ok(res.ok, JSON.stringify(res));
  assert.equal(res.events, 8);
  assert.equal(res.unkeyedEvents, 6);
});

test(`[${backend}] a person's history lists old and new events in order`, async () => {
  await unitOfWork(db)((tx) =>
    appendAudit(tx, ctx, {
      action: 'new.event',
      targetType: 'person',
      targetId: '900000000001',
      before: null,
      after: null,
    }),
  );
  const trail = await auditTrailOf(repositoriesOn(db), 'person', '900000000001');
  assert.deepEqual(
    trail.map((e) => e.action),
    ['old.event', 'old.event', 'old.event', 'new.event'],
  );
  assert.deepEqual(
    trail.map((e) => e.seq),
    [...trail.map((e) => e.seq)].sort((a, b) => a - b),
  );
});

test(`[${backend}] concurrent writers about different people all commit, each person's events in order in one lane`, async () => {
  const people = Array.from({ length: 40 }, (_, i) => String(910000000000 + i));
  await Promise.all(
    people.flatMap((p) =>
      [1, 2, 3].map(() =>
        unitOfWork(db)(async (tx) => {
          await appendAudit(tx, ctx, { action: 'burst', targetType: 'person', targetId: p, before: null, after: null });
        }),
      ),
    ),
  );
  for (const p of people) {
    const trail = await auditTrailOf(repositoriesOn(db), 'person', p);
    assert.equal(trail.length, 3);
    assert.equal(new Set(trail.map((e) => e.lane)).size, 1, 'one lane per person');
    // Listed by seq, they are also in lane order: seq is drawn while the lane is held.
    for (let i = 1; i < trail.length; i++) assert.ok(trail[i]!.laneSeq! > trail[i - 1]!.laneSeq!);
  }
  const lanes = await db.query<{ n: string }>(
    "SELECT count(DISTINCT lane)::text AS n FROM audit_events WHERE action = 'burst'",
  );
  assert.ok(Number(lanes.rows[0]!.n) > 10, 'forty people spread over many lanes');
  const res = await verifyAuditChain(repositoriesOn(db), keys);
  assert.ok(res.ok, JSON.stringify(res));
});

test(`[${backend}] a transaction that audits several targets keeps to one lane (two lane locks could deadlock)`, async () => {
  const a = targetInLane(3);
  const b = targetInLane(9);
  const events = await unitOfWork(db)(async (tx) => [
    await appendAudit(tx, ctx, { action: 'pair', targetType: 'person', targetId: a, before: null, after: null }),
    await appendAudit(tx, ctx, { action: 'pair', targetType: 'person', targetId: b, before: null, after: null }),
  ]);
  assert.deepEqual(
    events.map((e) => e.lane),
    [3, 3],
  );
  assert.equal(events[1]!.laneSeq, events[0]!.laneSeq! + 1);
  assert.equal(events[1]!.prevHash, events[0]!.hash);
  // A rolled-back transaction leaves its lane as it was.
  await assert.rejects(
    unitOfWork(db)(async (tx) => {
      await appendAudit(tx, ctx, {
        action: 'rolled.back',
        targetType: 'person',
        targetId: a,
        before: null,
        after: null,
      });
      throw new Error('abort');
    }),
    /abort/,
  );
  const res = await verifyAuditChain(repositoriesOn(db), keys);
  assert.ok(res.ok, JSON.stringify(res));
});

test(`[${backend}] verify catches an altered pre-lane event, and events added past a lane's head`, async () => {
  await sealAudit(storeContext({ db, clock, sealer: testSealer }));
  const sealed = await verifyAuditChain(repositoriesOn(db), keys);
  assert.ok(sealed.ok && sealed.lastSeal?.id === 2, JSON.stringify(sealed));

  await db.exec('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
  await db.query("UPDATE audit_events SET actor = 'someone else' WHERE seq = 2");
  const res = await verifyAuditChain(repositoriesOn(db), keys);
  assert.deepEqual(
    res.ok ? res : { problem: res.problem, lane: res.lane, position: res.position, seq: res.seq, events: res.events },
    { problem: 'hash_mismatch', lane: 0, position: 2, seq: 2, events: 1 },
  );
  await db.query("UPDATE audit_events SET actor = 'system:test' WHERE seq = 2");
  assert.ok((await verifyAuditChain(repositoriesOn(db), keys)).ok);

  // An event slipped in at the end of lane 7 without moving its head.
  const head = await db.query<{ lane_seq: string; hash: string }>(
    'SELECT lane_seq, hash FROM audit_lanes WHERE lane = 7',
  );
  const forged = {
    seq: 1_000_000,
    lane: 7,
    laneSeq: Number(head.rows[0]!.lane_seq) + 1,
    at: new Date().toISOString(),
    actor: 'system:test',
    action: 'forged',
    targetType: 'person',
    targetId: targetInLane(7),
    before: null,
    after: null,
    requestId: null,
    reason: null,
    prevHash: head.rows[0]!.hash,
    keyId: null,
  };
  await db.query(
    `INSERT INTO audit_events (seq, lane, lane_seq, at, actor, action, target_type, target_id, prev_hash, hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [
      forged.seq,
      7,
      forged.laneSeq,
      forged.at,
      forged.actor,
      forged.action,
      'person',
      forged.targetId,
      forged.prevHash,
      auditHash(forged),
    ],
  );
  const beyond = await verifyAuditChain(repositoriesOn(db), keys);
  assert.equal(beyond.ok, false);
  assert.equal(!beyond.ok && beyond.problem, 'events_beyond_head');
  assert.equal(!beyond.ok && beyond.lane, 7);
});
