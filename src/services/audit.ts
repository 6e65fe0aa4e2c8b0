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
import type { AuditRow, SealRow } from '../storage/repositories/audit.ts';
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
  repos: Repositories,
  ctx: Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'>,
  event: Omit<AuditEventInput, 'actor' | 'requestId'>,
): Promise<AuditEvent> {
  // The transaction itself (repositories are bound to it): one lane per transaction, however it is reached.
  const tx = repos.handle;
  const lane = laneOfTransaction.get(tx) ?? laneFor(event, ctx.requestId);
  // (A whole Database is not a transaction: pinning it would send every later event to one lane.)
  if (!('transaction' in tx)) laneOfTransaction.set(tx, lane);
  // The global seq is drawn after the lock is held (RETURNING runs after the row update), so within a lane it rises
  // with the lane position.
  const head = await repos.audit.advanceLane(lane);
  if (!head) throw new Error(`audit lane ${lane} has no head row (migration 0011 not applied?)`);
  const at = ctx.clock.now();
  const key = signingKey(ctx.sealer.auditKeys);
  const full: Omit<AuditEvent, 'hash'> = {
    seq: head.seq,
    lane,
    laneSeq: head.laneSeq,
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
  await repos.audit.insertEvent({
    seq: full.seq,
    lane,
    laneSeq: head.laneSeq,
    at,
    actor: full.actor,
    action: full.action,
    targetType: full.targetType,
    targetId: full.targetId,
    before: full.before,
    after: full.after,
    requestId: full.requestId,
    reason: event.reason ?? null,
    prevHash: full.prevHash,
    hash,
  });
  return { ...full, hash };
}

export type { AuditRow, SealRow } from '../storage/repositories/audit.ts';

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
export async function auditTrailOf(repos: Repositories, targetType: string, targetId: string): Promise<AuditEvent[]> {
  return (await repos.audit.trailOf(targetType, targetId)).map(auditEventFromRow);
}

/** Every lane's committed head, in lane order. */
export async function laneHeads(repos: Repositories): Promise<Map<number, LaneTip>> {
  const rows = await repos.audit.laneHeads();
  return new Map(rows.map((r) => [r.lane, { position: r.position, hash: r.hash }]));
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
