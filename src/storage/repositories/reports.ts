/**
 * The RA reports' reads (src/services/ra/reports.ts, DOMAIN §5.5). Each takes the organisations it covers (`scope`,
 * null for every organisation), a page (`limit`, `offset`) and an optional range of UK days (`from`, `to`) on the
 * report's own date column; a person counts as in an organisation when they have a person-organisation link to it.
 */
import type { Queryable } from '../database.ts';
import { profileInEffect } from './role-profiles.ts';

export interface ReportPage {
  scope: string[] | null;
  limit: number;
  offset: number;
  from?: string;
  to?: string;
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

const IN_SCOPE = (alias: string, param: string) =>
  `(${param}::text[] IS NULL OR EXISTS (SELECT 1 FROM person_orgs spo WHERE spo.user_id = ${alias}.user_id AND spo.ods_code = ANY(${param})))`;

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

/** Access requests still pending, the soonest to expire first; the range is on when they were made. */
export async function pendingRequests(q: Queryable, page: ReportPage): Promise<PendingRequestLine[]> {
  const { scope, limit, offset } = page;
  const range = dayRange('r.created_at', page, 4);
  const { rows } = await q.query<{
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

/** Cards in use whose valid certificate expires after `now` and (unless null) by `until`; the range is on the expiry. */
export async function cardsExpiring(
  q: Queryable,
  page: ReportPage & { now: Date; until: Date | null },
): Promise<CardLine[]> {
  const { scope, limit, offset, now, until } = page;
  const range = dayRange('pc.not_after', page, 6);
  const { rows } = await q.query<CardRow>(
    `${CARD_REPORT}
       WHERE c.status IN ('active', 'locked', 'awaiting_passcode') AND pc.status = 'valid'
         AND pc.not_after > $2 AND ($3::timestamptz IS NULL OR pc.not_after <= $3) AND ${IN_SCOPE('c', '$1')}${range.sql}
       ORDER BY pc.not_after, c.card_id LIMIT $4 OFFSET $5`,
    [scope, now, until, limit, offset, ...range.params],
  );
  return rows.map(cardLine);
}

/** Locked cards, longest locked first; the range is on when the card last changed. */
export async function lockedCards(q: Queryable, page: ReportPage): Promise<CardLine[]> {
  const { scope, limit, offset } = page;
  const range = dayRange('c.updated_at', page, 4);
  const { rows } = await q.query<CardRow>(
    `${CARD_REPORT} WHERE c.status = 'locked' AND ${IN_SCOPE('c', '$1')}${range.sql}
       ORDER BY c.updated_at, c.card_id LIMIT $2 OFFSET $3`,
    [scope, limit, offset, ...range.params],
  );
  return rows.map(cardLine);
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

/** Active people with no role profile in effect on `day` at a position not retired; the range is on registration. */
export async function peopleWithoutRoles(q: Queryable, page: ReportPage & { day: string }): Promise<PersonLine[]> {
  const { scope, limit, offset, day } = page;
  const range = dayRange('p.created_at', page, 5);
  const { rows } = await q.query<PersonRow>(
    `${PERSON_REPORT}
       WHERE p.status = 'active' AND ${IN_SCOPE('p', '$1')}
         AND NOT EXISTS (SELECT 1 FROM role_profiles rp JOIN positions pos ON pos.position_id = rp.position_id
           WHERE rp.user_id = p.user_id AND pos.status = 'active' AND ${profileInEffect('rp', '$2')})${range.sql}
       ORDER BY p.family_key, p.given_key, p.user_id LIMIT $3 OFFSET $4`,
    [scope, day, limit, offset, ...range.params],
  );
  return rows.map(personLine);
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

/** Active role profiles whose end date is between `from` and `to` (UK dates, inclusive), the soonest first. */
export async function rolesEnding(
  q: Queryable,
  page: { scope: string[] | null; from: string; to: string; limit: number; offset: number },
): Promise<EndingLine[]> {
  const { scope, from, to, limit, offset } = page;
  const { rows } = await q.query<{
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
}

/** People who have left, most recent first; the range is on when their record last changed. */
export async function leavers(q: Queryable, page: ReportPage): Promise<PersonLine[]> {
  const { scope, limit, offset } = page;
  const range = dayRange('p.updated_at', page, 4);
  const { rows } = await q.query<PersonRow>(
    `${PERSON_REPORT} WHERE p.status = 'left' AND ${IN_SCOPE('p', '$1')}${range.sql}
       ORDER BY p.updated_at DESC, p.user_id LIMIT $2 OFFSET $3`,
    [scope, limit, offset, ...range.params],
  );
  return rows.map(personLine);
}
