import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CatalogueFile, catalogueFileSchema } from '../domain/access/catalogue.ts';
import { AppError } from '../domain/errors.ts';
import { authorize } from '../domain/policy.ts';
import type { CatalogueEntry, CatalogueLabels } from '../storage/repositories/catalogue.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { appendAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';
import { parseInput } from './validation.ts';

/** The catalogue shipped with this release. A newer national release is loaded with `opencis rbac load FILE`. */
export const BUNDLED_CATALOGUE = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'data',
  'rbac',
  'national-rbac-2026.11.1.json',
);

export async function readCatalogueFile(path: string): Promise<{ catalogue: CatalogueFile; checksum: string }> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch {
    throw new AppError('import.file_not_found', { path });
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new AppError('rbac.catalogue_invalid', { problems: [{ field: '(file)', message: 'not valid JSON' }] });
  }
  const catalogue = parseInput(catalogueFileSchema, json, () => 'rbac.catalogue_invalid');
  return { catalogue, checksum: createHash('sha256').update(raw).digest('hex') };
}

export function loadedCatalogueVersion(repos: Repositories): Promise<string | null> {
  return repos.catalogue.loadedCatalogueVersion();
}

/**
 * Loads a catalogue version: adds and renames codes, and marks codes the new version no longer lists as retired
 * (never deletes them: positions and history refer to them). Loading the same version again changes nothing.
 */
export async function loadCatalogue(
  ctx: ServiceContext,
  file: { catalogue: CatalogueFile; checksum: string },
  options: { onlyIfNewer?: boolean } = {},
): Promise<{ version: string; loaded: boolean }> {
  authorize(ctx.actor, 'catalogue:load', { kind: 'national' });
  const { catalogue: c, checksum } = file;
  return ctx.transaction(async (tx) => {
    const existing = await tx.catalogue.checksumOfVersion(c.version);
    if (existing !== undefined) {
      if (existing !== checksum) {
        throw new AppError('rbac.catalogue_invalid', {
          problems: [{ field: 'version', message: `version ${c.version} is already loaded with different content` }],
        });
      }
      return { version: c.version, loaded: false };
    }
    // National releases only move forward: an older file would retire codes that newer positions use.
    const newest = await tx.catalogue.latestPublishedVersion();
    if (newest && newest.published_on > c.publishedOn) {
      if (options.onlyIfNewer) return { version: newest.version, loaded: false };
      throw new AppError('rbac.catalogue_invalid', {
        problems: [{ field: 'publishedOn', message: `version ${newest.version}, published later, is already loaded` }],
      });
    }
    await tx.catalogue.writeCatalogue(c, checksum, ctx.clock.now());
    await appendAudit(tx, ctx, {
      action: 'catalogue.loaded',
      targetType: 'rbac_catalogue',
      targetId: c.version,
      before: null,
      after: {
        version: c.version,
        checksum,
        jobRoles: c.jobRoles.length,
        activities: c.activities.length,
        areasOfWork: c.areasOfWork.length,
      },
    });
    return { version: c.version, loaded: true };
  });
}

/** Codes in `codes` that are not current (unknown or retired) in the catalogue table. */
export function unknownCodes(
  repos: Repositories,
  table: 'rbac_job_roles' | 'rbac_activities' | 'rbac_areas_of_work',
  codes: readonly string[],
): Promise<string[]> {
  return repos.catalogue.unknownCodes(table, codes);
}

export type { CatalogueEntry, CatalogueLabels };

/**
 * The names of the catalogue's codes as of version `version` (kept per database and version, see
 * src/storage/repositories/catalogue.ts).
 */
export function catalogueLabels(repos: Repositories, version: string | null): Promise<CatalogueLabels> {
  return repos.catalogue.catalogueLabels(version);
}

export function listCatalogue(
  repos: Repositories,
): Promise<{ version: string | null; jobRoles: CatalogueEntry[]; activities: CatalogueEntry[] }> {
  return repos.catalogue.listCatalogue();
}
