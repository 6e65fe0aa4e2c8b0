/**
 * RA reports (DOMAIN §5.5): pending requests, cards expiring soon, locked cards, people with no effective role profile,
 * role profiles ending soon, and leavers. Each covers only the organisations where the policy lets the actor view
 * reports; a person counts as in an organisation when they have a person-organisation link to it. Each may be narrowed
 * to one of those organisations (with those within it) and to a range of UK dates — what the date is depends on the
 * report (see `reportDates`) — and read in pages (`offset`) for a CSV export.
 */
import { z } from 'zod';
import { isCalendarDate, ukDate } from '../../domain/dates.ts';
import { AppError } from '../../domain/errors.ts';
import { organisationsWhere } from '../../domain/policy.ts';
import type { CardLine, EndingLine, PendingRequestLine, PersonLine } from '../../storage/repositories/reports.ts';
import type { ServiceContext } from '../context.ts';
import { subtreeOf } from '../organisations.ts';
import { parseInput } from '../validation.ts';
import { raAction } from './common.ts';

const limitField = z.coerce.number().int().min(1).max(1000).default(200);
const day = z
  .string()
  .trim()
  .refine((s) => isCalendarDate(s) && s >= '2000-01-01' && s <= '2099-12-31', 'a date written YYYY-MM-DD');
const filterFields = {
  limit: limitField,
  offset: z.coerce.number().int().min(0).max(10_000_000).default(0),
  odsCode: z
    .string()
    .trim()
    .toUpperCase()
    .regex(/^[A-Z0-9]{3,6}$/, 'an ODS code')
    .optional(),
  from: day.optional(),
  to: day.optional(),
};
const fromBeforeTo = (r: { from?: string; to?: string }) => !r.from || !r.to || r.from <= r.to;
export const pageSchema = z
  .object(filterFields)
  .refine(fromBeforeTo, { path: ['to'], message: 'must not be before from' });
export const withinSchema = z
  .object({ withinDays: z.coerce.number().int().min(1).max(366).default(30), ...filterFields })
  .refine(fromBeforeTo, { path: ['to'], message: 'must not be before from' });

/** What each report's date range is about. */
export const reportDates = {
  pending_requests: 'requested',
  cards_expiring: 'certificate expires',
  locked_cards: 'last changed (locked)',
  people_without_roles: 'registered',
  roles_ending: 'ends',
  leavers: 'left',
} as const;

/** The organisations the report may cover: null for every organisation; refused when there are none. */
export function reportScope(ctx: ServiceContext): string[] | null {
  const orgs = organisationsWhere(ctx.actor, 'report:view');
  if (orgs === 'all') return null;
  if (orgs.length === 0) throw new AppError('auth.forbidden', { statement: 'report:view' });
  return [...orgs];
}

/** The scope narrowed to one organisation (and those within it), which must be in the scope. */
async function narrowed(ctx: ServiceContext, scope: string[] | null, odsCode: string | undefined) {
  if (!odsCode) return scope;
  const subtree = await subtreeOf(ctx.repos, odsCode);
  if (subtree.length === 0) {
    throw new AppError('request.invalid', {
      problems: [{ field: 'odsCode', message: 'no organisation has that ODS code' }],
    });
  }
  if (scope !== null && !scope.includes(odsCode)) {
    throw new AppError('request.invalid', {
      problems: [{ field: 'odsCode', message: 'is not one of the organisations whose reports you may view' }],
    });
  }
  return scope === null ? subtree : subtree.filter((o) => scope.includes(o));
}

function addDays(day: string, days: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);
}

async function report<T>(
  ctx: ServiceContext,
  name: string,
  odsCode: string | undefined,
  run: (scope: string[] | null) => Promise<T>,
): Promise<T> {
  return raAction(ctx, `report.${name}`, { targetType: 'report', targetId: name }, async () =>
    run(await narrowed(ctx, reportScope(ctx), odsCode)),
  );
}

export type { CardLine, EndingLine, PendingRequestLine, PersonLine };

export function pendingRequestsReport(ctx: ServiceContext, query: unknown = {}): Promise<PendingRequestLine[]> {
  const q = parseInput(pageSchema, query ?? {});
  const { limit, offset } = q;
  return report(ctx, 'pending_requests', q.odsCode, (scope) =>
    ctx.repos.reports.pendingRequests({ scope, limit, offset, from: q.from, to: q.to }),
  );
}

/** Cards whose certificate expires within `withinDays` (30 by default; 90 is the self-renewal window). */
export function cardsExpiringReport(ctx: ServiceContext, query: unknown = {}): Promise<CardLine[]> {
  const q = parseInput(withinSchema, query ?? {});
  const { withinDays, limit, offset } = q;
  return report(ctx, 'cards_expiring', q.odsCode, (scope) => {
    const now = ctx.clock.now();
    // From and to replace "within N days": expiring between those UK days (never before now).
    const until = q.to ? null : new Date(now.getTime() + withinDays * 86_400_000);
    return ctx.repos.reports.cardsExpiring({ scope, now, until, limit, offset, from: q.from, to: q.to });
  });
}

export function lockedCardsReport(ctx: ServiceContext, query: unknown = {}): Promise<CardLine[]> {
  const q = parseInput(pageSchema, query ?? {});
  const { limit, offset } = q;
  return report(ctx, 'locked_cards', q.odsCode, (scope) =>
    ctx.repos.reports.lockedCards({ scope, limit, offset, from: q.from, to: q.to }),
  );
}

/** Active people with no role profile in effect today (nothing to do in any system). */
export function peopleWithoutRolesReport(ctx: ServiceContext, query: unknown = {}): Promise<PersonLine[]> {
  const q = parseInput(pageSchema, query ?? {});
  const { limit, offset } = q;
  return report(ctx, 'people_without_roles', q.odsCode, (scope) =>
    ctx.repos.reports.peopleWithoutRoles({
      scope,
      day: ukDate(ctx.clock.now()),
      limit,
      offset,
      from: q.from,
      to: q.to,
    }),
  );
}

/** Role profiles ending within `withinDays` (30 by default): temporary staff to extend or let go. */
export function rolesEndingReport(ctx: ServiceContext, query: unknown = {}): Promise<EndingLine[]> {
  const q = parseInput(withinSchema, query ?? {});
  const { withinDays, limit, offset } = q;
  return report(ctx, 'roles_ending', q.odsCode, (scope) => {
    const today = ukDate(ctx.clock.now());
    // From and to replace "within N days" (ending on those days, never before today).
    const from = q.from && q.from > today ? q.from : today;
    const to = q.to ?? addDays(today, withinDays);
    return ctx.repos.reports.rolesEnding({ scope, from, to, limit, offset });
  });
}

/** People who have left, most recent first. */
export function leaversReport(ctx: ServiceContext, query: unknown = {}): Promise<PersonLine[]> {
  const q = parseInput(pageSchema, query ?? {});
  const { limit, offset } = q;
  return report(ctx, 'leavers', q.odsCode, (scope) =>
    ctx.repos.reports.leavers({ scope, limit, offset, from: q.from, to: q.to }),
  );
}
