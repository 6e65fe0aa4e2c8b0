import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import {
  AUDIT_LANES,
  type AuditEvent,
  type AuditKey,
  type AuditSeal,
  auditHash,
  auditKeyring,
  auditLaneOf,
  canonicalJson,
  GENESIS_HASH,
  keyOfEvent,
  LANE_START,
  sealHash,
  tipsDigest,
  verifyChainSegment,
  verifySeal,
} from '../../src/domain/audit/chain.ts';
import { parseAuditKeyFile } from '../../src/secrets/audit-keys.ts';

const start = LANE_START;
const [newKey, oldKey] = [randomBytes(32), randomBytes(32)];
const ring = auditKeyring([newKey, oldKey]);
const [current, retired] = ring.keys as [AuditKey, AuditKey];
/** Far enough that no test's unkeyed events are past what the first signed seal vouched for. */
const VOUCHED = 1_000;

/** n events of one lane keyed with `key`; `legacy` ones are written the way the single chain wrote them before lanes. */
function chain(n: number, lane = 3, legacy = false, key: AuditKey | null = legacy ? null : current): AuditEvent[] {
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
    const hash = auditHash(e, key);
    out.push({ ...e, hash });
    prev = hash;
  }
  return out;
}

/** Re-links events after a change, as someone holding `key` (or no key) would. */
function relink(events: AuditEvent[], key: AuditKey | null): AuditEvent[] {
  let prev = GENESIS_HASH;
  return events.map((e) => {
    const next = { ...e, prevHash: prev };
    next.hash = auditHash(next, key);
    prev = next.hash;
    return next;
  });
}

test('canonical JSON sorts keys at every level', () => {
  assert.equal(
    canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } }),
    '{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}',
  );
});

test('an intact lane verifies, and so does the pre-lane chain as the start of lane 0', () => {
  const res = verifyChainSegment(3, chain(5), start, ring, 0);
  assert.ok(res.ok);
  assert.equal(res.last.position, 5);
  const legacy = chain(4, 0, true);
  const first = verifyChainSegment(0, legacy, start, ring, VOUCHED);
  assert.ok(first.ok);
  // Lane 0 carries on from the last pre-lane event: position 5, chained to its hash, now keyed.
  const next = { ...chain(1, 0)[0]!, laneSeq: 5, prevHash: first.last.hash };
  next.hash = auditHash(next, current);
  assert.ok(verifyChainSegment(0, [next], first.last, ring, 4).ok);
});

test('a pre-lane event keeps the hash it was written with; a lane event also covers its lane and position', () => {
  const [legacy] = chain(1, 0, true);
  const { lane: _lane, laneSeq: _laneSeq, hash: _hash, ...singleChainFields } = legacy!;
  // The form the single chain used: seq and the event's fields, nothing about lanes.
  const body = canonicalJson({ ...singleChainFields, prevHash: undefined });
  assert.equal(legacy!.hash, createHash('sha256').update(GENESIS_HASH).update('\n').update(body).digest('hex'));

  const [e] = chain(1, 3);
  assert.notEqual(auditHash({ ...e!, lane: 4 }, current), e!.hash);
  assert.notEqual(auditHash({ ...e!, laneSeq: 2 }, current), e!.hash);
  assert.notEqual(auditHash({ ...e!, seq: e!.seq + 1 }, current), e!.hash);
});

test('a keyed event is an HMAC with the audit key: the unkeyed SHA-256 of the same fields is not it', () => {
  const [e] = chain(1, 3);
  assert.notEqual(auditHash(e!), e!.hash);
  assert.notEqual(auditHash(e!, retired), e!.hash);
  assert.equal(keyOfEvent(e!, ring), current);
  assert.equal(keyOfEvent({ ...e!, hash: auditHash(e!) }, ring), null, 'the unkeyed form');
  assert.equal(keyOfEvent({ ...e!, after: { name: 'x' } }, ring), undefined, 'changed: no key, nor unkeyed');
});

test('changing any field of an event breaks its lane at that event', () => {
  const events = chain(5);
  events[2] = { ...events[2]!, after: { name: 'tampered' } };
  const res = verifyChainSegment(3, events, start, ring, 0);
  assert.deepEqual(res, {
    ok: false,
    problem: { seq: events[2]!.seq, lane: 3, position: 3, problem: 'hash_mismatch' },
  });
});

test('removing or reordering events is detected', () => {
  const events = chain(5);
  const removed = [...events.slice(0, 2), ...events.slice(3)];
  assert.deepEqual(verifyChainSegment(3, removed, start, ring, 0), {
    ok: false,
    problem: { seq: events[3]!.seq, lane: 3, position: 4, problem: 'sequence_gap' },
  });
  const recomputed = events.map((e) => ({ ...e }));
  recomputed[1] = { ...recomputed[1]!, prevHash: GENESIS_HASH };
  recomputed[1].hash = auditHash(recomputed[1], current);
  assert.deepEqual(verifyChainSegment(3, recomputed, start, ring, 0), {
    ok: false,
    problem: { seq: events[1]!.seq, lane: 3, position: 2, problem: 'prev_hash_mismatch' },
  });
});

test('a lane edited and re-linked without the key does not verify, in any form the editor can compute', () => {
  const edited = chain(4);
  edited[1] = { ...edited[1]!, after: { name: 'rewritten' } };
  // Unkeyed SHA-256, as before keys: refused past what a signed seal vouched for (here, nothing).
  assert.deepEqual(verifyChainSegment(3, relink(edited, null), start, ring, 0), {
    ok: false,
    problem: { seq: edited[0]!.seq, lane: 3, position: 1, problem: 'unkeyed_not_sealed' },
  });
  // Only the edited part downgraded: an unkeyed event after a keyed one, even within what a seal vouched for.
  const kept = chain(4)[0]!;
  const downgraded = { ...edited[1]!, prevHash: kept.hash };
  downgraded.hash = auditHash(downgraded);
  const res = verifyChainSegment(3, [kept, downgraded], start, ring, VOUCHED);
  assert.equal(!res.ok && res.problem.problem, 'key_downgrade');
  // With a key of the editor's own: matches no key of the ring.
  const forged = relink(edited, auditKeyring([randomBytes(32)]).keys[0]!);
  assert.deepEqual(verifyChainSegment(3, forged, start, ring, 0), {
    ok: false,
    problem: { seq: edited[0]!.seq, lane: 3, position: 1, problem: 'hash_mismatch' },
  });
});

test('after a rotation both keys verify what they keyed, in any order (a rolling restart writes with both)', () => {
  const old = chain(3, 3, false, retired);
  const next = { ...chain(1)[0]!, laneSeq: 4, prevHash: old.at(-1)!.hash };
  next.hash = auditHash(next, current);
  // A node that has not restarted yet still keys with the retired key, after one that has.
  const lagging = { ...next, laneSeq: 5, prevHash: next.hash };
  lagging.hash = auditHash(lagging, retired);
  assert.ok(verifyChainSegment(3, [...old, next, lagging], start, ring, 0).ok);
  // Without the retired key in the ring, what it keyed no longer verifies.
  const res = verifyChainSegment(3, old, start, auditKeyring([newKey]), 0);
  assert.equal(!res.ok && res.problem.problem, 'hash_mismatch');
});

test('an event moved to another lane, or a pre-lane event outside lane 0, is refused', () => {
  const events = chain(2, 3);
  assert.deepEqual(verifyChainSegment(5, events, start, ring, 0), {
    ok: false,
    problem: { seq: events[0]!.seq, lane: 5, position: 1, problem: 'wrong_lane' },
  });
  const legacy = chain(2, 0, true).map((e) => ({ ...e, lane: 7 }));
  assert.equal(verifyChainSegment(7, legacy, start, ring, VOUCHED).ok, false);
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
  const seal = { id: 1, at: '2026-01-01T00:00:00.000Z', tips, prevHash: GENESIS_HASH, keyId: current.id };
  const hash = sealHash(seal, current);
  const cut = tips.map((t, i) => (i === 9 ? { ...t, position: t.position - 1 } : t));
  assert.notEqual(sealHash({ ...seal, tips: cut }, current), hash);
  assert.notEqual(sealHash({ ...seal, prevHash: hash }, current), hash);
  assert.notEqual(sealHash({ ...seal, at: '2026-01-01T00:00:01.000Z' }, current), hash);
  assert.notEqual(sealHash({ ...seal, keyId: null }), hash);
  assert.notEqual(tipsDigest(cut), tipsDigest(tips));
});

test('seals: signed ones verify with any key of the ring; unsigned after signed, unknown keys, re-computed ones do not', () => {
  const tips = Array.from({ length: AUDIT_LANES }, () => ({ position: 0, hash: GENESIS_HASH }));
  const make = (id: number, prev: AuditSeal | null, key: AuditKey | null): AuditSeal => {
    const s = {
      id,
      at: `2026-01-01T0${id}:00:00.000Z`,
      tips,
      prevHash: prev?.hash ?? GENESIS_HASH,
      keyId: key?.id ?? null,
    };
    return { ...s, hash: sealHash(s, key ?? undefined) };
  };
  const legacy = make(1, null, null);
  const old = make(2, legacy, retired);
  const now = make(3, old, current);
  let prev = null as (AuditSeal & { signed: boolean }) | null;
  for (const s of [legacy, old, now]) {
    assert.ok(verifySeal(s, prev, ring).ok, `seal ${s.id}`);
    prev = { ...s, signed: s.keyId !== null || (prev?.signed ?? false) };
  }
  const unsigned = make(4, now, null);
  assert.deepEqual(verifySeal(unsigned, prev, ring), { ok: false, problem: 'seal_key_downgrade' });
  assert.ok(verifySeal(make(4, now, retired), prev, ring).ok, 'the retired key, from a node not restarted yet');
  const foreign = make(4, now, auditKeyring([randomBytes(32)]).keys[0]!);
  assert.deepEqual(verifySeal(foreign, prev, ring), { ok: false, problem: 'seal_unknown_key' });
  // Keeping the key id but re-computing the hash as SHA-256 (what an editor without the key can do).
  const recomputed = { ...make(4, now, current) };
  recomputed.hash = sealHash({ ...recomputed, keyId: null });
  assert.deepEqual(verifySeal(recomputed, prev, ring), { ok: false, problem: 'seal_hash_mismatch' });
});

test('AUDIT_KEY_FILE: keys newest first, "secrets-key" for the derived key, comments; bad lines are named', () => {
  const derived = randomBytes(32);
  const a = randomBytes(32).toString('base64');
  const parsed = parseAuditKeyFile(`# rotated 2027-01\n${a}\n\nsecrets-key\n`, derived);
  assert.equal(parsed.keys.length, 2);
  assert.equal(parsed.keys[0]!.id, auditKeyring([Buffer.from(a, 'base64')]).keys[0]!.id);
  assert.equal(parsed.keys[1]!.id, auditKeyring([derived]).keys[0]!.id);
  assert.throws(() => parseAuditKeyFile('# nothing\n', derived), /holds no key/);
  assert.throws(() => parseAuditKeyFile(`${a}\nnot-a-key\n`, derived), /line 2: expected a 32-byte base64 key/);
  assert.throws(() => parseAuditKeyFile(`${a}\n${a}\n`, derived), /listed twice/);
  assert.throws(() => parseAuditKeyFile('c2hvcnQ=\n', derived), /line 1/);
});
