/**
 * The national RBAC catalogue (DOMAIN §4): job roles, activities (with inclusions), areas of work, the job roles'
 * baseline activities, and the versions loaded. Codes are never deleted, only retired.
 */
import type { CatalogueFile } from '../../domain/access/catalogue.ts';
import type { Queryable } from '../database.ts';

export async function loadedCatalogueVersion(q: Queryable): Promise<string | null> {
  const { rows } = await q.query<{ version: string }>(
    'SELECT version FROM rbac_catalogue_versions ORDER BY loaded_at DESC, version DESC LIMIT 1',
  );
  return rows[0]?.version ?? null;
}

/** The checksum version `version` was loaded with, if it is loaded. */
export async function checksumOfVersion(q: Queryable, version: string): Promise<string | undefined> {
  const existing = await q.query<{ checksum: string }>(
    'SELECT checksum FROM rbac_catalogue_versions WHERE version = $1',
    [version],
  );
  return existing.rows[0]?.checksum;
}

/** The version published last among those loaded. */
export async function latestPublishedVersion(
  q: Queryable,
): Promise<{ published_on: string; version: string } | undefined> {
  const latest = await q.query<{ published_on: string; version: string }>(
    'SELECT published_on, version FROM rbac_catalogue_versions ORDER BY published_on DESC LIMIT 1',
  );
  return latest.rows[0];
}

/**
 * Writes catalogue `c` (checksum `checksum`, loaded at `at`): its version row, its codes added or renamed, the codes it
 * no longer lists retired, and the baseline replaced — the statements of one load, in order, on the caller's
 * transaction.
 */
export async function writeCatalogue(tx: Queryable, c: CatalogueFile, checksum: string, at: Date): Promise<void> {
  await tx.query(
    'INSERT INTO rbac_catalogue_versions (version, published_on, checksum, loaded_at) VALUES ($1, $2, $3, $4)',
    [c.version, c.publishedOn, checksum, at],
  );
  await tx.query(
    `INSERT INTO rbac_job_roles (code, name, staff_group_code, staff_group_name, sub_group_code, sub_group_name, retired, catalogue_version)
     SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(code text, name text, staff_group_code text, staff_group_name text,
       sub_group_code text, sub_group_name text, retired boolean, catalogue_version text)
     ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, staff_group_code = EXCLUDED.staff_group_code,
       staff_group_name = EXCLUDED.staff_group_name, sub_group_code = EXCLUDED.sub_group_code,
       sub_group_name = EXCLUDED.sub_group_name, retired = false, catalogue_version = EXCLUDED.catalogue_version`,
    [
      JSON.stringify(
        c.jobRoles.map((r) => ({
          code: r.code,
          name: r.name,
          staff_group_code: r.staffGroup.code,
          staff_group_name: r.staffGroup.name,
          sub_group_code: r.subGroup.code,
          sub_group_name: r.subGroup.name,
          retired: false,
          catalogue_version: c.version,
        })),
      ),
    ],
  );
  await tx.query(
    `INSERT INTO rbac_activities (code, name, includes, retired, catalogue_version)
     SELECT r.code, r.name, ARRAY(SELECT jsonb_array_elements_text(r.includes)), false, $2
     FROM jsonb_to_recordset($1::jsonb) AS r(code text, name text, includes jsonb)
     ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, includes = EXCLUDED.includes, retired = false,
       catalogue_version = EXCLUDED.catalogue_version`,
    [JSON.stringify(c.activities), c.version],
  );
  await tx.query(
    `INSERT INTO rbac_areas_of_work (code, name, area_code, area_name, sub_area_code, sub_area_name, retired, catalogue_version)
     SELECT r.code, r.name, r.area->>'code', r.area->>'name', r."subArea"->>'code', r."subArea"->>'name', false, $2
     FROM jsonb_to_recordset($1::jsonb) AS r(code text, name text, area jsonb, "subArea" jsonb)
     ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, area_code = EXCLUDED.area_code, area_name = EXCLUDED.area_name,
       sub_area_code = EXCLUDED.sub_area_code, sub_area_name = EXCLUDED.sub_area_name, retired = false,
       catalogue_version = EXCLUDED.catalogue_version`,
    [JSON.stringify(c.areasOfWork), c.version],
  );
  for (const table of ['rbac_job_roles', 'rbac_activities', 'rbac_areas_of_work']) {
    await tx.query(`UPDATE ${table} SET retired = true WHERE catalogue_version <> $1 AND NOT retired`, [c.version]);
  }
  await tx.query('DELETE FROM rbac_baseline');
  const pairs = Object.entries(c.baseline).flatMap(([role, acts]) => acts.map((a) => ({ role, act: a })));
  await tx.query(
    `INSERT INTO rbac_baseline (job_role_code, activity_code)
     SELECT DISTINCT r.role, r.act FROM jsonb_to_recordset($1::jsonb) AS r(role text, act text)`,
    [JSON.stringify(pairs)],
  );
}

/** Codes in `codes` that are not current (unknown or retired) in the catalogue table. */
export async function unknownCodes(
  q: Queryable,
  table: 'rbac_job_roles' | 'rbac_activities' | 'rbac_areas_of_work',
  codes: readonly string[],
): Promise<string[]> {
  if (codes.length === 0) return [];
  const { rows } = await q.query<{ code: string }>(`SELECT code FROM ${table} WHERE code = ANY($1) AND NOT retired`, [
    [...codes],
  ]);
  const known = new Set(rows.map((r) => r.code));
  return codes.filter((c) => !known.has(c));
}

/** The names of the catalogue's codes and the activities' inclusions, as of one loaded version. */
export interface CatalogueLabels {
  version: string | null;
  activities: ReadonlyMap<string, string>;
  areasOfWork: ReadonlyMap<string, string>;
  inclusions: ReadonlyMap<string, readonly string[]>;
}

/**
 * A catalogue version never changes once loaded (loadCatalogue refuses the same version with other content), so its
 * labels are kept per database and version: callers pass the version they read with the rest of their data, and a
 * newly loaded catalogue is used from the first request that sees it.
 */
const labelsCache = new WeakMap<Queryable, CatalogueLabels>();

export async function catalogueLabels(q: Queryable, version: string | null): Promise<CatalogueLabels> {
  const cached = labelsCache.get(q);
  if (cached && cached.version === version) return cached;
  // One statement, so the labels and the version they are kept under come from the same snapshot.
  const { rows } = await q.query<{
    version: string | null;
    activities: [string, string, string[]][] | string;
    areas: [string, string][] | string;
  }>(
    `SELECT (SELECT version FROM rbac_catalogue_versions ORDER BY loaded_at DESC, version DESC LIMIT 1) AS version,
       COALESCE((SELECT json_agg(json_build_array(code, name, includes)) FROM rbac_activities), '[]'::json) AS activities,
       COALESCE((SELECT json_agg(json_build_array(code, name)) FROM rbac_areas_of_work), '[]'::json) AS areas`,
  );
  const row = rows[0]!;
  const activities: [string, string, string[]][] =
    typeof row.activities === 'string' ? JSON.parse(row.activities) : row.activities;
  const areas: [string, string][] = typeof row.areas === 'string' ? JSON.parse(row.areas) : row.areas;
  const labels: CatalogueLabels = {
    version: row.version,
    activities: new Map(activities.map(([code, name]) => [code, name])),
    areasOfWork: new Map(areas),
    inclusions: new Map(
      activities.filter(([, , includes]) => includes.length > 0).map(([code, , includes]) => [code, includes]),
    ),
  };
  labelsCache.set(q, labels);
  return labels;
}

export interface CatalogueEntry {
  code: string;
  name: string;
  roleCode?: string;
  includes?: string[];
}

export async function listCatalogue(
  q: Queryable,
): Promise<{ version: string | null; jobRoles: CatalogueEntry[]; activities: CatalogueEntry[] }> {
  const version = await loadedCatalogueVersion(q);
  const roles = await q.query<{ code: string; name: string; staff_group_code: string; sub_group_code: string }>(
    'SELECT code, name, staff_group_code, sub_group_code FROM rbac_job_roles WHERE NOT retired ORDER BY code',
  );
  const acts = await q.query<{ code: string; name: string; includes: string[] }>(
    'SELECT code, name, includes FROM rbac_activities WHERE NOT retired ORDER BY code',
  );
  return {
    version,
    jobRoles: roles.rows.map((r) => ({
      code: r.code,
      name: r.name,
      roleCode: `${r.staff_group_code}:${r.sub_group_code}:${r.code}`,
    })),
    activities: acts.rows.map((a) => ({ code: a.code, name: a.name, includes: a.includes })),
  };
}
