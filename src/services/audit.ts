import {
  type AuditEvent,
  type AuditEventInput,
  auditHash,
  GENESIS_HASH,
  verifyChainSegment,
} from '../domain/audit/chain.ts';
import { actorLabel } from '../domain/policy.ts';
import type { Database, Queryable } from '../storage/database.ts';
import type { ServiceContext } from './context.ts';

/**
 * Appends an event to the chain inside the caller's transaction, so the change and its audit record commit or roll
 * back together. Locking audit_head serialises appenders; callers append last, to hold the lock briefly.
 */
export async function appendAudit(
  tx: Queryable,
  ctx: Pick<ServiceContext, 'clock' | 'actor' | 'requestId'>,
  event: Omit<AuditEventInput, 'actor' | 'requestId'>,
): Promise<AuditEvent> {
  const { rows } = await tx.query<{ seq: string; hash: string }>(
    'SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE',
  );
  const head = rows[0]!;
  const at = ctx.clock.now();
  const full: Omit<AuditEvent, 'hash'> = {
    seq: Number(head.seq) + 1,
    at: at.toISOString(),
    actor: actorLabel(ctx.actor),
    action: event.action,
    targetType: event.targetType,
    targetId: event.targetId,
    before: event.before ?? null,
    after: event.after ?? null,
    requestId: ctx.requestId,
    reason: event.reason ?? null,
    prevHash: head.hash,
  };
  const hash = auditHash(full);
  await tx.query(
    `INSERT INTO audit_events (seq, at, actor, action, target_type, target_id, before, after, request_id, reason, prev_hash, hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [
      full.seq,
      at,
      full.actor,
      full.action,
      full.targetType,
      full.targetId,
      JSON.stringify(full.before),
      JSON.stringify(full.after),
      full.requestId,
      full.reason,
      full.prevHash,
      hash,
    ],
  );
  await tx.query('UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1', [full.seq, hash]);
  return { ...full, hash };
}

interface AuditRow {
  seq: string;
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

function fromRow(r: AuditRow): AuditEvent {
  return {
    seq: Number(r.seq),
    at: new Date(r.at).toISOString(),
    actor: r.actor,
    action: r.action,
    targetType: r.target_type,
    targetId: r.target_id,
    before: r.before,
    after: r.after,
    requestId: r.request_id,
    reason: r.reason,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

export type AuditVerification =
  | { ok: true; events: number; headHash: string }
  | { ok: false; events: number; seq: number; problem: string; event: AuditEvent | null };

/** Walks the whole chain in pages, then checks the tip against audit_head (which catches a truncated tail). */
export async function verifyAuditChain(db: Database, pageSize = 5_000): Promise<AuditVerification> {
  let prev = { hash: GENESIS_HASH, seq: 0 };
  for (;;) {
    const { rows } = await db.query<AuditRow>('SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2', [
      prev.seq,
      pageSize,
    ]);
    if (rows.length === 0) break;
    const events = rows.map(fromRow);
    const res = verifyChainSegment(events, prev);
    if (!res.ok) {
      const event = events.find((e) => e.seq === res.problem.seq) ?? null;
      return { ok: false, events: prev.seq, seq: res.problem.seq, problem: res.problem.problem, event };
    }
    prev = res.last;
  }
  const { rows } = await db.query<{ seq: string; hash: string }>('SELECT seq, hash FROM audit_head WHERE id = 1');
  const head = rows[0];
  if (!head || Number(head.seq) !== prev.seq || head.hash !== prev.hash) {
    return { ok: false, events: prev.seq, seq: prev.seq + 1, problem: 'missing_events_at_tail', event: null };
  }
  return { ok: true, events: prev.seq, headHash: prev.hash };
}

export async function auditTrailOf(db: Queryable, targetType: string, targetId: string): Promise<AuditEvent[]> {
  const { rows } = await db.query<AuditRow>(
    'SELECT * FROM audit_events WHERE target_type = $1 AND target_id = $2 ORDER BY seq',
    [targetType, targetId],
  );
  return rows.map(fromRow);
}
