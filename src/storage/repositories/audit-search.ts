/**
 * Reading the audit trail across targets (services/audit-view.ts): an event's organisation is derived, when read, from
 * its target — the person's organisations, a position's, an access request's, an application's, a role profile's, an
 * API client's, or the organisation itself.
 */
import type { Queryable } from '../database.ts';
import type { AuditRow } from './audit.ts';

export interface AuditSearch {
  /** The organisations whose events the reader may see; null: every organisation (the operator). */
  orgs: readonly string[] | null;
  /** With `orgs`: also the history of people who work for no organisation yet. */
  newStarters: boolean;
  /** Events of these organisations only (one organisation and those within it). */
  subtree?: readonly string[];
  /** Events about this person: their record, role profiles and access requests. */
  person?: string;
  /** Who acted, as written (`person:…`, `cli:…`, `client:…`, `system:…`). */
  actor?: string;
  action?: string;
  /** UK calendar days (YYYY-MM-DD), inclusive at both ends. */
  from?: string;
  to?: string;
  /** Events before (older than) this seq, or after (newer than) it: then oldest first. */
  before?: string | number | null;
  after?: string | null;
  limit: number;
}

export type AuditSearchRow = AuditRow & { target_ref: string | null };

/** The events whose derived organisation is one of `$n` (an SQL array parameter). */
function inOrganisations(n: string): string {
  return `(
    (e.target_type = 'person' AND e.target_id IN (SELECT po.user_id FROM person_orgs po WHERE po.ods_code = ANY(${n})))
    OR (e.target_type = 'organisation' AND e.target_id = ANY(${n}))
    OR (e.target_type = 'position' AND e.target_id IN (SELECT p.position_id::text FROM positions p WHERE p.ods_code = ANY(${n})))
    OR (e.target_type = 'access_request' AND e.target_id IN (SELECT r.request_id::text FROM access_requests r WHERE r.ods_code = ANY(${n})))
    OR (e.target_type = 'application' AND e.target_id IN (SELECT a.application_id::text FROM remote_applications a WHERE a.ods_code = ANY(${n})))
    OR (e.target_type = 'role_profile' AND e.target_id IN (SELECT rp.person_roleid FROM role_profiles rp JOIN person_orgs rpo ON rpo.person_orgid = rp.person_orgid WHERE rpo.ods_code = ANY(${n})))
    OR (e.target_type = 'oidc_client' AND e.target_id IN (SELECT c.client_id FROM oidc_clients c WHERE c.ods_code = ANY(${n})))
  )`;
}

/** People who work for no organisation yet (their registration, identity checks, first requests). */
const NEW_STARTER = `(e.target_type = 'person' AND e.target_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM person_orgs npo WHERE npo.user_id = e.target_id))`;

const SELECT = `SELECT e.*, CASE
    WHEN e.target_type = 'position' AND e.target_id ~ '^[0-9]{1,18}$'
      THEN (SELECT p.ods_code FROM positions p WHERE p.position_id = e.target_id::bigint)
    WHEN e.target_type = 'role_profile' THEN (SELECT rp.user_id FROM role_profiles rp WHERE rp.person_roleid = e.target_id)
  END AS target_ref
  FROM audit_events e`;

/** Up to `limit` events the search selects, newest first (oldest first with `after`). */
export async function searchEvents(q: Queryable, s: AuditSearch): Promise<AuditSearchRow[]> {
  const params: unknown[] = [];
  const where: string[] = [];
  const param = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  if (s.orgs !== null) {
    const p = param(s.orgs);
    where.push(
      s.newStarters ? `(${inOrganisations(`${p}::text[]`)} OR ${NEW_STARTER})` : inOrganisations(`${p}::text[]`),
    );
  }
  if (s.subtree) where.push(inOrganisations(`${param(s.subtree)}::text[]`));
  if (s.person) {
    const p = param(s.person);
    where.push(`(
      (e.target_type = 'person' AND e.target_id = ${p})
      OR (e.target_type = 'role_profile' AND e.target_id IN (SELECT person_roleid FROM role_profiles WHERE user_id = ${p}))
      OR (e.target_type = 'access_request' AND e.target_id IN (SELECT request_id::text FROM access_requests WHERE user_id = ${p}))
    )`);
  }
  if (s.actor) where.push(`e.actor = ${param(s.actor)}`);
  if (s.action) where.push(`e.action = ${param(s.action)}`);
  if (s.from) where.push(`e.at >= (${param(s.from)}::date)::timestamp AT TIME ZONE 'Europe/London'`);
  if (s.to) where.push(`e.at < ((${param(s.to)}::date + 1)::timestamp AT TIME ZONE 'Europe/London')`);
  if (s.before !== undefined && s.before !== null) where.push(`e.seq < ${param(s.before)}::bigint`);
  if (s.after) where.push(`e.seq > ${param(s.after)}::bigint`);
  const limit = param(s.limit);
  const { rows } = await q.query<AuditSearchRow>(
    `${SELECT} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
     ORDER BY e.seq ${s.after ? 'ASC' : 'DESC'} LIMIT ${limit}`,
    params,
  );
  return rows;
}
