/**
 * The audit trail (audit_events in AUDIT_LANES hash-chained lanes, each with its head in audit_lanes) and its seals
 * (audit_seals). Rows are returned as stored; services/audit.ts turns them into events and seals. The events' tables
 * are append-only (triggers refuse updates and deletes); the only UPDATE is of a lane's head.
 */
import type { Queryable } from '../database.ts';

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

export interface SealRow {
  id: string;
  at: Date;
  tips: [number, string][];
  prev_hash: string;
  hash: string;
  key_id: string | null;
}

/**
 * Moves a lane's head one on, locking it until commit (writers in one lane extend it one at a time), and draws the
 * event's global seq after the lock is held (RETURNING runs after the update). Undefined: the lane has no head row.
 */
export async function advanceLane(
  q: Queryable,
  lane: number,
): Promise<{ laneSeq: number; hash: string; seq: number } | undefined> {
  const { rows } = await q.query<{ lane_seq: string; hash: string; seq: string }>(
    `UPDATE audit_lanes SET lane_seq = lane_seq + 1 WHERE lane = $1
     RETURNING lane_seq, hash, nextval('audit_events_seq') AS seq`,
    [lane],
  );
  const head = rows[0];
  return head && { laneSeq: Number(head.lane_seq), hash: head.hash, seq: Number(head.seq) };
}

export interface NewAuditEvent {
  seq: number;
  lane: number;
  laneSeq: number;
  at: Date;
  actor: string;
  action: string;
  targetType: string;
  targetId: string | null;
  before: unknown;
  after: unknown;
  requestId: string | null;
  reason: string | null;
  prevHash: string;
  hash: string;
}

/** Writes the event and makes its hash the lane's head, in one statement. */
export async function insertEvent(q: Queryable, e: NewAuditEvent): Promise<void> {
  await q.query(
    `WITH appended AS (
       INSERT INTO audit_events
         (seq, lane, lane_seq, at, actor, action, target_type, target_id, before, after, request_id, reason, prev_hash, hash)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
     )
     UPDATE audit_lanes SET hash = $14 WHERE lane = $2`,
    [
      e.seq,
      e.lane,
      e.laneSeq,
      e.at,
      e.actor,
      e.action,
      e.targetType,
      e.targetId,
      JSON.stringify(e.before),
      JSON.stringify(e.after),
      e.requestId,
      e.reason,
      e.prevHash,
      e.hash,
    ],
  );
}

/** A target's events, oldest first. */
export async function trailOf(q: Queryable, targetType: string, targetId: string): Promise<AuditRow[]> {
  const { rows } = await q.query<AuditRow>(
    'SELECT * FROM audit_events WHERE target_type = $1 AND target_id = $2 ORDER BY seq',
    [targetType, targetId],
  );
  return rows;
}

/** Every lane's committed head, in lane order. */
export async function laneHeads(q: Queryable): Promise<{ lane: number; position: number; hash: string }[]> {
  const { rows } = await q.query<{ lane: number; lane_seq: string; hash: string }>(
    'SELECT lane, lane_seq, hash FROM audit_lanes ORDER BY lane',
  );
  return rows.map((r) => ({ lane: Number(r.lane), position: Number(r.lane_seq), hash: r.hash }));
}

/** Up to `limit` events of a lane after position `after` up to `upTo`, in lane order (unkeyed ones by seq). */
export async function lanePage(
  q: Queryable,
  lane: number,
  after: number,
  upTo: number,
  limit: number,
): Promise<AuditRow[]> {
  const { rows } = await q.query<AuditRow>(
    `SELECT * FROM audit_events WHERE lane = $1 AND coalesce(lane_seq, seq) > $2 AND coalesce(lane_seq, seq) <= $3
         ORDER BY coalesce(lane_seq, seq) LIMIT $4`,
    [lane, after, upTo, limit],
  );
  return rows;
}

/** Each lane's highest event position, in lane order. */
export async function laneTops(q: Queryable): Promise<{ lane: number; top: number }[]> {
  const { rows } = await q.query<{ lane: number; top: string }>(
    'SELECT lane, max(coalesce(lane_seq, seq)) AS top FROM audit_events GROUP BY lane ORDER BY lane',
  );
  return rows.map((r) => ({ lane: Number(r.lane), top: Number(r.top) }));
}

/** One sealer at a time, until the transaction ends. */
export async function lockSealing(q: Queryable): Promise<void> {
  await q.query('SELECT pg_advisory_xact_lock(727275)');
}

export async function lastSeal(q: Queryable): Promise<{ id: number; hash: string } | undefined> {
  const { rows } = await q.query<{ id: string; hash: string }>(
    'SELECT id, hash FROM audit_seals ORDER BY id DESC LIMIT 1',
  );
  const r = rows[0];
  return r && { id: Number(r.id), hash: r.hash };
}

export async function insertSeal(
  q: Queryable,
  s: { id: number; at: string; tips: [number, string][]; prevHash: string; hash: string; keyId: string },
): Promise<void> {
  await q.query('INSERT INTO audit_seals (id, at, tips, prev_hash, hash, key_id) VALUES ($1, $2, $3, $4, $5, $6)', [
    s.id,
    s.at,
    JSON.stringify(s.tips),
    s.prevHash,
    s.hash,
    s.keyId,
  ]);
}

export async function hasSignedSeal(q: Queryable): Promise<boolean> {
  const { rows } = await q.query('SELECT 1 FROM audit_seals WHERE key_id IS NOT NULL LIMIT 1');
  return rows.length > 0;
}

/** The seals after `id`, in order (every one; `limit`: that many at most). */
export async function sealsAfter(q: Queryable, id: number, limit?: number): Promise<SealRow[]> {
  if (limit === undefined) {
    const { rows } = await q.query<SealRow>('SELECT * FROM audit_seals WHERE id > $1 ORDER BY id', [id]);
    return rows;
  }
  const { rows } = await q.query<SealRow>('SELECT * FROM audit_seals WHERE id > $1 ORDER BY id LIMIT $2', [id, limit]);
  return rows;
}
