/**
 * Access requests (DOMAIN §5.3): a sponsor or RA asks for a position for a person; an RA approves or rejects; the
 * requester may withdraw; untouched requests expire. When the requester may give the position directly (a sponsor and an
 * assignable position, or an RA agent) it is applied at once and the request recorded as approved by policy.
 *
 * Concurrency: every decision locks the person, then the request (its row lock), and checks the status under the
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
import { PG_UNIQUE_VIOLATION, pgConstraint, pgErrorCode } from '../../storage/database.ts';
import type { Repositories } from '../../storage/repositories/index.ts';
import type { AccessRequest, RequestHistoryEntry, RequestStatus } from '../../storage/repositories/requests.ts';
import { appendAudit } from '../audit.ts';
import type { ServiceContext } from '../context.ts';
import { positionTarget, requestTarget } from '../targets.ts';
import { inputSchema, parseInput } from '../validation.ts';
import { insertRoleProfile, lockPerson, raAction } from './common.ts';

export type { AccessRequest, RequestHistoryEntry, RequestStatus };
export const requestStatuses = ['pending', 'approved', 'rejected', 'withdrawn', 'expired'] as const;

/** Untouched requests expire after 30 days (DOMAIN §5.3: "expire if untouched"). */
export const DEFAULT_REQUEST_TTL_DAYS = 30;

const calendarDate = z.string().trim().refine(isCalendarDate, { message: 'must be a real date written YYYY-MM-DD' });

export const requestSchema = z
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
// A bad end date is role_profile.invalid_dates, wherever the request is parsed (the route too).
inputSchema(requestSchema, (i) => (i.path[0] === 'endDate' ? 'role_profile.invalid_dates' : 'request.invalid'));

export function requireRequestId(id: string): string {
  if (!/^[0-9]{1,18}$/.test(id)) throw new AppError('access_request.not_found');
  return id;
}

async function activePosition(tx: Repositories, positionId: string): Promise<Position> {
  const position = await tx.positions.findPosition(positionId);
  if (position?.status !== 'active') throw new AppError('position.not_found');
  return position;
}

function addHistory(
  tx: Repositories,
  ctx: ServiceContext,
  requestId: string,
  from: RequestStatus | null,
  to: RequestStatus,
  reason: string | null,
): Promise<void> {
  return tx.requests.addHistory({ requestId, from, to, changedBy: ctx.actor.id, reason }, ctx.clock.now());
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
    const r = parseInput(requestSchema, input);
    about.targetId = r.userId;
    if (r.endDate != null && r.endDate < ukDate(ctx.clock.now())) {
      throw new AppError('role_profile.invalid_dates', { problems: [{ field: 'endDate', message: 'is in the past' }] });
    }
    try {
      return await ctx.transaction(async (tx) => {
        const person = await lockPerson(tx, r.userId);
        const position = await activePosition(tx, r.positionId);
        const target = await positionTarget(tx, ctx.clock, person.userId, position);
        const direct = isAllowed(ctx.actor, 'role_profile:assign', target);
        if (!direct) authorize(ctx.actor, 'request:create', target);
        if (person.status !== 'active') throw new AppError('role_profile.person_inactive', { status: person.status });
        const now = ctx.clock.now();
        const created = await tx.requests.insertRequest(
          {
            userId: person.userId,
            positionId: position.positionId,
            odsCode: position.odsCode,
            startDate: r.startDate,
            endDate: r.endDate,
            requestedBy: ctx.actor.id,
            reason: r.reason,
            expiresAt: new Date(now.getTime() + r.expiresInDays * 86_400_000),
          },
          now,
        );
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
  tx: Repositories,
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
  const approved = await tx.requests.markApproved(
    request.requestId,
    { decidedBy: ctx.actor.id, reason: decisionReason, personRoleId: profile.personRoleId },
    ctx.clock.now(),
  );
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
async function lockPending(tx: Repositories, requestId: string) {
  const peek = await tx.requests.selectRequest(requestId);
  if (!peek) throw new AppError('access_request.not_found');
  const person = await lockPerson(tx, peek.userId);
  const request = (await tx.requests.selectRequest(requestId, true))!;
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

export const approveSchema = z.object({
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
    return ctx.transaction(async (tx) => {
      const { person, request, position } = await lockPending(tx, requestId);
      authorize(ctx.actor, 'request:approve', await requestTarget(tx, ctx.clock, request, position));
      requireUndecided(ctx, request, opts.expectedVersion);
      return approveLocked(tx, ctx, request, position, person, opts.reason);
    });
  });
}

export const withdrawSchema = z.object({ reason: optionalText(1000) });
export const decisionSchema = z.object({ reason: text(1000), expectedVersion: z.number().int().min(1).optional() });

export async function closeRequest(
  tx: Repositories,
  ctx: ServiceContext,
  request: AccessRequest,
  to: 'rejected' | 'withdrawn' | 'expired',
  reason: string | null,
): Promise<AccessRequest> {
  const closed = await tx.requests.markClosed(
    request.requestId,
    { to, decidedBy: ctx.actor.id, reason },
    ctx.clock.now(),
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
  return closed;
}

/** Locks a person's pending requests (the caller holds the person's lock), e.g. to withdraw them when they leave. */
export function lockPendingRequestsOf(tx: Repositories, userId: string): Promise<AccessRequest[]> {
  return tx.requests.pendingRequestsOfForUpdate(userId);
}

/** An RA rejects a pending request, with a reason both the requester and the person can see. */
export async function rejectRequest(ctx: ServiceContext, requestId: string, input: unknown): Promise<AccessRequest> {
  const about = { targetType: 'access_request', targetId: requestId };
  return raAction(ctx, 'access_request.reject', about, async () => {
    requireRequestId(requestId);
    const { reason, expectedVersion } = parseInput(decisionSchema, input);
    return ctx.transaction(async (tx) => {
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
    const { reason } = parseInput(withdrawSchema, input ?? {});
    return ctx.transaction(async (tx) => {
      const { request, position } = await lockPending(tx, requestId);
      // The requester withdraws what they asked for (themselves, or through the API client they registered); anyone
      // else needs the power to decide it.
      const requester =
        request.requestedBy === ctx.actor.id ||
        (ctx.actor.kind === 'person' &&
          (await tx.accessFacts.registrarOfActor(request.requestedBy)) === ctx.actor.userId);
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
    const n = await ctx.transaction(async (tx) => {
      const expired = await tx.requests.expiredPendingForUpdate(ctx.clock.now(), batchSize);
      for (const r of expired) await closeRequest(tx, ctx, r, 'expired', 'not decided in time');
      return expired.length;
    });
    total += n;
    if (n < batchSize) return total;
  }
}
