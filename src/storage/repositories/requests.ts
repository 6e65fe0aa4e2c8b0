/**
 * Access requests (DOMAIN §5.3) and their status history. Decisions lock the request row (`lock`, `…ForUpdate`) under
 * the person's lock, taken first by the caller.
 */
import type { Queryable } from '../database.ts';

export type RequestStatus = 'pending' | 'approved' | 'rejected' | 'withdrawn' | 'expired';

export interface AccessRequest {
  requestId: string;
  userId: string;
  positionId: string;
  odsCode: string;
  startDate: string;
  endDate: string | null;
  status: RequestStatus;
  requestedBy: string;
  reason: string;
  decidedBy: string | null;
  decidedAt: string | null;
  decisionReason: string | null;
  personRoleId: string | null;
  expiresAt: string;
  createdAt: string;
  version: number;
}

export interface RequestHistoryEntry {
  fromStatus: RequestStatus | null;
  toStatus: RequestStatus;
  changedBy: string;
  changedAt: string;
  reason: string | null;
}

interface Row {
  request_id: string;
  user_id: string;
  position_id: string;
  ods_code: string;
  start_date: string;
  end_date: string | null;
  status: RequestStatus;
  requested_by: string;
  reason: string;
  decided_by: string | null;
  decided_at: Date | null;
  decision_reason: string | null;
  person_roleid: string | null;
  expires_at: Date;
  created_at: Date;
  version: number;
}

const COLUMNS = `request_id::text AS request_id, user_id, position_id::text AS position_id, ods_code,
  to_char(start_date, 'YYYY-MM-DD') AS start_date, to_char(end_date, 'YYYY-MM-DD') AS end_date, status, requested_by,
  reason, decided_by, decided_at, decision_reason, person_roleid, expires_at, created_at, version`;

function fromRow(r: Row): AccessRequest {
  return {
    requestId: r.request_id,
    userId: r.user_id,
    positionId: r.position_id,
    odsCode: r.ods_code,
    startDate: r.start_date,
    endDate: r.end_date,
    status: r.status,
    requestedBy: r.requested_by,
    reason: r.reason,
    decidedBy: r.decided_by,
    decidedAt: r.decided_at ? new Date(r.decided_at).toISOString() : null,
    decisionReason: r.decision_reason,
    personRoleId: r.person_roleid,
    expiresAt: new Date(r.expires_at).toISOString(),
    createdAt: new Date(r.created_at).toISOString(),
    version: Number(r.version),
  };
}

export async function addHistory(
  q: Queryable,
  h: {
    requestId: string;
    from: RequestStatus | null;
    to: RequestStatus;
    changedBy: string;
    reason: string | null;
  },
  now: Date,
): Promise<void> {
  await q.query(
    `INSERT INTO access_request_history (request_id, from_status, to_status, changed_by, changed_at, reason)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [h.requestId, h.from, h.to, h.changedBy, now, h.reason],
  );
}

/** A request's status history, oldest first. */
export async function historyOf(q: Queryable, requestId: string): Promise<RequestHistoryEntry[]> {
  const { rows } = await q.query<{
    from_status: RequestStatus | null;
    to_status: RequestStatus;
    changed_by: string;
    changed_at: Date;
    reason: string | null;
  }>('SELECT * FROM access_request_history WHERE request_id = $1 ORDER BY history_id', [requestId]);
  return rows.map((h) => ({
    fromStatus: h.from_status,
    toStatus: h.to_status,
    changedBy: h.changed_by,
    changedAt: new Date(h.changed_at).toISOString(),
    reason: h.reason,
  }));
}

export async function selectRequest(q: Queryable, requestId: string, lock = false): Promise<AccessRequest | undefined> {
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM access_requests WHERE request_id = $1${lock ? ' FOR UPDATE' : ''}`,
    [requestId],
  );
  return rows[0] && fromRow(rows[0]);
}

/** A new pending request. */
export async function insertRequest(
  q: Queryable,
  r: {
    userId: string;
    positionId: string;
    odsCode: string;
    startDate: string;
    endDate: string | null;
    requestedBy: string;
    reason: string;
    expiresAt: Date;
  },
  now: Date,
): Promise<AccessRequest> {
  const { rows } = await q.query<Row>(
    `INSERT INTO access_requests (user_id, position_id, ods_code, start_date, end_date, status, requested_by, reason,
             expires_at, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $9) RETURNING ${COLUMNS}`,
    [r.userId, r.positionId, r.odsCode, r.startDate, r.endDate, r.requestedBy, r.reason, r.expiresAt, now],
  );
  return fromRow(rows[0]!);
}

/** Marks a request approved, with the role profile it gave. */
export async function markApproved(
  q: Queryable,
  requestId: string,
  d: { decidedBy: string; reason: string | null; personRoleId: string },
  now: Date,
): Promise<AccessRequest> {
  const { rows } = await q.query<Row>(
    `UPDATE access_requests SET status = 'approved', decided_by = $2, decided_at = $3, decision_reason = $4,
       person_roleid = $5, updated_at = $3, version = version + 1
     WHERE request_id = $1 RETURNING ${COLUMNS}`,
    [requestId, d.decidedBy, now, d.reason, d.personRoleId],
  );
  return fromRow(rows[0]!);
}

/** Closes a request without giving anything: rejected, withdrawn or expired. */
export async function markClosed(
  q: Queryable,
  requestId: string,
  d: { to: 'rejected' | 'withdrawn' | 'expired'; decidedBy: string; reason: string | null },
  now: Date,
): Promise<AccessRequest> {
  const { rows } = await q.query<Row>(
    `UPDATE access_requests SET status = $2, decided_by = $3, decided_at = $4, decision_reason = $5, updated_at = $4,
       version = version + 1
     WHERE request_id = $1 RETURNING ${COLUMNS}`,
    [requestId, d.to, d.decidedBy, now, d.reason],
  );
  return fromRow(rows[0]!);
}

/** A person's pending requests, locked (the caller holds the person's lock). */
export async function pendingRequestsOfForUpdate(q: Queryable, userId: string): Promise<AccessRequest[]> {
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM access_requests WHERE user_id = $1 AND status = 'pending' ORDER BY request_id FOR UPDATE`,
    [userId],
  );
  return rows.map(fromRow);
}

/** Up to `limit` pending requests past their expiry at `now`, locked, skipping those another transaction holds. */
export async function expiredPendingForUpdate(q: Queryable, now: Date, limit: number): Promise<AccessRequest[]> {
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM access_requests WHERE status = 'pending' AND expires_at <= $1
         ORDER BY request_id LIMIT $2 FOR UPDATE SKIP LOCKED`,
    [now, limit],
  );
  return rows.map(fromRow);
}

/**
 * Requests newest first, at most `limit`: with `status` and `odsCode` if given; with `mine`, those `mine` made or is
 * the person of; otherwise, with `visibleTo`, those `visibleTo.me` made or is the person of, or in `visibleTo.orgs`.
 */
export async function listRequests(
  q: Queryable,
  f: {
    status?: RequestStatus;
    odsCode?: string;
    mine?: string;
    visibleTo?: { me: string; orgs: readonly string[] };
    limit: number;
  },
): Promise<AccessRequest[]> {
  const params: unknown[] = [];
  const where: string[] = [];
  const add = (sql: string, value: unknown) => {
    params.push(value);
    where.push(sql.replaceAll('?', `$${params.length}`));
  };
  if (f.status) add('status = ?', f.status);
  if (f.odsCode !== undefined) add('ods_code = ?', f.odsCode);
  if (f.mine !== undefined) add('(requested_by = ? OR user_id = ?)', f.mine);
  else if (f.visibleTo) {
    params.push(f.visibleTo.me, f.visibleTo.orgs);
    where.push(
      `(requested_by = $${params.length - 1} OR user_id = $${params.length - 1} OR ods_code = ANY($${params.length}))`,
    );
  }
  params.push(f.limit);
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM access_requests ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
     ORDER BY request_id DESC LIMIT $${params.length}`,
    params,
  );
  return rows.map(fromRow);
}
