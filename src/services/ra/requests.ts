/**
 * Access requests (DOMAIN §5.3): a sponsor or RA asks for a position for a person; an RA approves or rejects; the
 * requester may withdraw; untouched requests expire. When the requester may give the position directly (a sponsor and an
 * assignable position, or an RA agent) it is applied at once and the request recorded as approved by policy.
 *
 * Concurrency: every decision locks the person, then the request (SELECT … FOR UPDATE), and checks the status under the
 * lock, so of two approvals at once exactly one succeeds and the other is told the request is already decided. The
 * person is always locked before the request, in every path (leaver too), so two paths never wait on each other.
 */
import { z } from 'zod';
import type { Position, RoleProfile } from '../../domain/access/role-profile.ts';
import { isCalendarDate, ukDate } from '../../domain/dates.ts';
import { AppError } from '../../domain/errors.ts';
import { isNationalId } from '../../domain/identity/user-id.ts';
import { authorize, isAllowed } from '../../domain/policy.ts';
import { optionalText, text } from '../../domain/text.ts';
import { PG_UNIQUE_VIOLATION, pgConstraint, pgErrorCode, type Queryable } from '../../storage/database.ts';
import { registrarOfActor } from '../../storage/repositories/access-facts.ts';
import { findPosition } from '../access.ts';
import { appendAudit } from '../audit.ts';
import type { ServiceContext } from '../context.ts';
import { positionTarget, requestTarget } from '../targets.ts';
import { parseInput } from '../validation.ts';
import { insertRoleProfile, lockPerson, raAction } from './common.ts';

export type RequestStatus = 'pending' | 'approved' | 'rejected' | 'withdrawn' | 'expired';
export const requestStatuses = ['pending', 'approved', 'rejected', 'withdrawn', 'expired'] as const;

/** Untouched requests expire after 30 days (DOMAIN §5.3: "expire if untouched"). */
export const DEFAULT_REQUEST_TTL_DAYS = 30;

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

export interface Row {
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

export const COLUMNS = `request_id::text AS request_id, user_id, position_id::text AS position_id, ods_code,
  to_char(start_date, 'YYYY-MM-DD') AS start_date, to_char(end_date, 'YYYY-MM-DD') AS end_date, status, requested_by,
  reason, decided_by, decided_at, decision_reason, person_roleid, expires_at, created_at, version`;

export function fromRow(r: Row): AccessRequest {
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

const calendarDate = z.string().trim().refine(isCalendarDate, { message: 'must be a real date written YYYY-MM-DD' });

const requestSchema = z
  .object({
    userId: z.string().refine(isNationalId, 'must be a user ID'),
    positionId: z
      .union([z.string(), z.number()])
      .transform(String)
      .pipe(z.string().regex(/^[0-9]{1,18}$/, 'must be a position ID')),
    startDate: calendarDate,
    endDate: calendarDate.nullish().transform((v) => v ?? null),
    reason: text(1000),
    expiresInDays: z.number().int().min(1).max(90).default(DEFAULT_REQUEST_TTL_DAYS),
  })
  .refine((v) => v.endDate == null || v.endDate >= v.startDate, {
    message: 'the end date must be on or after the start date',
    path: ['endDate'],
  });

export function requireRequestId(id: string): string {
  if (!/^[0-9]{1,18}$/.test(id)) throw new AppError('access_request.not_found');
  return id;
}

async function activePosition(tx: Queryable, positionId: string): Promise<Position> {
  const position = await findPosition(tx, positionId);
  if (position?.status !== 'active') throw new AppError('position.not_found');
  return position;
}

async function addHistory(
  tx: Queryable,
  ctx: ServiceContext,
  requestId: string,
  from: RequestStatus | null,
  to: RequestStatus,
  reason: string | null,
): Promise<void> {
  await tx.query(
    `INSERT INTO access_request_history (request_id, from_status, to_status, changed_by, changed_at, reason)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [requestId, from, to, ctx.actor.id, ctx.clock.now(), reason],
  );
}

export async function selectRequest(q: Queryable, requestId: string, lock = false): Promise<AccessRequest | undefined> {
  const { rows } = await q.query<Row>(
    `SELECT ${COLUMNS} FROM access_requests WHERE request_id = $1${lock ? ' FOR UPDATE' : ''}`,
    [requestId],
  );
  return rows[0] && fromRow(rows[0]);
}

/**
 * Asks for a position for a person. Applied at once when the policy lets the actor give it directly; otherwise left
 * pending for an RA, expiring after `expiresInDays` (30 by default).
 */
export async function requestAccess(
  ctx: ServiceContext,
  input: unknown,
): Promise<{ request: AccessRequest; roleProfile: RoleProfile | null }> {
  return raAction(ctx, 'access_request.create', { targetType: 'person', targetId: null }, async (about) => {
    const r = parseInput(requestSchema, input, (i) =>
      i.path[0] === 'endDate' ? 'role_profile.invalid_dates' : 'request.invalid',
    );
    about.targetId = r.userId;
    if (r.endDate != null && r.endDate < ukDate(ctx.clock.now())) {
      throw new AppError('role_profile.invalid_dates', { problems: [{ field: 'endDate', message: 'is in the past' }] });
    }
    try {
      return await ctx.db.transaction(async (tx) => {
        const person = await lockPerson(tx, r.userId);
        const position = await activePosition(tx, r.positionId);
        const target = await positionTarget(tx, ctx.clock, person.userId, position);
        const direct = isAllowed(ctx.actor, 'role_profile:assign', target);
        if (!direct) authorize(ctx.actor, 'request:create', target);
        if (person.status !== 'active') throw new AppError('role_profile.person_inactive', { status: person.status });
        const now = ctx.clock.now();
        const { rows } = await tx.query<Row>(
          `INSERT INTO access_requests (user_id, position_id, ods_code, start_date, end_date, status, requested_by, reason,
             expires_at, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $9) RETURNING ${COLUMNS}`,
          [
            person.userId,
            position.positionId,
            position.odsCode,
            r.startDate,
            r.endDate,
            ctx.actor.id,
            r.reason,
            new Date(now.getTime() + r.expiresInDays * 86_400_000),
            now,
          ],
        );
        const created = fromRow(rows[0]!);
        await addHistory(tx, ctx, created.requestId, null, 'pending', r.reason);
        await appendAudit(tx, ctx, {
          action: 'access_request.created',
          targetType: 'person',
          targetId: person.userId,
          before: null,
          after: created,
          reason: r.reason,
        });
        if (!direct) return { request: created, roleProfile: null };
        const why = position.assignable ? 'assignable position given directly' : 'given directly by the RA';
        return approveLocked(tx, ctx, created, position, person, why);
      });
    } catch (err) {
      if (pgErrorCode(err) === PG_UNIQUE_VIOLATION && pgConstraint(err) === 'access_requests_one_pending') {
        throw new AppError('access_request.duplicate');
      }
      throw err;
    }
  });
}

async function approveLocked(
  tx: Queryable,
  ctx: ServiceContext,
  request: AccessRequest,
  position: Position,
  person: Awaited<ReturnType<typeof lockPerson>>,
  decisionReason: string | null,
): Promise<{ request: AccessRequest; roleProfile: RoleProfile }> {
  const profile = await insertRoleProfile(tx, ctx, person, position, {
    startDate: request.startDate,
    endDate: request.endDate,
  });
  const { rows } = await tx.query<Row>(
    `UPDATE access_requests SET status = 'approved', decided_by = $2, decided_at = $3, decision_reason = $4,
       person_roleid = $5, updated_at = $3, version = version + 1
     WHERE request_id = $1 RETURNING ${COLUMNS}`,
    [request.requestId, ctx.actor.id, ctx.clock.now(), decisionReason, profile.personRoleId],
  );
  const approved = fromRow(rows[0]!);
  await addHistory(tx, ctx, request.requestId, 'pending', 'approved', decisionReason);
  await appendAudit(tx, ctx, {
    action: 'access_request.approved',
    targetType: 'person',
    targetId: request.userId,
    before: { requestId: request.requestId, status: request.status, version: request.version },
    after: { requestId: request.requestId, status: 'approved', personRoleId: profile.personRoleId },
    reason: decisionReason,
  });
  return { request: approved, roleProfile: profile };
}

/**
 * Locks a request for a decision: the person first, then the request. The caller then checks, under the lock, that it is
 * still pending — the second of two concurrent decisions waits here and is then refused (requireUndecided).
 */
async function lockPending(tx: Queryable, requestId: string) {
  const peek = await selectRequest(tx, requestId);
  if (!peek) throw new AppError('access_request.not_found');
  const person = await lockPerson(tx, peek.userId);
  const request = (await selectRequest(tx, requestId, true))!;
  const position = await activePosition(tx, request.positionId);
  return { person, request, position };
}

function requireUndecided(ctx: ServiceContext, request: AccessRequest, expectedVersion: number | undefined): void {
  if (request.status !== 'pending') {
    throw new AppError('access_request.already_decided', {
      status: request.status,
      decidedBy: request.decidedBy,
      decidedAt: request.decidedAt,
    });
  }
  if (request.expiresAt <= ctx.clock.now().toISOString()) {
    throw new AppError('access_request.already_decided', { status: 'expired', expiresAt: request.expiresAt });
  }
  if (expectedVersion !== undefined && expectedVersion !== request.version) {
    throw new AppError('access_request.version_conflict', { version: request.version });
  }
}

const approveSchema = z.object({
  expectedVersion: z.number().int().min(1).optional(),
  reason: optionalText(1000),
});

/** An RA approves a pending request: the position is given in the same transaction. Nobody approves their own. */
export async function approveRequest(
  ctx: ServiceContext,
  requestId: string,
  input: unknown = {},
): Promise<{ request: AccessRequest; roleProfile: RoleProfile }> {
  const about = { targetType: 'access_request', targetId: requestId };
  return raAction(ctx, 'access_request.approve', about, async () => {
    requireRequestId(requestId);
    const opts = parseInput(approveSchema, input ?? {});
    return ctx.db.transaction(async (tx) => {
      const { person, request, position } = await lockPending(tx, requestId);
      authorize(ctx.actor, 'request:approve', await requestTarget(tx, ctx.clock, request, position));
      requireUndecided(ctx, request, opts.expectedVersion);
      return approveLocked(tx, ctx, request, position, person, opts.reason);
    });
  });
}

const decisionSchema = z.object({ reason: text(1000), expectedVersion: z.number().int().min(1).optional() });

export async function closeRequest(
  tx: Queryable,
  ctx: ServiceContext,
  request: AccessRequest,
  to: 'rejected' | 'withdrawn' | 'expired',
  reason: string | null,
): Promise<AccessRequest> {
  const { rows } = await tx.query<Row>(
    `UPDATE access_requests SET status = $2, decided_by = $3, decided_at = $4, decision_reason = $5, updated_at = $4,
       version = version + 1
     WHERE request_id = $1 RETURNING ${COLUMNS}`,
    [request.requestId, to, ctx.actor.id, ctx.clock.now(), reason],
  );
  await addHistory(tx, ctx, request.requestId, request.status, to, reason);
  await appendAudit(tx, ctx, {
    action: `access_request.${to}`,
    targetType: 'person',
    targetId: request.userId,
    before: { requestId: request.requestId, status: request.status, version: request.version },
    after: { requestId: request.requestId, status: to },
    reason,
  });
  return fromRow(rows[0]!);
}

/** Locks a person's pending requests (the caller holds the person's lock), e.g. to withdraw them when they leave. */
export async function lockPendingRequestsOf(tx: Queryable, userId: string): Promise<AccessRequest[]> {
  const { rows } = await tx.query<Row>(
    `SELECT ${COLUMNS} FROM access_requests WHERE user_id = $1 AND status = 'pending' ORDER BY request_id FOR UPDATE`,
    [userId],
  );
  return rows.map(fromRow);
}

/** An RA rejects a pending request, with a reason both the requester and the person can see. */
export async function rejectRequest(ctx: ServiceContext, requestId: string, input: unknown): Promise<AccessRequest> {
  const about = { targetType: 'access_request', targetId: requestId };
  return raAction(ctx, 'access_request.reject', about, async () => {
    requireRequestId(requestId);
    const { reason, expectedVersion } = parseInput(decisionSchema, input);
    return ctx.db.transaction(async (tx) => {
      const { request, position } = await lockPending(tx, requestId);
      authorize(ctx.actor, 'request:approve', await requestTarget(tx, ctx.clock, request, position));
      requireUndecided(ctx, request, expectedVersion);
      return closeRequest(tx, ctx, request, 'rejected', reason);
    });
  });
}

/** The requester (or an RA who could decide it) withdraws a pending request. */
export async function withdrawRequest(
  ctx: ServiceContext,
  requestId: string,
  input: unknown = {},
): Promise<AccessRequest> {
  const about = { targetType: 'access_request', targetId: requestId };
  return raAction(ctx, 'access_request.withdraw', about, async () => {
    requireRequestId(requestId);
    const { reason } = parseInput(z.object({ reason: optionalText(1000) }), input ?? {});
    return ctx.db.transaction(async (tx) => {
      const { request, position } = await lockPending(tx, requestId);
      // The requester withdraws what they asked for (themselves, or through the API client they registered); anyone
      // else needs the power to decide it.
      const requester =
        request.requestedBy === ctx.actor.id ||
        (ctx.actor.kind === 'person' && (await registrarOfActor(tx, request.requestedBy)) === ctx.actor.userId);
      if (requester) {
        authorize(ctx.actor, 'request:create', await positionTarget(tx, ctx.clock, request.userId, position));
      } else {
        authorize(ctx.actor, 'request:approve', await requestTarget(tx, ctx.clock, request, position));
      }
      requireUndecided(ctx, request, undefined);
      return closeRequest(tx, ctx, request, 'withdrawn', reason);
    });
  });
}

/** Scheduled job: marks pending requests past their expiry as expired, in batches. Returns how many expired. */
export async function expireRequests(ctx: ServiceContext, batchSize = 200): Promise<number> {
  // A scheduled job's work (the system), or the operator's: nobody's decision about one request.
  if (ctx.actor.kind !== 'operator' && ctx.actor.kind !== 'system')
    throw new AppError('auth.forbidden', { statement: 'request:approve' });
  let total = 0;
  for (;;) {
    const n = await ctx.db.transaction(async (tx) => {
      const { rows } = await tx.query<Row>(
        `SELECT ${COLUMNS} FROM access_requests WHERE status = 'pending' AND expires_at <= $1
         ORDER BY request_id LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [ctx.clock.now(), batchSize],
      );
      for (const r of rows) await closeRequest(tx, ctx, fromRow(r), 'expired', 'not decided in time');
      return rows.length;
    });
    total += n;
    if (n < batchSize) return total;
  }
}
