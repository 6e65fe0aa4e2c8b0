import { join } from 'node:path';
import type { Config } from '../config.ts';
import { AppError } from '../domain/errors.ts';
import { VERSION } from '../version.ts';
import { ADMIN_SOCKET_NAME, connectAdminSocket } from './admin-socket.ts';
import type { Database } from './database.ts';
import { listMigrations, migrate } from './migrate.ts';
import { openPglite } from './pglite.ts';
import { openPostgres } from './postgres.ts';

export interface OpenOptions {
  /**
   * For `opencis` commands: when a running server holds the embedded database, use it through the server's admin
   * socket (src/storage/admin-socket.ts) instead of failing with service.data_dir_locked. Never for the server.
   */
  throughRunningServer?: boolean;
}

/** The code and migrations this process has: a command may borrow a server's database only if they are the same. */
export function adminSocketIdentity(): { version: string; migrations: number } {
  return { version: VERSION, migrations: listMigrations().at(-1)?.version ?? 0 };
}

/** Opens the database the configuration names: a PostgreSQL server when DATABASE_URL is set, else embedded PGlite. */
export async function openDatabase(
  config: Pick<Config, 'DATABASE_URL' | 'DATABASE_SCHEMA' | 'DATABASE_POOL_SIZE' | 'DATA_DIR'>,
  options: OpenOptions = {},
): Promise<Database> {
  if (config.DATABASE_URL) {
    return openPostgres({
      url: config.DATABASE_URL,
      schema: config.DATABASE_SCHEMA,
      poolSize: config.DATABASE_POOL_SIZE,
    });
  }
  try {
    return await openPglite({ dataDir: config.DATA_DIR });
  } catch (err) {
    if (!options.throughRunningServer || !(err instanceof AppError) || err.code !== 'service.data_dir_locked')
      throw err;
    const viaServer = await connectAdminSocket(join(config.DATA_DIR, ADMIN_SOCKET_NAME), adminSocketIdentity());
    if (!viaServer) throw err;
    return viaServer;
  }
}

export async function openAndMigrate(
  config: Parameters<typeof openDatabase>[0],
  options: OpenOptions = {},
): Promise<Database> {
  const db = await openDatabase(config, options);
  try {
    await migrate(db);
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}
