import { createHash, createHmac, createSecretKey, type KeyObject } from 'node:crypto';

/**
 * The audit trail is a set of hash chains ("lanes"): each event's hash covers its own fields, its lane and position
 * in the lane, and the previous event's hash in that lane, so changing, deleting or reordering any stored event breaks
 * every hash after it in its lane, and `opencis audit verify` names the first event that no longer verifies. Each
 * lane's tip is also kept in a head row, which catches a lane whose newest events were cut off.
 *
 * Hashes alone are not enough against someone who can write to the database: they can edit an event and re-compute
 * every hash after it, the head and the seals. So events and seals are keyed (HMAC-SHA-256) with an audit key that is
 * not in the database (derived from SECRETS_KEY, or from AUDIT_KEY_FILE): without it nothing can be re-hashed so that
 * it verifies. Events and seals written before keys (migration `audit_keys`) keep their unkeyed SHA-256 form; they are
 * trusted only as far as the first signed seal recorded them.
 *
 * One chain made every audited write in the cluster wait for the one before it (its head row is locked until commit);
 * with lanes, writers wait only for writers in the same lane. A target's events always go to the same lane (a stable
 * hash of the target), so one person's history stays in order on one chain.
 */
export const GENESIS_HASH = '0'.repeat(64);

/** Fixed: a target's lane is its hash modulo this, so changing it would need a migration (0011 creates the heads). */
export const AUDIT_LANES = 32;

/**
 * A key the trail is keyed with. Its id (not secret) is stored beside each seal it signed. Events do not store it
 * (one more column on every audited write costs more than trying the few keys of the ring when verifying).
 */
export interface AuditKey {
  readonly id: string;
  readonly secret: KeyObject;
}

/**
 * The audit keys, newest first. The first keys every new event and seal; the others are retired keys kept so that
 * what they keyed still verifies. Any key of the ring verifies anything it keyed, in any order: during a rolling
 * restart after a rotation, nodes that have the new file and nodes that have not yet write to the same lanes.
 */
export interface AuditKeyring {
  readonly keys: readonly AuditKey[];
}

export function auditKey(secret: Buffer): AuditKey {
  if (secret.length < 32) throw new Error('an audit key must be at least 32 bytes');
  const id = createHmac('sha256', secret).update('opencis-audit-key-id').digest('hex').slice(0, 16);
  return { id, secret: createSecretKey(secret) };
}

export function auditKeyring(secrets: readonly Buffer[]): AuditKeyring {
  if (secrets.length === 0) throw new Error('the audit keyring needs at least one key');
  const keys = secrets.map(auditKey);
  if (new Set(keys.map((k) => k.id)).size !== keys.length) throw new Error('the same audit key is listed twice');
  return { keys };
}

/** The key that keys new events and seals. */
export function signingKey(ring: AuditKeyring): AuditKey {
  return ring.keys[0]!;
}

/** The key of the ring a record names: null for an unkeyed record, undefined for a key the ring does not hold. */
function keyNamed(ring: AuditKeyring, keyId: string | null): AuditKey | null | undefined {
  if (keyId === null) return null;
  return ring.keys.find((k) => k.id === keyId);
}

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

/** prevHash + body: an HMAC with `key`, or (for records from before keys) the plain SHA-256 anyone can compute. */
function digest(key: AuditKey | null, prevHash: string, body: string): string {
  const h = key ? createHmac('sha256', key.secret) : createHash('sha256');
  return h.update(prevHash).update('\n').update(body).digest('hex');
}

/** The canonical text an event's hash covers. */
function eventBody(event: Omit<AuditEvent, 'hash'>): string {
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
  return canonicalJson(event.laneSeq === null ? fields : { ...fields, lane: event.lane, laneSeq: event.laneSeq });
}

/** An event's hash: keyed with `key` (every event written since keys), or unkeyed SHA-256 (events from before). */
export function auditHash(event: Omit<AuditEvent, 'hash'>, key: AuditKey | null = null): string {
  return digest(key, event.prevHash, eventBody(event));
}

/**
 * Which key of the ring an event's hash was keyed with: the key, null for the unkeyed form, undefined when neither
 * (the event, or the hash, was changed by someone without a key).
 */
export function keyOfEvent(event: AuditEvent, ring: AuditKeyring): AuditKey | null | undefined {
  const body = eventBody(event);
  for (const key of ring.keys) if (digest(key, event.prevHash, body) === event.hash) return key;
  return digest(null, event.prevHash, body) === event.hash ? null : undefined;
}

export type ChainProblemKind =
  | 'hash_mismatch'
  | 'prev_hash_mismatch'
  | 'sequence_gap'
  | 'wrong_lane'
  /** Unkeyed after a keyed event in the same lane: this version never writes unkeyed events. */
  | 'key_downgrade'
  /** An unkeyed event that no signed seal vouches for: past the first signed seal's tip, or no signed seal at all. */
  | 'unkeyed_not_sealed';
export type ChainProblem = { seq: number; lane: number; position: number; problem: ChainProblemKind };
/** Where a lane's verification has got to: the position and hash of the last event that verified (0 and genesis). */
export type LaneTip = { position: number; hash: string };
/** A lane's verification so far: its tip, and whether a keyed event has been seen in it. */
export type LaneCursor = LaneTip & { keyed: boolean };

export const LANE_START: LaneCursor = { position: 0, hash: GENESIS_HASH, keyed: false };

/**
 * Checks a run of one lane's events in lane order, continuing from `prev`. Returns the first problem. An unkeyed event
 * is accepted only up to `vouchedUntil`, the lane position the first signed seal recorded (0 when there is none):
 * anyone can compute an unkeyed hash, so only a seal made with the key says such an event was there before keys.
 */
export function verifyChainSegment(
  lane: number,
  events: readonly AuditEvent[],
  prev: LaneCursor,
  ring: AuditKeyring,
  vouchedUntil: number,
  seen: (key: AuditKey | null) => void = () => {},
): { ok: true; last: LaneCursor } | { ok: false; problem: ChainProblem } {
  let { hash, position, keyed } = prev;
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
    // A changed event, or one re-hashed with a key the ring does not hold, matches no key and not the unkeyed form.
    const key = keyOfEvent(e, ring);
    if (key === undefined) return problem('hash_mismatch');
    if (key === null && keyed) return problem('key_downgrade');
    if (key === null && at > vouchedUntil) return problem('unkeyed_not_sealed');
    seen(key);
    hash = e.hash;
    position = at;
    keyed ||= key !== null;
  }
  return { ok: true, last: { hash, position, keyed } };
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
  /** The audit key the seal is signed with (its hash is then an HMAC); null for seals from before keys. */
  keyId: string | null;
  hash: string;
}

/** A seal's hash: its signature (HMAC with the key its keyId names) for seals since keys, else SHA-256. */
export function sealHash(seal: Omit<AuditSeal, 'hash'>, key?: AuditKey | null): string {
  const fields = { id: seal.id, at: seal.at, tips: seal.tips.map((t) => [t.position, t.hash]) };
  const body = canonicalJson(seal.keyId === null ? fields : { ...fields, keyId: seal.keyId });
  if (seal.keyId !== null && key?.id !== seal.keyId) throw new Error(`seal ${seal.id} is signed with another key`);
  return digest(seal.keyId === null ? null : key!, seal.prevHash, body);
}

export type SealProblemKind =
  | 'seal_hash_mismatch'
  | 'seal_prev_hash_mismatch'
  | 'seal_sequence_gap'
  /** Signed with a key the keyring does not hold. */
  | 'seal_unknown_key'
  /** Unsigned after a signed seal. */
  | 'seal_key_downgrade';

/** Checks one seal against the one before it (`prev`, null for the first; `signed`: a signed seal came before). */
export function verifySeal(
  seal: AuditSeal,
  prev: (AuditSeal & { signed: boolean }) | null,
  ring: AuditKeyring,
): { ok: true } | { ok: false; problem: SealProblemKind } {
  if (seal.id !== (prev?.id ?? 0) + 1) return { ok: false, problem: 'seal_sequence_gap' };
  if (seal.prevHash !== (prev?.hash ?? GENESIS_HASH)) return { ok: false, problem: 'seal_prev_hash_mismatch' };
  const key = keyNamed(ring, seal.keyId);
  if (key === undefined) return { ok: false, problem: 'seal_unknown_key' };
  if (key === null && prev?.signed) return { ok: false, problem: 'seal_key_downgrade' };
  if (sealHash(seal, key) !== seal.hash) return { ok: false, problem: 'seal_hash_mismatch' };
  return { ok: true };
}

/** One digest of all lane tips, printed by verify so an operator can note it outside the database. */
export function tipsDigest(tips: LaneTips): string {
  return createHash('sha256')
    .update(canonicalJson(tips.map((t) => [t.position, t.hash])))
    .digest('hex');
}
