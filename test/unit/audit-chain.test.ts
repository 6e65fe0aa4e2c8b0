import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type AuditEvent,
  auditHash,
  canonicalJson,
  GENESIS_HASH,
  verifyChainSegment,
} from '../../src/domain/audit/chain.ts';

function chain(n: number): AuditEvent[] {
  const out: AuditEvent[] = [];
  let prev = GENESIS_HASH;
  for (let i = 1; i <= n; i++) {
    const e = {
      seq: i,
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

test('an intact chain verifies', () => {
  const res = verifyChainSegment(chain(5), { hash: GENESIS_HASH, seq: 0 });
  assert.ok(res.ok);
});

test('changing any field of an event breaks the chain at that event', () => {
  const events = chain(5);
  events[2] = { ...events[2]!, after: { name: 'tampered' } };
  const res = verifyChainSegment(events, { hash: GENESIS_HASH, seq: 0 });
  assert.deepEqual(res, { ok: false, problem: { seq: 3, problem: 'hash_mismatch' } });
});

test('removing or reordering events is detected', () => {
  const events = chain(5);
  const removed = [...events.slice(0, 2), ...events.slice(3)];
  assert.deepEqual(verifyChainSegment(removed, { hash: GENESIS_HASH, seq: 0 }), {
    ok: false,
    problem: { seq: 4, problem: 'sequence_gap' },
  });
  const recomputed = events.map((e) => ({ ...e }));
  recomputed[1] = { ...recomputed[1]!, prevHash: GENESIS_HASH };
  recomputed[1].hash = auditHash(recomputed[1]);
  assert.deepEqual(verifyChainSegment(recomputed, { hash: GENESIS_HASH, seq: 0 }), {
    ok: false,
    problem: { seq: 2, problem: 'prev_hash_mismatch' },
  });
});
