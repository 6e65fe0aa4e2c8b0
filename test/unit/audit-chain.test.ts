import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import {
  AUDIT_LANES,
  type AuditEvent,
  auditHash,
  auditLaneOf,
  canonicalJson,
  GENESIS_HASH,
  sealHash,
  tipsDigest,
  verifyChainSegment,
} from '../../src/domain/audit/chain.ts';

const start = { hash: GENESIS_HASH, position: 0 };

/** n events of one lane; `legacy` ones are written the way the single chain wrote them before lanes. */
function chain(n: number, lane = 3, legacy = false): AuditEvent[] {
  const out: AuditEvent[] = [];
  let prev = GENESIS_HASH;
  for (let i = 1; i <= n; i++) {
    const e = {
      seq: legacy ? i : 100 + i * 7,
      lane,
      laneSeq: legacy ? null : i,
      at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      actor: 'cli:test',
      action: 'person.registered',
      targetType: 'person',
      targetId: String(i),
      before: null,
      after: { name: `p${i}`, nested: { b: 1, a: [1, 2] } },
      requestId: null,
      reason: null,
      prevHash: prev,
    };
    const hash = auditHash(e);
    out.push({ ...e, hash });
    prev = hash;
  }
  return out;
}

test('canonical JSON sorts keys at every level', () => {
  assert.equal(
    canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } }),
    '{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}',
  );
});

test('an intact lane verifies, and so does the pre-lane chain as the start of lane 0', () => {
  const res = verifyChainSegment(3, chain(5), start);
  assert.ok(res.ok);
  assert.equal(res.last.position, 5);
  const legacy = chain(4, 0, true);
  const first = verifyChainSegment(0, legacy, start);
  assert.ok(first.ok);
  // Lane 0 carries on from the last pre-lane event: position 5, chained to its hash.
  const next = { ...chain(1, 0)[0]!, laneSeq: 5, prevHash: first.last.hash };
  next.hash = auditHash(next);
  assert.ok(verifyChainSegment(0, [next], first.last).ok);
});

test('a pre-lane event keeps the hash it was written with; a lane event also covers its lane and position', () => {
  const [legacy] = chain(1, 0, true);
  const { lane: _lane, laneSeq: _laneSeq, hash: _hash, ...singleChainFields } = legacy!;
  // The form the single chain used: seq and the event's fields, nothing about lanes.
  const body = canonicalJson({ ...singleChainFields, prevHash: undefined });
  assert.equal(legacy!.hash, createHash('sha256').update(GENESIS_HASH).update('\n').update(body).digest('hex'));

  const [e] = chain(1, 3);
  assert.notEqual(auditHash({ ...e!, lane: 4 }), e!.hash);
  assert.notEqual(auditHash({ ...e!, laneSeq: 2 }), e!.hash);
  assert.notEqual(auditHash({ ...e!, seq: e!.seq + 1 }), e!.hash);
});

test('changing any field of an event breaks its lane at that event', () => {
  const events = chain(5);
  events[2] = { ...events[2]!, after: { name: 'tampered' } };
  const res = verifyChainSegment(3, events, start);
  assert.deepEqual(res, {
    ok: false,
    problem: { seq: events[2]!.seq, lane: 3, position: 3, problem: 'hash_mismatch' },
  });
});

test('removing or reordering events is detected', () => {
  const events = chain(5);
  const removed = [...events.slice(0, 2), ...events.slice(3)];
  assert.deepEqual(verifyChainSegment(3, removed, start), {
    ok: false,
    problem: { seq: events[3]!.seq, lane: 3, position: 4, problem: 'sequence_gap' },
  });
  const recomputed = events.map((e) => ({ ...e }));
  recomputed[1] = { ...recomputed[1]!, prevHash: GENESIS_HASH };
  recomputed[1].hash = auditHash(recomputed[1]);
  assert.deepEqual(verifyChainSegment(3, recomputed, start), {
    ok: false,
    problem: { seq: events[1]!.seq, lane: 3, position: 2, problem: 'prev_hash_mismatch' },
  });
});

test('an event moved to another lane, or a pre-lane event outside lane 0, is refused', () => {
  const events = chain(2, 3);
  assert.deepEqual(verifyChainSegment(5, events, start), {
    ok: false,
    problem: { seq: events[0]!.seq, lane: 5, position: 1, problem: 'wrong_lane' },
  });
  const legacy = chain(2, 0, true).map((e) => ({ ...e, lane: 7 }));
  assert.equal(verifyChainSegment(7, legacy, start).ok, false);
});

test('a target always maps to the same lane, and targets spread over every lane', () => {
  assert.equal(auditLaneOf('person\u0000555073103107'), auditLaneOf('person\u0000555073103107'));
  const used = new Set<number>();
  for (let i = 0; i < 2_000; i++) used.add(auditLaneOf(`person\u0000${555073103100 + i}`));
  assert.equal(used.size, AUDIT_LANES);
  for (const lane of used) assert.ok(lane >= 0 && lane < AUDIT_LANES);
});

test('a seal covers every tip, its time and the seal before it', () => {
  const tips = Array.from({ length: AUDIT_LANES }, (_, i) => ({ position: i, hash: GENESIS_HASH }));
  const seal = { id: 1, at: '2026-01-01T00:00:00.000Z', tips, prevHash: GENESIS_HASH };
  const hash = sealHash(seal);
  const cut = tips.map((t, i) => (i === 9 ? { ...t, position: t.position - 1 } : t));
  assert.notEqual(sealHash({ ...seal, tips: cut }), hash);
  assert.notEqual(sealHash({ ...seal, prevHash: hash }), hash);
  assert.notEqual(sealHash({ ...seal, at: '2026-01-01T00:00:01.000Z' }), hash);
  assert.notEqual(tipsDigest(cut), tipsDigest(tips));
});
