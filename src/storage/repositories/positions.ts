import type { Position } from '../../domain/access/role-profile.ts';
import type { Queryable } from '../database.ts';

export async function findPosition(q: Queryable, positionId: string): Promise<Position | undefined> {
  const { rows } = await q.query<{
    position_id: string;
    ods_code: string;
    name: string;
    assignable: boolean;
    status: Position['status'];
    job_roles: string[];
    activities: string[];
    aows: string[];
    workgroups: string[];
  }>(
    `SELECT p.position_id, p.ods_code, p.name, p.assignable, p.status,
       ARRAY(SELECT job_role_code FROM position_job_roles WHERE position_id = p.position_id ORDER BY 1) AS job_roles,
       ARRAY(SELECT activity_code FROM position_activities WHERE position_id = p.position_id ORDER BY 1) AS activities,
       ARRAY(SELECT aow_code FROM position_areas_of_work WHERE position_id = p.position_id ORDER BY 1) AS aows,
       ARRAY(SELECT workgroup_code FROM position_workgroups WHERE position_id = p.position_id ORDER BY 1) AS workgroups
     FROM positions p WHERE p.position_id = $1`,
    [positionId],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    positionId: r.position_id,
    odsCode: r.ods_code,
    name: r.name,
    assignable: r.assignable,
    status: r.status,
    jobRoles: r.job_roles,
    activities: r.activities,
    areasOfWork: r.aows,
    workgroups: r.workgroups,
  };
}

/** An organisation's positions, active ones first, by name. */
export async function positionsOf(q: Queryable, odsCode: string): Promise<Position[]> {
  const { rows } = await q.query<{
    position_id: string;
    ods_code: string;
    name: string;
    assignable: boolean;
    status: Position['status'];
    job_roles: string[];
    activities: string[];
    aows: string[];
    workgroups: string[];
  }>(
    `SELECT p.position_id::text AS position_id, p.ods_code, p.name, p.assignable, p.status,
       ARRAY(SELECT job_role_code FROM position_job_roles WHERE position_id = p.position_id ORDER BY 1) AS job_roles,
       ARRAY(SELECT activity_code FROM position_activities WHERE position_id = p.position_id ORDER BY 1) AS activities,
       ARRAY(SELECT aow_code FROM position_areas_of_work WHERE position_id = p.position_id ORDER BY 1) AS aows,
       ARRAY(SELECT workgroup_code FROM position_workgroups WHERE position_id = p.position_id ORDER BY 1) AS workgroups
     FROM positions p WHERE p.ods_code = $1 ORDER BY p.status, p.name, p.position_id`,
    [odsCode],
  );
  return rows.map((r) => ({
    positionId: r.position_id,
    odsCode: r.ods_code,
    name: r.name,
    assignable: r.assignable,
    status: r.status,
    jobRoles: r.job_roles,
    activities: r.activities,
    areasOfWork: r.aows,
    workgroups: r.workgroups,
  }));
}

/** Which of the workgroups `codes` belong to organisation `odsCode`. */
export async function workgroupsAt(q: Queryable, codes: readonly string[], odsCode: string): Promise<string[]> {
  const { rows } = await q.query<{ code: string }>(
    'SELECT code FROM workgroups WHERE code = ANY($1) AND ods_code = $2',
    [codes, odsCode],
  );
  return rows.map((r) => r.code);
}

/** A new position (its codes linked by `linkPositionCodes`); its ID. */
export async function insertPosition(
  q: Queryable,
  p: { odsCode: string; name: string; assignable: boolean },
  now: Date,
): Promise<string> {
  const { rows } = await q.query<{ position_id: string }>(
    `INSERT INTO positions (ods_code, name, assignable, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
       RETURNING position_id`,
    [p.odsCode, p.name, p.assignable, now],
  );
  return rows[0]!.position_id;
}

const POSITION_LINKS = {
  jobRoles: ['position_job_roles', 'job_role_code'],
  activities: ['position_activities', 'activity_code'],
  areasOfWork: ['position_areas_of_work', 'aow_code'],
  workgroups: ['position_workgroups', 'workgroup_code'],
} as const;

/** Links codes of one kind to a position (each once); nothing for no codes. */
export async function linkPositionCodes(
  q: Queryable,
  positionId: string,
  kind: keyof typeof POSITION_LINKS,
  codes: readonly string[],
): Promise<void> {
  if (codes.length === 0) return;
  const [table, column] = POSITION_LINKS[kind];
  await q.query(`INSERT INTO ${table} (position_id, ${column}) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`, [
    positionId,
    [...new Set(codes)],
  ]);
}
