import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { loadAuditKeyring } from '../secrets/audit-keys.ts';
import { createSealer, loadSecretsKey, type Sealer } from '../secrets/sealer.ts';
import type { Database } from '../storage/database.ts';
import { type OpenOptions, openAndMigrate } from '../storage/open.ts';
import { BUNDLED_CATALOGUE, loadCatalogue, readCatalogueFile } from './catalogue.ts';
import { ensureCertificateAuthority } from './certificates.ts';
import { serviceContext, systemClock } from './context.ts';
import { seedDemo } from './demo.ts';

/** The secrets key and the audit keys (neither ever in the database), from the configuration. */
export function openSealer(config: Pick<Config, 'SECRETS_KEY' | 'DATA_DIR' | 'AUDIT_KEY_FILE'>): Sealer {
  const secretsKey = loadSecretsKey({ secretsKey: config.SECRETS_KEY, dataDir: config.DATA_DIR });
  return createSealer(secretsKey, {
    auditKeys: loadAuditKeyring({ auditKeyFile: config.AUDIT_KEY_FILE, secretsKey }),
  });
}

/**
 * What every start does before serving: apply pending migrations, load the configured RBAC catalogue if that version
 * is not loaded yet, and seed demo data into an empty database when DEMO_DATA is on.
 */
export async function prepareDatabase(
  config: Config,
  logger?: Logger,
  options: OpenOptions = {},
): Promise<{ db: Database; sealer: Sealer; seededDemo: { userId: string; name: string; roles: number }[] | null }> {
  const sealer = openSealer(config);
  const db = await openAndMigrate(config, options);
  try {
    const ctx = serviceContext({
      db,
      clock: systemClock,
      actor: { kind: 'system', id: 'system:startup' } as const,
      requestId: null,
      allowExampleNiPrefix: config.ALLOW_EXAMPLE_NI_PREFIX,
      sealer,
    });
    const res = await loadCatalogue(ctx, await readCatalogueFile(config.RBAC_CATALOGUE ?? BUNDLED_CATALOGUE), {
      onlyIfNewer: true,
    });
    if (res.loaded) logger?.info({ version: res.version }, 'RBAC catalogue loaded');
    // The card CA exists from the first start (generated here, or imported with `opencis ca import`).
    await ensureCertificateAuthority(ctx);
    let seededDemo: { userId: string; name: string; roles: number }[] | null = null;
    if (config.DEMO_DATA) {
      if ((await ctx.repos.people.peopleCount()) === 0) {
        seededDemo = (
          await seedDemo({ ...ctx, actor: { kind: 'system', id: 'system:demo-seed' }, allowExampleNiPrefix: true })
        ).people;
      }
    }
    return { db, sealer, seededDemo };
  } catch (err) {
    await db.close();
    throw err;
  }
}
