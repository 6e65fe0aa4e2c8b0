import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, test } from 'node:test';
import { auditLaneOf, canonicalJson } from '../../src/domain/audit/chain.ts';
import { appendAudit, sealAudit } from '../../src/services/audit.ts';
import { verifyAuditChain } from '../../src/services/audit-verify.ts';
import type { Database } from '../../src/storage/database.ts';
import { testContext } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';

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

const sha256 = (prev: string, body: string) => createHash('sha256').update(prev).update('\n').update(body).digest('hex');

async function columnsOf(table: string): Promise<Set<string>> {
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
 * is the form the attacker can compute.
 */
async function rewriteHistory(seq: number, edit: (after: Record<string, unknown>) => Record<string, unknown>) {
  const eventColumns = await columnsOf('audit_events');
  const sealColumns = await columnsOf('audit_seals');
  await db.exec('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
  await db.exec('ALTER TABLE audit_seals DISABLE TRIGGER audit_seals_no_update');
  const target = (await db.query<Row>('SELECT * FROM audit_events WHERE seq = $1', [seq])).rows[0]!;
  const lane = Number(target.lane);
  const { rows } = await db.query<Row>(
    'SELECT * FROM audit_events WHERE lane = $1 ORDER BY coalesce(lane_seq, seq)',
    [lane],
  );
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
      `UPDATE audit_events SET after = $2, prev_hash = $3, hash = $4${eventColumns.has('key_id') ? ', key_id = NULL' : ''}
       WHERE seq = $1`,
      [r.seq, JSON.stringify(r.after), prev, hash],
    );
    rewritten.set(position, hash);
    prev = hash;
  }
  await db.query('UPDATE audit_lanes SET hash = $2 WHERE lane = $1', [lane, prev]);

  const seals = await db.query<{ id: string; at: Date; tips: [number, string][] }>(
    'SELECT id, at, tips FROM audit_seals ORDER BY id',
  );
  let prevSeal = '0'.repeat(64);
  for (const s of seals.rows) {
    const tips = s.tips.map(([position, hash], l) => [position, l === lane ? (rewritten.get(position) ?? hash) : hash]);
    const hash = sha256(prevSeal, canonicalJson({ id: Number(s.id), at: new Date(s.at).toISOString(), tips }));
    await db.query(
      `UPDATE audit_seals SET tips = $2, prev_hash = $3, hash = $4${sealColumns.has('key_id') ? ', key_id = NULL' : ''}
       WHERE id = $1`,
      [s.id, JSON.stringify(tips), prevSeal, hash],
    );
    prevSeal = hash;
  }
}

async function audited(targetId: string, n: number): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) {
    const e = await db.transaction((tx) =>
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
  await sealAudit(db, ctx().clock);
  await audited(victim, 2);
  await sealAudit(db, ctx().clock);
  assert.ok((await verifyAuditChain(db)).ok);

  await rewriteHistory(first!, (after) => ({ ...after, familyName: 'Someone else' }));
  const res = await verifyAuditChain(db);
  assert.equal(res.ok, false, 'the rewritten trail must not verify');
  assert.equal(!res.ok && res.lane, auditLaneOf(`person\u0000${victim}`));
  assert.equal(!res.ok && res.seq, first);
});

test(`[${backend}] editing an event written after the last seal and re-hashing its lane and head fails audit verify`, async () => {
  const victim = '555073103123';
  await audited(victim, 1);
  await sealAudit(db, ctx().clock);
  const [later] = await audited(victim, 2);
  await rewriteHistory(later!, (after) => ({ ...after, familyName: 'Rewritten after the seal' }));
  const res = await verifyAuditChain(db);
  assert.equal(res.ok, false, 'a lane re-hashed after the last seal must not verify');
  assert.equal(!res.ok && res.lane, auditLaneOf(`person\u0000${victim}`));
  assert.equal(!res.ok && res.seq, later);
});
