/** Organisations and their hierarchy (DOMAIN §3): one row each, a parent by ODS code. */
import type { Organisation } from '../../domain/organisations/organisation.ts';
import type { Queryable } from '../database.ts';

interface OrgRow {
  ods_code: string;
  name: string;
  type: Organisation['type'];
  parent_ods_code: string | null;
  status: Organisation['status'];
  created_at: Date;
  updated_at: Date;
}

function fromRow(r: OrgRow): Organisation {
  return {
    odsCode: r.ods_code,
    name: r.name,
    type: r.type,
    parentOdsCode: r.parent_ods_code,
    status: r.status,
    createdAt: new Date(r.created_at).toISOString(),
    updatedAt: new Date(r.updated_at).toISOString(),
  };
}

/** The organisation with ODS code `odsCode`; `lock` takes its row for the rest of the transaction. */
export async function findOrganisation(q: Queryable, odsCode: string, lock = false): Promise<Organisation | undefined> {
  const { rows } = await q.query<OrgRow>(
    `SELECT * FROM organisations WHERE ods_code = $1${lock ? ' FOR UPDATE' : ''}`,
    [odsCode],
  );
  return rows[0] && fromRow(rows[0]);
}

export interface OrganisationFields {
  odsCode: string;
  name: string;
  type: Organisation['type'];
  parentOdsCode: string | null;
}

export async function updateOrganisation(q: Queryable, org: OrganisationFields, now: Date): Promise<Organisation> {
  const { rows } = await q.query<OrgRow>(
    `UPDATE organisations SET name = $2, type = $3, parent_ods_code = $4, updated_at = $5 WHERE ods_code = $1
         RETURNING *`,
    [org.odsCode, org.name, org.type, org.parentOdsCode, now],
  );
  return fromRow(rows[0]!);
}

export async function insertOrganisation(q: Queryable, org: OrganisationFields, now: Date): Promise<Organisation> {
  const { rows } = await q.query<OrgRow>(
    `INSERT INTO organisations (ods_code, name, type, parent_ods_code, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $5) RETURNING *`,
    [org.odsCode, org.name, org.type, org.parentOdsCode, now],
  );
  return fromRow(rows[0]!);
}

/** Is `candidate` the organisation `root` or below it? (An RA's powers reach its organisation's subtree.) */
export async function isInSubtree(q: Queryable, root: string, candidate: string): Promise<boolean> {
  const { rows } = await q.query<{ found: boolean }>(
    `WITH RECURSIVE up AS (
       SELECT ods_code, parent_ods_code, 1 AS depth FROM organisations WHERE ods_code = $2
       UNION ALL
       SELECT o.ods_code, o.parent_ods_code, up.depth + 1 FROM organisations o JOIN up ON o.ods_code = up.parent_ods_code
       WHERE up.depth < 50
     )
     SELECT EXISTS (SELECT 1 FROM up WHERE ods_code = $1) AS found`,
    [root, candidate],
  );
  return rows[0]?.found === true;
}

/** Every organisation in the subtree under `root`, root included (ODS codes, sorted). */
export async function subtreeOf(q: Queryable, root: string): Promise<string[]> {
  const { rows } = await q.query<{ ods_code: string }>(
    `WITH RECURSIVE down AS (
       SELECT ods_code, 1 AS depth FROM organisations WHERE ods_code = $1
       UNION ALL
       SELECT o.ods_code, down.depth + 1 FROM organisations o JOIN down ON o.parent_ods_code = down.ods_code
       WHERE down.depth < 50
     )
     SELECT ods_code FROM down ORDER BY ods_code`,
    [root],
  );
  return rows.map((r) => r.ods_code);
}

/** An organisation's direct children, by name. */
export async function childrenOf(q: Queryable, odsCode: string): Promise<Pick<Organisation, 'odsCode' | 'name'>[]> {
  const { rows } = await q.query<{ ods_code: string; name: string }>(
    'SELECT ods_code, name FROM organisations WHERE parent_ods_code = $1 ORDER BY name, ods_code',
    [odsCode],
  );
  return rows.map((r) => ({ odsCode: r.ods_code, name: r.name }));
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

/** Which of these ODS codes are organisations OpenCIS knows. */
export async function knownOdsCodes(q: Queryable, odsCodes: readonly string[]): Promise<string[]> {
  const { rows } = await q.query<{ ods_code: string }>('SELECT ods_code FROM organisations WHERE ods_code = ANY($1)', [
    odsCodes,
  ]);
  return rows.map((r) => r.ods_code);
}
