/**
 * The organisation hierarchy and position changes for the REST API (issue 18): an organisation's subtree as rows, who
 * holds a position, and the writes of a position update. (The CIS1 liveness triggers raise the position's
 * content_version on every change to its codes.)
 */
import type { Organisation } from '../../domain/organisations/organisation.ts';
import type { Queryable } from '../database.ts';

export type OrganisationNode = Pick<Organisation, 'odsCode' | 'name' | 'type' | 'parentOdsCode' | 'status'>;

/** Every organisation in the subtree under `root`, root first (at most 50 levels deep, like subtreeOf). */
export async function subtreeRows(q: Queryable, root: string): Promise<OrganisationNode[]> {
  const { rows } = await q.query<{
    ods_code: string;
    name: string;
    type: Organisation['type'];
    parent_ods_code: string | null;
    status: Organisation['status'];
  }>(
    `WITH RECURSIVE down AS (
       SELECT ods_code, 1 AS depth FROM organisations WHERE ods_code = $1
       UNION ALL
       SELECT o.ods_code, down.depth + 1 FROM organisations o JOIN down ON o.parent_ods_code = down.ods_code
       WHERE down.depth < 50
     )
     SELECT o.ods_code, o.name, o.type, o.parent_ods_code, o.status
     FROM down JOIN organisations o ON o.ods_code = down.ods_code
     ORDER BY down.depth, o.name, o.ods_code`,
    [root],
  );
  return rows.map((r) => ({
    odsCode: r.ods_code,
    name: r.name,
    type: r.type,
    parentOdsCode: r.parent_ods_code,
    status: r.status,
  }));
}

/** The people who hold a position now or later: role profiles not ended (a future appointment is held access). */
export async function positionHolders(q: Queryable, positionId: string, today: string): Promise<string[]> {
  const { rows } = await q.query<{ user_id: string }>(
    `SELECT DISTINCT user_id FROM role_profiles
     WHERE position_id = $1 AND status = 'active' AND (end_date IS NULL OR end_date >= $2::date) ORDER BY user_id`,
    [positionId, today],
  );
  return rows.map((r) => r.user_id);
}

/** Locks a position row for its update (two changes of one position never interleave). */
export async function lockPosition(q: Queryable, positionId: string): Promise<boolean> {
  const { rows } = await q.query('SELECT 1 FROM positions WHERE position_id = $1 FOR UPDATE', [positionId]);
  return rows.length > 0;
}

export async function writePosition(
  q: Queryable,
  positionId: string,
  change: { name: string; assignable: boolean; jobRoles: readonly string[]; activities: readonly string[] },
  now: Date,
): Promise<void> {
  await q.query('UPDATE positions SET name = $2, assignable = $3, updated_at = $4 WHERE position_id = $1', [
    positionId,
    change.name,
    change.assignable,
    now,
  ]);
  await q.query('DELETE FROM position_job_roles WHERE position_id = $1 AND NOT (job_role_code = ANY($2::text[]))', [
    positionId,
    [...change.jobRoles],
  ]);
  await q.query(
    'INSERT INTO position_job_roles (position_id, job_role_code) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING',
    [positionId, [...change.jobRoles]],
  );
  await q.query('DELETE FROM position_activities WHERE position_id = $1 AND NOT (activity_code = ANY($2::text[]))', [
    positionId,
    [...change.activities],
  ]);
  await q.query(
    'INSERT INTO position_activities (position_id, activity_code) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING',
    [positionId, [...change.activities]],
  );
}
