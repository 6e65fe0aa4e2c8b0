/**
 * Read-only look-ups the console needs and the services do not offer yet: an organisation's direct children and its
 * positions. Kept here, small and parameterised, until services/organisations.ts and services/access.ts export them;
 * callers check the policy (organisation:read) before using them.
 */
import type { Organisation } from '../../domain/organisations/organisation.ts';
import type { Queryable } from '../../storage/database.ts';

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

export { positionsOf } from '../../storage/repositories/positions.ts';
