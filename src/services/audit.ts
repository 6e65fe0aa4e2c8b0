import { randomInt } from 'node:crypto';
import {
  AUDIT_LANES,
  type AuditEvent,
  type AuditEventInput,
  type AuditSeal,
  auditHash,
  auditLaneOf,
  type LaneTip,
  signingKey,
} from '../domain/audit/chain.ts';
import { actorLabel } from '../domain/policy.ts';
import type { Queryable } from '../storage/database.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import type { ServiceContext } from './context.ts';

/**
 * The lane each open transaction appends to. A transaction that audits several targets keeps to the lane of its first
 * event: holding two lane locks, taken in whatever order the events come, could deadlock against another transaction.
 * (Its later events are still ordered by `seq`; writes to one target conflict on the target's own rows first.)
 */
const laneOfTransaction = new WeakMap<Queryable, number>();

function laneFor(event: Pick<AuditEventInput, 'targetType' | 'targetId'>, requestId: string | null): number {
  if (event.targetId !== null) return auditLaneOf(`${event.targetType}\u0000${event.targetId}`);
  // No target (a refused sign-in by an unknown card, say): keep one request's events together, or spread them.
  if (requestId !== null) return auditLaneOf(`request\u0000${requestId}`);
  return randomInt(AUDIT_LANES);
}

/**
 * Appends an event to its lane inside the caller's transaction, so the change and its audit record commit or roll
 * back together. Advancing the lane's head locks it until commit, so writers in one lane extend it one at a time and
 * it never forks; writers in other lanes do not wait. Callers append last, to hold the lock briefly. The event's hash
 * is keyed with the signing audit key (ctx.sealer), so no one without it can re-hash the lane after an edit.
 */
export async function appendAudit(
  into: Queryable | Repositories,
  ctx: Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'>,
  event: Omit<AuditEventInput, 'actor' | 'requestId'>,
): Promise<AuditEvent> {
  // The transaction itself (repositories are bound to it): one lane per transaction, however it is reached.
  const tx = 'handle' in into ? into.handle : into;
  const lane = laneOfTransaction.get(tx) ?? laneFor(event, ctx.requestId);
  // (A whole Database is not a transaction: pinning it would send every later event to one lane.)
  if (!('transaction' in tx)) laneOfTransaction.set(tx, lane);
  // The global seq is drawn after the lock is held (RETURNING runs after the row update), so within a lane it rises
  // with the lane position.
  const { rows } = await tx.query<{ lane_seq: string; hash: string; seq: string }>(
    `UPDATE audit_lanes SET lane_seq = lane_seq + 1 WHERE lane = $1
     RETURNING lane_seq, hash, nextval('audit_events_seq') AS seq`,
    [lane],
  );
  const head = rows[0];
  if (!head) throw new Error(`audit lane ${lane} has no head row (migration 0011 not applied?)`);
  const at = ctx.clock.now();
  const key = signingKey(ctx.sealer.auditKeys);
  const full: Omit<AuditEvent, 'hash'> = {
    seq: Number(head.seq),
    lane,
    laneSeq: Number(head.lane_seq),
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
  const hash = auditHash(full, key);
  await tx.query(
    `WITH appended AS (
       INSERT INTO audit_events
         (seq, lane, lane_seq, at, actor, action, target_type, target_id, before, after, request_id, reason, prev_hash, hash)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
     )
     UPDATE audit_lanes SET hash = $14 WHERE lane = $2`,
    [
      full.seq,
      lane,
      full.laneSeq,
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
  return { ...full, hash };
}

export interface AuditRow {
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

export function auditEventFromRow(r: AuditRow): AuditEvent {
  return {
    seq: Number(r.seq),
    lane: Number(r.lane),
    laneSeq: r.lane_seq === null ? null : Number(r.lane_seq),
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

/** A target's history, oldest first. */
export async function auditTrailOf(db: Queryable, targetType: string, targetId: string): Promise<AuditEvent[]> {
  const { rows } = await db.query<AuditRow>(
    'SELECT * FROM audit_events WHERE target_type = $1 AND target_id = $2 ORDER BY seq',
    [targetType, targetId],
  );
  return rows.map(auditEventFromRow);
}

/** Every lane's committed head, in lane order. */
export async function laneHeads(db: Queryable): Promise<Map<number, LaneTip>> {
  const { rows } = await db.query<{ lane: number; lane_seq: string; hash: string }>(
    'SELECT lane, lane_seq, hash FROM audit_lanes ORDER BY lane',
  );
  return new Map(rows.map((r) => [Number(r.lane), { position: Number(r.lane_seq), hash: r.hash }]));
}

export interface SealRow {
  id: string;
  at: Date;
  tips: [number, string][];
  prev_hash: string;
  hash: string;
  key_id: string | null;
}

export function sealFromRow(r: SealRow): AuditSeal {
  return {
    id: Number(r.id),
    at: new Date(r.at).toISOString(),
    tips: r.tips.map(([position, hash]) => ({ position: Number(position), hash })),
    prevHash: r.prev_hash,
    keyId: r.key_id ?? null,
    hash: r.hash,
  };
}
