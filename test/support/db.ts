import { randomBytes } from 'node:crypto';
import { BUNDLED_CATALOGUE, loadCatalogue, readCatalogueFile } from '../../src/services/catalogue.ts';
import { serviceContext, systemClock } from '../../src/services/context.ts';
import type { Database } from '../../src/storage/database.ts';
import { migrate } from '../../src/storage/migrate.ts';
import { openPglite } from '../../src/storage/pglite.ts';
import { dropPostgresSchema, openPostgres } from '../../src/storage/postgres.ts';
import { type Repositories, repositoriesOn } from '../../src/storage/repositories/index.ts';
import { testSealer } from './context.ts';

/**
 * The storage backend the database tests run on: TEST_DATABASE=pglite (default) or postgres. `npm test` runs them
 * once with each (test:pglite, test:postgres). Importing this file is what makes a test file one of them
 * (scripts/test-files.mjs); a file that does not is a unit test. In CI a missing PostgreSQL fails the run (the
 * connection error is not caught).
 */
export const backend: 'pglite' | 'postgres' = process.env.TEST_DATABASE === 'postgres' ? 'postgres' : 'pglite';
export const POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestDatabase {
  db: Database;
  /** The repositories on `db`: what tests give the services that read. */
  repos: Repositories;
  /** For PostgreSQL: the schema this test database lives in (give it to a child process as DATABASE_SCHEMA). */
  schema?: string;
  close(): Promise<void>;
}

let template: Promise<Blob> | undefined;

async function prepare(db: Database): Promise<void> {
  await migrate(db);
  await loadCatalogue(
    serviceContext({
      db,
      clock: systemClock,
      actor: { kind: 'system', id: 'system:test' },
      requestId: null,
      allowExampleNiPrefix: true,
      sealer: testSealer,
    }),
    await readCatalogueFile(BUNDLED_CATALOGUE),
  );
}

/** A fresh, migrated database with the bundled RBAC catalogue loaded, isolated from every other test. */
export async function createTestDatabase(): Promise<TestDatabase> {
  if (backend === 'postgres') {
    const schema = `t_${process.pid}_${randomBytes(4).toString('hex')}`;
    const db = await openPostgres({ url: POSTGRES_URL, schema, poolSize: 12 });
    await prepare(db);
    return {
      db,
      repos: repositoriesOn(db),
      schema,
      async close() {
        await db.close();
        await dropPostgresSchema(POSTGRES_URL, schema);
      },
    };
  }
  // Opening and migrating PGlite takes seconds; a migrated template is built once per process and copied.
  template ??= (async () => {
    const t = await openPglite();
    await prepare(t);
    const dump = await t.dump();
    await t.close();
    return dump;
  })();
  const db = await openPglite({ loadDataDir: await template });
  return { db, repos: repositoriesOn(db), close: () => db.close() };
}
