import { createHash } from 'node:crypto';

/**
 * The audit trail is a set of hash chains ("lanes"): each event's hash covers its own fields, its lane and position
 * in the lane, and the previous event's hash in that lane, so changing, deleting or reordering any stored event breaks
 * every hash after it in its lane, and `opencis audit verify` names the first event that no longer verifies. Each
 * lane's tip is also kept in a head row, which catches a lane whose newest events were cut off.
 *
 * One chain made every audited write in the cluster wait for the one before it (its head row is locked until commit);
 * with lanes, writers wait only for writers in the same lane. A target's events always go to the same lane (a stable
 * hash of the target), so one person's history stays in order on one chain.
 */
export const GENESIS_HASH = '0'.repeat(64);

/** Fixed: a target's lane is its hash modulo this, so changing it would need a migration (0011 creates the heads). */
export const AUDIT_LANES = 32;

export interface AuditEventInput {
  actor: string;
  action: string;
  targetType: string;
  targetId: string | null;
  before: unknown;
  after: unknown;
  requestId: string | null;
  reason?: string | null;
}

export interface AuditEvent extends AuditEventInput {
  /** The global reading order (ascending in time across all lanes); history pages sort by it. */
  seq: number;
  lane: number;
  /**
   * Position in the lane, from 1. Null for events written before lanes existed (migration 0011): they form the start
   * of lane 0, their position is their `seq`, and their hash has the single-chain form (no lane fields).
   */
  laneSeq: number | null;
  at: string;
  prevHash: string;
  hash: string;
}

/** Where an event sits in its lane. */
export function lanePosition(e: Pick<AuditEvent, 'seq' | 'laneSeq'>): number {
  return e.laneSeq ?? e.seq;
}

/** The lane of a target: a stable hash, so every event about one target extends the same chain, in order. */
export function auditLaneOf(key: string): number {
  return createHash('sha256').update(key).digest().readUInt32BE(0) % AUDIT_LANES;
}

/** JSON with object keys sorted at every level, so the same value always hashes the same after a JSONB round trip. */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function auditHash(event: Omit<AuditEvent, 'hash'>): string {
  const fields = {
    seq: event.seq,
    at: event.at,
    actor: event.actor,
    action: event.action,
    targetType: event.targetType,
    targetId: event.targetId,
    before: event.before ?? null,
    after: event.after ?? null,
    requestId: event.requestId,
    reason: event.reason ?? null,
  };
  // Events from before lanes keep the hash they were written with; every later one also covers its lane and position.
  const body = canonicalJson(event.laneSeq === null ? fields : { ...fields, lane: event.lane, laneSeq: event.laneSeq });
  return createHash('sha256').update(event.prevHash).update('\n').update(body).digest('hex');
}

export type ChainProblemKind = 'hash_mismatch' | 'prev_hash_mismatch' | 'sequence_gap' | 'wrong_lane';
export type ChainProblem = { seq: number; lane: number; position: number; problem: ChainProblemKind };
/** Where a lane's verification has got to: the position and hash of the last event that verified (0 and genesis). */
export type LaneTip = { position: number; hash: string };

/** Checks a run of one lane's events in lane order, continuing from `prev`. Returns the first problem. */
export function verifyChainSegment(
  lane: number,
  events: readonly AuditEvent[],
  prev: LaneTip,
): { ok: true; last: LaneTip } | { ok: false; problem: ChainProblem } {
  let { hash, position } = prev;
  for (const e of events) {
    const at = lanePosition(e);
    const problem = (kind: ChainProblemKind) => ({
      ok: false as const,
      problem: { seq: e.seq, lane, position: at, problem: kind },
    });
    // Pre-lane events only ever start lane 0; one found in another lane was moved there.
    if (e.lane !== lane || (e.laneSeq === null && lane !== 0)) return problem('wrong_lane');
    if (at !== position + 1) return problem('sequence_gap');
    if (e.prevHash !== hash) return problem('prev_hash_mismatch');
    if (auditHash(e) !== e.hash) return problem('hash_mismatch');
    hash = e.hash;
    position = at;
  }
  return { ok: true, last: { hash, position } };
}

/** Every lane's tip at one moment, in lane order. */
export type LaneTips = readonly LaneTip[];

/**
 * A seal records every lane's tip together under one hash, chained to the seal before it. Cutting the newest events
 * off a lane and rewinding its head row leaves each lane self-consistent; a seal that saw the lost tip still names it.
 */
export interface AuditSeal {
  id: number;
  at: string;
  tips: LaneTips;
  prevHash: string;
  hash: string;
}

export function sealHash(seal: Omit<AuditSeal, 'hash'>): string {
  const body = canonicalJson({ id: seal.id, at: seal.at, tips: seal.tips.map((t) => [t.position, t.hash]) });
  return createHash('sha256').update(seal.prevHash).update('\n').update(body).digest('hex');
}

/** One digest of all lane tips, printed by verify so an operator can note it outside the database. */
export function tipsDigest(tips: LaneTips): string {
  return createHash('sha256')
    .update(canonicalJson(tips.map((t) => [t.position, t.hash])))
    .digest('hex');
}
