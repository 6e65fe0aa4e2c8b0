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
const pageSchema = z.object(filterFields).refine(fromBeforeTo, { path: ['to'], message: 'must not be before from' });
const withinSchema = (defaultDays: number) =>
  z
    .object({ withinDays: z.coerce.number().int().min(1).max(366).default(defaultDays), ...filterFields })
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
  const subtree = await subtreeOf(ctx.db, odsCode);
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

/** A UK calendar day range on a timestamp column, as SQL with its parameters numbered from `n`. */
function dayRange(column: string, r: { from?: string; to?: string }, n: number): { sql: string; params: string[] } {
  const parts: string[] = [];
  const params: string[] = [];
  if (r.from) {
    params.push(r.from);
    parts.push(`${column} >= ($${n + params.length - 1}::date)::timestamp AT TIME ZONE 'Europe/London'`);
  }
  if (r.to) {
    params.push(r.to);
    parts.push(`${column} < (($${n + params.length - 1}::date + 1)::timestamp AT TIME ZONE 'Europe/London')`);
  }
  return { sql: parts.length ? ` AND ${parts.join(' AND ')}` : '', params };
}

function addDays(day: string, days: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);
}

const IN_SCOPE = (alias: string, param: string) =>
  `(${param}::text[] IS NULL OR EXISTS (SELECT 1 FROM person_orgs spo WHERE spo.user_id = ${alias}.user_id AND spo.ods_code = ANY(${param})))`;

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

export interface PendingRequestLine {
  requestId: string;
  userId: string;
  givenName: string;
  familyName: string;
  positionId: string;
  positionName: string;
  odsCode: string;
  startDate: string;
  requestedBy: string;
  createdAt: string;
  expiresAt: string;
}

export function pendingRequestsReport(ctx: ServiceContext, query: unknown = {}): Promise<PendingRequestLine[]> {
  const q = parseInput(pageSchema, query ?? {});
  const { limit, offset } = q;
  return report(ctx, 'pending_requests', q.odsCode, async (scope) => {
    const range = dayRange('r.created_at', q, 4);
    const { rows } = await ctx.db.query<{
      request_id: string;
      user_id: string;
      given_name: string;
      family_name: string;
      position_id: string;
      position_name: string;
      ods_code: string;
      start_date: string;
      requested_by: string;
      created_at: Date;
      expires_at: Date;
    }>(
      `SELECT r.request_id::text AS request_id, r.user_id, p.given_name, p.family_name, r.position_id::text AS position_id,
         pos.name AS position_name, r.ods_code, to_char(r.start_date, 'YYYY-MM-DD') AS start_date, r.requested_by,
         r.created_at, r.expires_at
       FROM access_requests r JOIN people p ON p.user_id = r.user_id JOIN positions pos ON pos.position_id = r.position_id
       WHERE r.status = 'pending' AND ($1::text[] IS NULL OR r.ods_code = ANY($1))${range.sql}
       ORDER BY r.expires_at, r.request_id LIMIT $2 OFFSET $3`,
      [scope, limit, offset, ...range.params],
    );
    return rows.map((r) => ({
      requestId: r.request_id,
      userId: r.user_id,
      givenName: r.given_name,
      familyName: r.family_name,
      positionId: r.position_id,
      positionName: r.position_name,
      odsCode: r.ods_code,
      startDate: r.start_date,
      requestedBy: r.requested_by,
      createdAt: new Date(r.created_at).toISOString(),
      expiresAt: new Date(r.expires_at).toISOString(),
    }));
  });
}

export interface CardLine {
  cardId: string;
  userId: string;
  givenName: string;
  familyName: string;
  kind: string;
  status: string;
  certificateNotAfter: string | null;
}

interface CardRow {
  card_id: string;
  user_id: string;
  given_name: string;
  family_name: string;
  kind: string;
  status: string;
  not_after: Date | null;
}

function cardLine(r: CardRow): CardLine {
  return {
    cardId: r.card_id,
    userId: r.user_id,
    givenName: r.given_name,
    familyName: r.family_name,
    kind: r.kind,
    status: r.status,
    certificateNotAfter: r.not_after ? new Date(r.not_after).toISOString() : null,
  };
}

const CARD_REPORT = `SELECT c.card_id, c.user_id, p.given_name, p.family_name, c.kind, c.status, pc.not_after
  FROM cards c JOIN people p ON p.user_id = c.user_id LEFT JOIN pki_certificates pc ON pc.serial = c.certificate_serial`;

/** Cards whose certificate expires within `withinDays` (30 by default; 90 is the self-renewal window). */
export function cardsExpiringReport(ctx: ServiceContext, query: unknown = {}): Promise<CardLine[]> {
  const q = parseInput(withinSchema(30), query ?? {});
  const { withinDays, limit, offset } = q;
  return report(ctx, 'cards_expiring', q.odsCode, async (scope) => {
    const now = ctx.clock.now();
    // From and to replace "within N days": expiring between those UK days (never before now).
    const range = dayRange('pc.not_after', q, 6);
    const { rows } = await ctx.db.query<CardRow>(
      `${CARD_REPORT}
       WHERE c.status IN ('active', 'locked', 'awaiting_passcode') AND pc.status = 'valid'
         AND pc.not_after > $2 AND ($3::timestamptz IS NULL OR pc.not_after <= $3) AND ${IN_SCOPE('c', '$1')}${range.sql}
       ORDER BY pc.not_after, c.card_id LIMIT $4 OFFSET $5`,
      [scope, now, q.to ? null : new Date(now.getTime() + withinDays * 86_400_000), limit, offset, ...range.params],
    );
    return rows.map(cardLine);
  });
}

export function lockedCardsReport(ctx: ServiceContext, query: unknown = {}): Promise<CardLine[]> {
  const q = parseInput(pageSchema, query ?? {});
  const { limit, offset } = q;
  return report(ctx, 'locked_cards', q.odsCode, async (scope) => {
    const range = dayRange('c.updated_at', q, 4);
    const { rows } = await ctx.db.query<CardRow>(
      `${CARD_REPORT} WHERE c.status = 'locked' AND ${IN_SCOPE('c', '$1')}${range.sql}
       ORDER BY c.updated_at, c.card_id LIMIT $2 OFFSET $3`,
      [scope, limit, offset, ...range.params],
    );
    return rows.map(cardLine);
  });
}

export interface PersonLine {
  userId: string;
  givenName: string;
  familyName: string;
  status: string;
  odsCodes: string[];
  updatedAt: string;
}

interface PersonRow {
  user_id: string;
  given_name: string;
  family_name: string;
  status: string;
  ods_codes: string[];
  updated_at: Date;
}

function personLine(r: PersonRow): PersonLine {
  return {
    userId: r.user_id,
    givenName: r.given_name,
    familyName: r.family_name,
    status: r.status,
    odsCodes: r.ods_codes,
    updatedAt: new Date(r.updated_at).toISOString(),
  };
}

const PERSON_REPORT = `SELECT p.user_id, p.given_name, p.family_name, p.status, p.updated_at,
  ARRAY(SELECT ods_code FROM person_orgs WHERE user_id = p.user_id ORDER BY 1) AS ods_codes FROM people p`;

/** Active people with no role profile in effect today (nothing to do in any system). */
export function peopleWithoutRolesReport(ctx: ServiceContext, query: unknown = {}): Promise<PersonLine[]> {
  const q = parseInput(pageSchema, query ?? {});
  const { limit, offset } = q;
  return report(ctx, 'people_without_roles', q.odsCode, async (scope) => {
    const range = dayRange('p.created_at', q, 5);
    const { rows } = await ctx.db.query<PersonRow>(
      `${PERSON_REPORT}
       WHERE p.status = 'active' AND ${IN_SCOPE('p', '$1')}
         AND NOT EXISTS (SELECT 1 FROM role_profiles rp JOIN positions pos ON pos.position_id = rp.position_id
           WHERE rp.user_id = p.user_id AND rp.status = 'active' AND pos.status = 'active'
             AND rp.start_date <= $2 AND (rp.end_date IS NULL OR rp.end_date >= $2))${range.sql}
       ORDER BY p.family_key, p.given_key, p.user_id LIMIT $3 OFFSET $4`,
      [scope, ukDate(ctx.clock.now()), limit, offset, ...range.params],
    );
    return rows.map(personLine);
  });
}

export interface EndingLine {
  personRoleId: string;
  userId: string;
  givenName: string;
  familyName: string;
  positionId: string;
  positionName: string;
  odsCode: string;
  endDate: string;
}

/** Role profiles ending within `withinDays` (30 by default): temporary staff to extend or let go. */
export function rolesEndingReport(ctx: ServiceContext, query: unknown = {}): Promise<EndingLine[]> {
  const q = parseInput(withinSchema(30), query ?? {});
  const { withinDays, limit, offset } = q;
  return report(ctx, 'roles_ending', q.odsCode, async (scope) => {
    const today = ukDate(ctx.clock.now());
    // From and to replace "within N days" (ending on those days, never before today).
    const from = q.from && q.from > today ? q.from : today;
    const to = q.to ?? addDays(today, withinDays);
    const { rows } = await ctx.db.query<{
      person_roleid: string;
      user_id: string;
      given_name: string;
      family_name: string;
      position_id: string;
      position_name: string;
      ods_code: string;
      end_date: string;
    }>(
      `SELECT rp.person_roleid, rp.user_id, p.given_name, p.family_name, rp.position_id::text AS position_id,
         pos.name AS position_name, po.ods_code, to_char(rp.end_date, 'YYYY-MM-DD') AS end_date
       FROM role_profiles rp JOIN person_orgs po ON po.person_orgid = rp.person_orgid
         JOIN people p ON p.user_id = rp.user_id JOIN positions pos ON pos.position_id = rp.position_id
       WHERE rp.status = 'active' AND rp.end_date >= $2 AND rp.end_date <= $3
         AND ($1::text[] IS NULL OR po.ods_code = ANY($1))
       ORDER BY rp.end_date, rp.person_roleid LIMIT $4 OFFSET $5`,
      [scope, from, to, limit, offset],
    );
    return rows.map((r) => ({
      personRoleId: r.person_roleid,
      userId: r.user_id,
      givenName: r.given_name,
      familyName: r.family_name,
      positionId: r.position_id,
      positionName: r.position_name,
      odsCode: r.ods_code,
      endDate: r.end_date,
    }));
  });
}

/** People who have left, most recent first. */
export function leaversReport(ctx: ServiceContext, query: unknown = {}): Promise<PersonLine[]> {
  const q = parseInput(pageSchema, query ?? {});
  const { limit, offset } = q;
  return report(ctx, 'leavers', q.odsCode, async (scope) => {
    const range = dayRange('p.updated_at', q, 4);
    const { rows } = await ctx.db.query<PersonRow>(
      `${PERSON_REPORT} WHERE p.status = 'left' AND ${IN_SCOPE('p', '$1')}${range.sql}
       ORDER BY p.updated_at DESC, p.user_id LIMIT $2 OFFSET $3`,
      [scope, limit, offset, ...range.params],
    );
    return rows.map(personLine);
  });
}
