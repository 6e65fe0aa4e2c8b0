/**
 * Read-only look-ups the console needs and the services do not offer yet: an organisation's direct children and its
 * positions. Kept here, small and parameterised, until services/organisations.ts and services/access.ts export them;
 * callers check the policy (organisation:read) before using them.
 */
import type { Position } from '../../domain/access/role-profile.ts';
import type { Organisation } from '../../domain/organisations/organisation.ts';
import type { Queryable } from '../../storage/database.ts';

export async function childrenOf(q: Queryable, odsCode: string): Promise<Pick<Organisation, 'odsCode' | 'name'>[]> {
  const { rows } = await q.query<{ ods_code: string; name: string }>(
    'SELECT ods_code, name FROM organisations WHERE parent_ods_code = $1 ORDER BY name, ods_code',
    [odsCode],
  );
  return rows.map((r) => ({ odsCode: r.ods_code, name: r.name }));
}

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

/** Organisation names by ODS code, for lists that name organisations beside their codes. */
export async function organisationNames(q: Queryable, odsCodes: readonly string[]): Promise<Map<string, string>> {
  const codes = [...new Set(odsCodes)];
  if (codes.length === 0) return new Map();
  const { rows } = await q.query<{ ods_code: string; name: string }>(
    'SELECT ods_code, name FROM organisations WHERE ods_code = ANY($1::text[])',
    [codes],
  );
  return new Map(rows.map((r) => [r.ods_code, r.name]));
}
