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
