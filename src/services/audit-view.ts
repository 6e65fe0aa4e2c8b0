/**
 * Reading the audit trail across targets (issue #14: the RA console's /ra/audit and `GET /api/v1/audit`), within the
 * reader's scope. Events are written and hashed by services/audit.ts and are not changed here: an event's organisation
 * is derived, when read, from its target — the person's organisations, a position's, an access request's, an
 * application's, a role profile's, an API client's, or the organisation itself. A reader sees the events whose
 * organisation the policy lets them read the audit trail of (`audit:read`, RA Managers in their subtree), and the
 * history of people who work for no organisation yet when the policy allows that.
 */
import { z } from 'zod';
import type { AuditEvent } from '../domain/audit/chain.ts';
import { isCalendarDate } from '../domain/dates.ts';
import { AppError } from '../domain/errors.ts';
import { isNationalId } from '../domain/identity/user-id.ts';
import { isOdsCode, normaliseOdsCode } from '../domain/organisations/organisation.ts';
import { isAllowed, organisationsWhere } from '../domain/policy.ts';
import type { AuditSearch, AuditSearchRow } from '../storage/repositories/audit-search.ts';
import { appendAudit, auditEventFromRow } from './audit.ts';
import type { ServiceContext } from './context.ts';
import { subtreeOf } from './organisations.ts';
import { parseInput } from './validation.ts';

const day = z
  .string()
  .trim()
  .refine((s) => isCalendarDate(s) && s >= '2000-01-01' && s <= '2099-12-31', 'a date written YYYY-MM-DD');

export const auditFilterSchema = z
  .object({
    /** Events about this person: their record, role profiles and access requests. */
    person: z.string().trim().refine(isNationalId, 'a 12-digit user ID').optional(),
    /** Who acted: a user ID, or an actor label as written (`cli:root@host`, `client:…`, `system:…`). */
    actor: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9:@._-]{1,120}$/, 'a user ID or an actor label')
      .optional(),
    action: z
      .string()
      .trim()
      .regex(/^[a-z0-9_.]{1,80}$/, 'an action code such as person.status_changed')
      .optional(),
    /** Events of this organisation and those within it. */
    organisation: z.string().trim().transform(normaliseOdsCode).refine(isOdsCode, 'an ODS code').optional(),
    from: day.optional(),
    to: day.optional(),
  })
  .refine((f) => !f.from || !f.to || f.from <= f.to, { path: ['to'], message: 'must not be before the start date' });
export type AuditFilter = z.output<typeof auditFilterSchema>;

export interface AuditLine extends AuditEvent {
  /** For links: the organisation of a position, the person of a role profile. */
  targetRef: string | null;
}

export interface AuditPage {
  events: AuditLine[];
  /** Older events: pass as `before`. */
  next: string | null;
  /** Newer events: pass as `after`. */
  previous: string | null;
}

const CURSOR = /^[0-9]{1,18}$/;

interface Scope {
  /** ODS codes the reader may read the audit trail of; null for every organisation (the operator). */
  orgs: readonly string[] | null;
  /** Whether the history of people with no organisation is theirs to read. */
  newStarters: boolean;
}

function scopeOf(ctx: ServiceContext): Scope {
  const orgs = organisationsWhere(ctx.actor, 'audit:read');
  const newStarters = isAllowed(ctx.actor, 'audit:read', {
    kind: 'person',
    person: { userId: '', odsCodes: [], profiles: [] },
  });
  if (orgs !== 'all' && orgs.length === 0 && !newStarters) {
    throw new AppError('auth.forbidden', { statement: 'audit:read' });
  }
  return { orgs: orgs === 'all' ? null : orgs, newStarters };
}

/** The search a filter asks for, within the reader's scope (before paging). */
async function searchFor(ctx: ServiceContext, filter: AuditFilter): Promise<Omit<AuditSearch, 'limit'>> {
  const scope = scopeOf(ctx);
  const search: Omit<AuditSearch, 'limit'> = { orgs: scope.orgs, newStarters: scope.newStarters };
  if (filter.organisation) {
    const subtree = await subtreeOf(ctx.repos, filter.organisation);
    if (subtree.length === 0) {
      throw new AppError('request.invalid', {
        problems: [{ field: 'organisation', message: 'no organisation has that ODS code' }],
      });
    }
    if (scope.orgs !== null && !scope.orgs.includes(filter.organisation)) {
      throw new AppError('request.invalid', {
        problems: [
          { field: 'organisation', message: 'is not one of the organisations whose audit trail you may read' },
        ],
      });
    }
    search.subtree = subtree;
  }
  if (filter.person) search.person = filter.person;
  if (filter.actor) search.actor = isNationalId(filter.actor) ? `person:${filter.actor}` : filter.actor;
  if (filter.action) search.action = filter.action;
  // Days are UK calendar days (the dates RA staff read), inclusive at both ends.
  if (filter.from) search.from = filter.from;
  if (filter.to) search.to = filter.to;
  return search;
}

function lineOf(r: AuditSearchRow): AuditLine {
  return { ...auditEventFromRow(r), targetRef: r.target_ref };
}

function cursor(value: string | null | undefined, field: string): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (!CURSOR.test(value)) {
    throw new AppError('request.invalid', { problems: [{ field, message: 'not a page from this audit view' }] });
  }
  return value;
}

/** One page of events, newest first. `before`/`after` continue from a page's `next`/`previous`. */
export async function searchAudit(
  ctx: ServiceContext,
  input: unknown,
  page: { limit?: number; before?: string | null; after?: string | null } = {},
): Promise<AuditPage> {
  const filter = parseInput(auditFilterSchema, input ?? {});
  const limit = Math.min(Math.max(page.limit ?? 50, 1), 200);
  const before = cursor(page.before, 'before');
  const after = cursor(page.after, 'after');
  if (before && after) {
    throw new AppError('request.invalid', {
      problems: [{ field: 'after', message: 'give before or after, not both' }],
    });
  }
  const search = await searchFor(ctx, filter);
  const rows = await ctx.repos.auditSearch.searchEvents({ ...search, before, after, limit: limit + 1 });
  const more = rows.length > limit;
  const shown = (more ? rows.slice(0, limit) : rows).map(lineOf);
  if (after) shown.reverse();
  const newest = shown[0];
  const oldest = shown.at(-1);
  const hasOlder = after ? true : more;
  const hasNewer = after ? more : before !== null;
  return {
    events: shown,
    next: hasOlder && oldest ? String(oldest.seq) : null,
    previous: hasNewer && newest ? String(newest.seq) : null,
  };
}

/**
 * Every event the filter selects, newest first, read in batches of `batch` (an export streams these). The export
 * itself is audited when it ends (`audit.exported`, with the filter and the number of rows).
 */
export async function* auditEvents(
  ctx: ServiceContext,
  input: unknown,
  options: { batch?: number } = {},
): AsyncGenerator<AuditLine> {
  const filter = parseInput(auditFilterSchema, input ?? {});
  const search = await searchFor(ctx, filter);
  const batch = options.batch ?? 1_000;
  let before: number | null = null;
  for (;;) {
    const rows = await ctx.repos.auditSearch.searchEvents({ ...search, before, limit: batch });
    for (const r of rows) yield lineOf(r);
    if (rows.length < batch) return;
    before = Number(rows.at(-1)!.seq);
  }
}

/** Records that someone exported part of the trail (what they asked for and how much they got). */
export async function recordExport(
  ctx: ServiceContext,
  what: 'audit' | 'report',
  name: string,
  filter: Record<string, unknown>,
  rows: number,
  cut: boolean,
): Promise<void> {
  await ctx.transaction((tx) =>
    appendAudit(tx, ctx, {
      action: `${what}.exported`,
      targetType: what === 'audit' ? 'audit_trail' : 'report',
      targetId: name,
      before: null,
      after: { filter, rows, cut },
    }),
  );
}
