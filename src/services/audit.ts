import { randomInt } from 'node:crypto';
import {
  AUDIT_LANES,
  type AuditEvent,
  type AuditEventInput,
  type AuditSeal,
  auditHash,
  auditLaneOf,
  GENESIS_HASH,
  type LaneTip,
  sealHash,
  signingKey,
} from '../domain/audit/chain.ts';
import { AppError } from '../domain/errors.ts';
import { actorLabel } from '../domain/policy.ts';
import type { Queryable } from '../storage/database.ts';
import { appendToSink, lastSealIdInSink } from './audit-sink.ts';
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
  tx: Queryable,
  ctx: Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'>,
  event: Omit<AuditEventInput, 'actor' | 'requestId'>,
): Promise<AuditEvent> {
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
    keyId: key.id,
  };
  const hash = auditHash(full, key);
  await tx.query(
    `WITH appended AS (
       INSERT INTO audit_events
         (seq, lane, lane_seq, at, actor, action, target_type, target_id, before, after, request_id, reason, prev_hash,
          hash, key_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
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
      key.id,
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
  key_id: string | null;
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
    keyId: r.key_id ?? null,
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

export interface SealOptions {
  /**
   * Let this seal be the first signed one although events written before audit keys exist: it then vouches for them.
   * Only an operator does this, once, after upgrading (`opencis audit seal`); the hourly job never does, so removing
   * every signed seal and re-writing history in the old, unkeyed form is not signed again by the next seal.
   */
  adoptUnkeyed?: boolean;
  /** AUDIT_SEAL_SINK: the file every seal is also appended to, one JSON line each (src/services/audit-sink.ts). */
  sinkFile?: string;
}

/**
 * Records every lane's committed tip together under one hash signed with the signing audit key, chained to the
 * previous seal. The heads are read in one statement, so the seal is one consistent moment of the trail. A seal chain
 * cut at its tail is as undetectable from inside the database as a lane's: ship seals to AUDIT_SEAL_SINK, or note the
 * printed hash elsewhere.
 */
export async function sealAudit(
  ctx: Pick<ServiceContext, 'db' | 'clock' | 'sealer'>,
  options: SealOptions = {},
): Promise<AuditSeal & { adopted: number }> {
  const key = signingKey(ctx.sealer.auditKeys);
  const sealed = await ctx.db.transaction(async (tx) => {
    // One sealer at a time (the job runs once across the cluster, but the CLI can run beside it).
    await tx.query('SELECT pg_advisory_xact_lock(727275)');
    const { rows: signed } = await tx.query<{ n: string }>(
      'SELECT count(*)::text AS n FROM (SELECT 1 FROM audit_seals WHERE key_id IS NOT NULL LIMIT 1) s',
    );
    let adopted = 0;
    if (signed[0]?.n === '0') {
      // The first signed seal: whatever unkeyed events it records, it vouches for.
      // (The hourly job asks until an operator has adopted them: a look for one, not a count of all.)
      const { rows: unkeyed } = await tx.query('SELECT 1 FROM audit_events WHERE key_id IS NULL LIMIT 1');
      if (unkeyed.length > 0 && !options.adoptUnkeyed) throw new AppError('audit.adoption_required');
      if (unkeyed.length > 0) {
        const { rows } = await tx.query<{ n: string }>(
          'SELECT count(*)::text AS n FROM audit_events WHERE key_id IS NULL',
        );
        adopted = Number(rows[0]?.n ?? 0);
      }
    }
    const heads = await laneHeads(tx);
    const tips = Array.from({ length: AUDIT_LANES }, (_, lane) => {
      const tip = heads.get(lane);
      if (!tip) throw new Error(`audit lane ${lane} has no head row`);
      return tip;
    });
    const { rows } = await tx.query<{ id: string; hash: string }>(
      'SELECT id, hash FROM audit_seals ORDER BY id DESC LIMIT 1',
    );
    const last = rows[0];
    const seal: Omit<AuditSeal, 'hash'> = {
      id: last ? Number(last.id) + 1 : 1,
      at: ctx.clock.now().toISOString(),
      tips,
      prevHash: last?.hash ?? GENESIS_HASH,
      keyId: key.id,
    };
    const hash = sealHash(seal, key);
    await tx.query('INSERT INTO audit_seals (id, at, tips, prev_hash, hash, key_id) VALUES ($1, $2, $3, $4, $5, $6)', [
      seal.id,
      seal.at,
      JSON.stringify(tips.map((t) => [t.position, t.hash])),
      seal.prevHash,
      hash,
      key.id,
    ]);
    return { ...seal, hash, adopted };
  });
  // After the commit: a seal in the sink is always one the database has (or had).
  if (options.sinkFile) await shipSeals(ctx.db, options.sinkFile);
  return sealed;
}

/**
 * Appends to the sink every seal the database has past the sink's last one (so a seal whose shipping failed goes with
 * the next). Returns how many were shipped.
 */
export async function shipSeals(db: Queryable, file: string): Promise<number> {
  const last = await lastSealIdInSink(file);
  const { rows } = await db.query<SealRow>('SELECT * FROM audit_seals WHERE id > $1 ORDER BY id', [last]);
  await appendToSink(file, rows.map(sealFromRow));
  return rows.length;
}
