import { createHash } from 'node:crypto';

/**
 * The audit trail is a hash chain: each event's hash covers its own fields and the previous event's hash, so
 * changing, deleting or reordering any stored event breaks every hash after it, and `opencis audit verify` names
 * the first event that no longer verifies.
 */
export const GENESIS_HASH = '0'.repeat(64);

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
  seq: number;
  at: string;
  prevHash: string;
  hash: string;
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
  const body = canonicalJson({
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
  });
  return createHash('sha256').update(event.prevHash).update('\n').update(body).digest('hex');
}

export type ChainProblem = { seq: number; problem: 'hash_mismatch' | 'prev_hash_mismatch' | 'sequence_gap' };

/** Checks a run of events in sequence order, continuing from `prevHash`/`prevSeq`. Returns the first problem. */
export function verifyChainSegment(
  events: readonly AuditEvent[],
  prev: { hash: string; seq: number },
): { ok: true; last: { hash: string; seq: number } } | { ok: false; problem: ChainProblem } {
  let { hash, seq } = prev;
  for (const e of events) {
    if (e.seq !== seq + 1) return { ok: false, problem: { seq: e.seq, problem: 'sequence_gap' } };
    if (e.prevHash !== hash) return { ok: false, problem: { seq: e.seq, problem: 'prev_hash_mismatch' } };
    if (auditHash(e) !== e.hash) return { ok: false, problem: { seq: e.seq, problem: 'hash_mismatch' } };
    hash = e.hash;
    seq = e.seq;
  }
  return { ok: true, last: { hash, seq } };
}
