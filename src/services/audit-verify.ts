import {
  AUDIT_LANES,
  type AuditEvent,
  type AuditKeyring,
  type AuditSeal,
  type ChainProblemKind,
  LANE_START,
  type LaneCursor,
  type LaneTip,
  type SealProblemKind,
  sealHash,
  signingKey,
  tipsDigest,
  verifyChainSegment,
  verifySeal,
} from '../domain/audit/chain.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { auditEventFromRow, laneHeads, sealFromRow } from './audit.ts';
import { readSink } from './audit-sink.ts';

export type AuditProblem =
  | ChainProblemKind
  | SealProblemKind
  /** The lane's head says it is longer than its events (its newest events were deleted). */
  | 'missing_events_at_tail'
  /** The lane's last event is not the one its head names. */
  | 'head_hash_mismatch'
  /** Events stored past the lane's head (added without going through the head). */
  | 'events_beyond_head'
  /** A lane's head row is gone, or events name a lane that does not exist. */
  | 'missing_lane_head'
  /** The sink holds a seal the database does not (the newest seals were cut off), or holds differently. */
  | 'sink_seal_missing'
  | 'sink_seal_mismatch'
  /** A line of the sink is not a seal, or is one whose signature does not verify. */
  | 'sink_unreadable'
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
      lastSeal: Pick<AuditSeal, 'id' | 'at' | 'hash' | 'keyId'> | null;
      /** Events from before audit keys (unkeyed), each vouched for by the first signed seal. */
      unkeyedEvents: number;
      /** The signing key's id, and the ids of the keys that keyed what was verified. */
      signingKeyId: string;
      keyIdsSeen: string[];
      /** With a sink: how many seals it holds, and the ids of the database's seals not in it yet. */
      sink: { seals: number; notShipped: number[] } | null;
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

export interface VerifyOptions {
  pageSize?: number;
  /** Accept unkeyed events wherever they are (before the first signed seal is made, to count what it will vouch for). */
  vouchUnkeyed?: boolean;
  /** AUDIT_SEAL_SINK: compare the database's seals with the ones shipped there. */
  sinkFile?: string;
}

/**
 * Walks the seals (and the sink's), then every lane in pages, checking each lane against its head and every seal, and
 * every keyed event and signed seal against the audit keys.
 */
export async function verifyAuditChain(
  repos: Repositories,
  ring: AuditKeyring,
  options: VerifyOptions = {},
): Promise<AuditVerification> {
  const pageSize = options.pageSize ?? 5_000;
  const broken = (b: Omit<Broken, 'ok' | 'events' | 'seq' | 'event'> & Partial<Broken>, events: number): Broken => ({
    ok: false,
    events,
    seq: null,
    event: null,
    ...b,
  });
  // Seals first, heads second: every seal then saw heads no further on than the ones read below.
  const seals = await verifySeals(repos, ring, pageSize);
  if ('problem' in seals) return broken(seals.problem, 0);
  const heads = await laneHeads(repos);

  let events = 0;
  let unkeyedEvents = 0;
  const keyIdsSeen = new Set<string>();
  for (const seal of seals.hashes.values()) if (seal.keyId) keyIdsSeen.add(seal.keyId);
  const tips: LaneTip[] = [];
  for (let lane = 0; lane < AUDIT_LANES; lane++) {
    const head = heads.get(lane);
    if (!head) return broken({ problem: 'missing_lane_head', lane, position: null }, events);
    const sealed = seals.checkpoints.get(lane) ?? new Map<number, string>();
    const vouchedUntil = options.vouchUnkeyed
      ? Number.POSITIVE_INFINITY
      : (seals.firstSigned?.tips[lane]?.position ?? 0);
    let prev: LaneCursor = LANE_START;
    while (prev.position < head.position) {
      const rows = await repos.audit.lanePage(lane, prev.position, head.position, pageSize);
      if (rows.length === 0) break;
      const page = rows.map(auditEventFromRow);
      const res = verifyChainSegment(lane, page, prev, ring, vouchedUntil, (key) => {
        if (key === null) unkeyedEvents++;
        else keyIdsSeen.add(key.id);
      });
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
  const tops = await repos.audit.laneTops();
  const now = await laneHeads(repos);
  for (const t of tops) {
    const lane = Number(t.lane);
    const head = now.get(lane);
    if (!head) return broken({ problem: 'missing_lane_head', lane, position: null }, events);
    if (Number(t.top) > head.position) {
      return broken({ problem: 'events_beyond_head', lane, position: head.position + 1 }, events);
    }
  }
  // Last: a lane that does not verify is the more precise finding; this finds what was cut off the database's end.
  const sink = options.sinkFile ? await compareWithSink(options.sinkFile, seals.hashes, ring) : null;
  if (sink && 'problem' in sink) return broken(sink.problem, events);
  const last = seals.last;
  return {
    ok: true,
    events,
    lanes: AUDIT_LANES,
    tipsDigest: tipsDigest(tips),
    lastSeal: last ? { id: last.id, at: last.at, hash: last.hash, keyId: last.keyId } : null,
    unkeyedEvents,
    signingKeyId: signingKey(ring).id,
    keyIdsSeen: [...keyIdsSeen].sort(),
    sink: sink ? { seals: sink.seals, notShipped: sink.notShipped } : null,
  };
}

type Located = Omit<Broken, 'ok' | 'events' | 'seq' | 'event'>;

interface SealCheck {
  /** lane → position → hash the seals recorded there. */
  checkpoints: Map<number, Map<number, string>>;
  /** lane → the furthest position any seal saw. */
  furthest: Map<number, number>;
  last: (AuditSeal & { signed: boolean }) | null;
  /** The first seal signed with an audit key: the unkeyed events it recorded are vouched for, no others. */
  firstSigned: AuditSeal | null;
  /** Every seal by id (a few thousand a year). */
  hashes: Map<number, Pick<AuditSeal, 'hash' | 'keyId'>>;
}

async function verifySeals(
  repos: Repositories,
  ring: AuditKeyring,
  pageSize: number,
): Promise<SealCheck | { problem: Located }> {
  const check: SealCheck = {
    checkpoints: new Map(),
    furthest: new Map(),
    last: null,
    firstSigned: null,
    hashes: new Map(),
  };
  for (;;) {
    const rows = await repos.audit.sealsAfter(check.last?.id ?? 0, pageSize);
    if (rows.length === 0) return check;
    for (const seal of rows.map(sealFromRow)) {
      const res = verifySeal(seal, check.last, ring);
      if (!res.ok) return { problem: { problem: res.problem, lane: null, position: seal.id } };
      if (seal.keyId !== null) check.firstSigned ??= seal;
      check.hashes.set(seal.id, { hash: seal.hash, keyId: seal.keyId });
      for (const [lane, tip] of seal.tips.entries()) {
        if (tip.position === 0) continue;
        const points = check.checkpoints.get(lane) ?? new Map<number, string>();
        check.checkpoints.set(lane, points);
        points.set(tip.position, tip.hash);
        check.furthest.set(lane, Math.max(check.furthest.get(lane) ?? 0, tip.position));
      }
      check.last = { ...seal, signed: check.firstSigned !== null };
    }
  }
}

/**
 * Every seal in the sink must be in the database as it was shipped, and signed (when it was) with a key of the ring:
 * the sink is outside the database, so a seal there that the database lost shows where its newest part was cut off.
 */
async function compareWithSink(
  file: string,
  db: Map<number, Pick<AuditSeal, 'hash' | 'keyId'>>,
  ring: AuditKeyring,
): Promise<{ seals: number; notShipped: number[] } | { problem: Located }> {
  const reading = await readSink(file);
  if (!reading.ok) return { problem: { problem: 'sink_unreadable', lane: null, position: reading.line } };
  const shipped = new Set<number>();
  for (const seal of reading.seals) {
    const at = { lane: null, position: seal.id };
    const key = seal.keyId === null ? undefined : ring.keys.find((k) => k.id === seal.keyId);
    if (seal.keyId !== null && (!key || sealHash(seal, key) !== seal.hash)) {
      return { problem: { problem: 'sink_unreadable', ...at } };
    }
    const stored = db.get(seal.id);
    if (!stored) return { problem: { problem: 'sink_seal_missing', ...at } };
    if (stored.hash !== seal.hash || stored.keyId !== seal.keyId) {
      return { problem: { problem: 'sink_seal_mismatch', ...at } };
    }
    shipped.add(seal.id);
  }
  // Seals from before the sink was set up were never shipped; every later one should have been.
  const first = shipped.size > 0 ? Math.min(...shipped) : 0;
  const notShipped = [...db.keys()].filter((id) => !shipped.has(id) && id > first);
  return { seals: shipped.size, notShipped };
}
