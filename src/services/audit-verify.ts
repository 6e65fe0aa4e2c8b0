import {
  AUDIT_LANES,
  type AuditEvent,
  type AuditSeal,
  type ChainProblemKind,
  GENESIS_HASH,
  type LaneTip,
  sealHash,
  tipsDigest,
  verifyChainSegment,
} from '../domain/audit/chain.ts';
import type { Database } from '../storage/database.ts';
import { type AuditRow, auditEventFromRow, laneHeads, sealFromRow } from './audit.ts';

export type AuditProblem =
  | ChainProblemKind
  /** The lane's head says it is longer than its events (its newest events were deleted). */
  | 'missing_events_at_tail'
  /** The lane's last event is not the one its head names. */
  | 'head_hash_mismatch'
  /** Events stored past the lane's head (added without going through the head). */
  | 'events_beyond_head'
  /** A lane's head row is gone, or events name a lane that does not exist. */
  | 'missing_lane_head'
  | 'seal_hash_mismatch'
  | 'seal_prev_hash_mismatch'
  | 'seal_sequence_gap'
  /** A seal saw the lane reach further than it now does (the lane was cut and its head rewound). */
  | 'sealed_events_missing'
  /** The event at a sealed position is not the one the seal recorded. */
  | 'sealed_event_mismatch';

export type AuditVerification =
  | {
      ok: true;
      events: number;
      lanes: number;
      /** One digest of every lane's verified tip. */
      tipsDigest: string;
      lastSeal: Pick<AuditSeal, 'id' | 'at' | 'hash'> | null;
    }
  | {
      ok: false;
      /** Events verified before the problem was found. */
      events: number;
      problem: AuditProblem;
      lane: number | null;
      /** Position in the lane (or the seal's id for a seal problem). */
      position: number | null;
      seq: number | null;
      event: AuditEvent | null;
    };

type Broken = Extract<AuditVerification, { ok: false }>;

/** Walks the seals, then every lane in pages, checking each lane against its head and against every seal. */
export async function verifyAuditChain(db: Database, pageSize = 5_000): Promise<AuditVerification> {
  const broken = (b: Omit<Broken, 'ok' | 'events' | 'seq' | 'event'> & Partial<Broken>, events: number): Broken => ({
    ok: false,
    events,
    seq: null,
    event: null,
    ...b,
  });

  // Seals first, heads second: every seal then saw heads no further on than the ones read below.
  const seals = await verifySeals(db, pageSize);
  if ('problem' in seals) return broken(seals.problem, 0);
  const heads = await laneHeads(db);

  let events = 0;
  const tips: LaneTip[] = [];
  for (let lane = 0; lane < AUDIT_LANES; lane++) {
    const head = heads.get(lane);
    if (!head) return broken({ problem: 'missing_lane_head', lane, position: null }, events);
    const sealed = seals.checkpoints.get(lane) ?? new Map<number, string>();
    let prev: LaneTip = { position: 0, hash: GENESIS_HASH };
    while (prev.position < head.position) {
      const { rows } = await db.query<AuditRow>(
        `SELECT * FROM audit_events WHERE lane = $1 AND coalesce(lane_seq, seq) > $2 AND coalesce(lane_seq, seq) <= $3
         ORDER BY coalesce(lane_seq, seq) LIMIT $4`,
        [lane, prev.position, head.position, pageSize],
      );
      if (rows.length === 0) break;
      const page = rows.map(auditEventFromRow);
      const res = verifyChainSegment(lane, page, prev);
      if (!res.ok) {
        const event = page.find((e) => e.seq === res.problem.seq) ?? null;
        const before = page.findIndex((e) => e.seq === res.problem.seq);
        return broken({ ...res.problem, event }, events + Math.max(0, before));
      }
      for (const [i, e] of page.entries()) {
        const position = prev.position + i + 1;
        const seen = sealed.get(position);
        if (seen !== undefined && seen !== e.hash) {
          return broken({ problem: 'sealed_event_mismatch', lane, position, seq: e.seq, event: e }, events + i);
        }
      }
      events += page.length;
      prev = res.last;
    }
    if (prev.position < head.position) {
      return broken({ problem: 'missing_events_at_tail', lane, position: prev.position + 1 }, events);
    }
    if (prev.hash !== head.hash)
      return broken({ problem: 'head_hash_mismatch', lane, position: prev.position }, events);
    const furthest = seals.furthest.get(lane) ?? 0;
    if (furthest > prev.position) {
      return broken({ problem: 'sealed_events_missing', lane, position: prev.position + 1 }, events);
    }
    tips.push(prev);
  }

  // Events past a head, or in a lane with no head. The tops are read before the heads again: an append commits its
  // event and its head together, so a concurrent writer never shows up here.
  const { rows: tops } = await db.query<{ lane: number; top: string }>(
    'SELECT lane, max(coalesce(lane_seq, seq)) AS top FROM audit_events GROUP BY lane ORDER BY lane',
  );
  const now = await laneHeads(db);
  for (const t of tops) {
    const lane = Number(t.lane);
    const head = now.get(lane);
    if (!head) return broken({ problem: 'missing_lane_head', lane, position: null }, events);
    if (Number(t.top) > head.position) {
      return broken({ problem: 'events_beyond_head', lane, position: head.position + 1 }, events);
    }
  }
  const last = seals.last;
  return {
    ok: true,
    events,
    lanes: AUDIT_LANES,
    tipsDigest: tipsDigest(tips),
    lastSeal: last ? { id: last.id, at: last.at, hash: last.hash } : null,
  };
}

interface SealCheck {
  /** lane → position → hash the seals recorded there. */
  checkpoints: Map<number, Map<number, string>>;
  /** lane → the furthest position any seal saw. */
  furthest: Map<number, number>;
  last: AuditSeal | null;
}

async function verifySeals(
  db: Database,
  pageSize: number,
): Promise<SealCheck | { problem: Omit<Broken, 'ok' | 'events' | 'seq' | 'event'> }> {
  const check: SealCheck = { checkpoints: new Map(), furthest: new Map(), last: null };
  for (;;) {
    const { rows } = await db.query<Parameters<typeof sealFromRow>[0]>(
      'SELECT * FROM audit_seals WHERE id > $1 ORDER BY id LIMIT $2',
      [check.last?.id ?? 0, pageSize],
    );
    if (rows.length === 0) return check;
    for (const seal of rows.map(sealFromRow)) {
      const at = { lane: null, position: seal.id };
      if (seal.id !== (check.last?.id ?? 0) + 1) return { problem: { problem: 'seal_sequence_gap', ...at } };
      if (seal.prevHash !== (check.last?.hash ?? GENESIS_HASH)) {
        return { problem: { problem: 'seal_prev_hash_mismatch', ...at } };
      }
      if (sealHash(seal) !== seal.hash) return { problem: { problem: 'seal_hash_mismatch', ...at } };
      for (const [lane, tip] of seal.tips.entries()) {
        if (tip.position === 0) continue;
        const points = check.checkpoints.get(lane) ?? new Map<number, string>();
        check.checkpoints.set(lane, points);
        points.set(tip.position, tip.hash);
        check.furthest.set(lane, Math.max(check.furthest.get(lane) ?? 0, tip.position));
      }
      check.last = seal;
    }
  }
}
