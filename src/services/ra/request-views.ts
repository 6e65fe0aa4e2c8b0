/**
 * Reading access requests: both sides see a request's status and history — the requester and the person it is about —
 * as do RA staff and sponsors of its organisation (DOMAIN §5.3).
 */
import { z } from 'zod';
import { AppError } from '../../domain/errors.ts';
import { isAllowed, organisationsWhere } from '../../domain/policy.ts';
import type { ServiceContext } from '../context.ts';
import { parseInput } from '../validation.ts';
import { raAction } from './common.ts';
import { type AccessRequest, type RequestHistoryEntry, requestStatuses, requireRequestId } from './requests.ts';

/** A request and its status history: for the requester, the person it is about, and RA staff of its organisation. */
export async function getRequest(
  ctx: ServiceContext,
  requestId: string,
): Promise<AccessRequest & { history: RequestHistoryEntry[] }> {
  return raAction(ctx, 'access_request.read', { targetType: 'access_request', targetId: requestId }, async () => {
    requireRequestId(requestId);
    const request = await ctx.repos.requests.selectRequest(requestId);
    if (!request) throw new AppError('access_request.not_found');
    if (!canSee(ctx, request)) throw new AppError('auth.forbidden', { statement: 'request:approve' });
    return { ...request, history: await ctx.repos.requests.historyOf(requestId) };
  });
}

function canSee(ctx: ServiceContext, r: Pick<AccessRequest, 'requestedBy' | 'userId' | 'odsCode'>): boolean {
  const a = ctx.actor;
  if (a.kind === 'operator' || a.kind === 'system') return true;
  if (r.requestedBy === a.id || (a.kind === 'person' && r.userId === a.userId)) return true;
  const org = { kind: 'organisation', odsCode: r.odsCode } as const;
  return isAllowed(a, 'request:approve', org) || isAllowed(a, 'request:create', org);
}

export const requestListSchema = z.object({
  status: z.enum(requestStatuses).optional(),
  odsCode: z.string().max(10).optional(),
  mine: z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]).default(false),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

/**
 * Requests the actor may see, newest first: with `mine`, those they made or that are about them; otherwise also those
 * in organisations where they may request or decide.
 */
export async function listRequests(ctx: ServiceContext, query: unknown = {}): Promise<AccessRequest[]> {
  const q = parseInput(requestListSchema, query ?? {});
  const a = ctx.actor;
  const me = a.kind === 'person' ? a.userId : a.id;
  const deciding = organisationsWhere(a, 'request:approve');
  const requesting = organisationsWhere(a, 'request:create');
  const orgs: readonly string[] | 'all' =
    deciding === 'all' || requesting === 'all' ? 'all' : [...new Set([...deciding, ...requesting])];
  const rows = await ctx.repos.requests.listRequests({
    status: q.status,
    odsCode: q.odsCode ? q.odsCode.trim().toUpperCase() : undefined,
    mine: q.mine ? me : undefined,
    visibleTo: orgs !== 'all' ? { me, orgs } : undefined,
    limit: q.limit,
  });
  return rows.filter((r) => canSee(ctx, r));
}
