import pg from 'pg';
import type { Database, Queryable, QueryResult } from './database.ts';
import { PG_DEADLOCK, PG_SERIALIZATION_FAILURE, pgErrorCode } from './database.ts';

const { Pool, types } = pg;

/** Values come back the same way from both drivers: dates as YYYY-MM-DD strings, 64-bit integers as strings. */
const parsers: Record<number, (v: string) => unknown> = {
  [types.builtins.DATE]: (v) => v,
  [types.builtins.INT8]: (v) => v,
  [types.builtins.NUMERIC]: (v) => v,
};

export interface PostgresOptions {
  url: string;
  /** Schema to use (created if missing) — lets test runs and tenants share one database without colliding. */
  schema?: string;
  poolSize?: number;
}

export async function openPostgres(options: PostgresOptions): Promise<Database> {
  const schema = options.schema;
  if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error('invalid schema name');
  const pool = new Pool({
    connectionString: options.url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    options: schema ? `-c search_path=${schema}` : undefined,
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        parsers[oid] ?? types.getTypeParser(oid, format as 'text')) as typeof types.getTypeParser,
    },
  });
  // An idle client losing its connection (database restart) must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  if (schema) await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);

  const run = async <R>(q: Queryable | pg.Pool | pg.PoolClient, sql: string, params?: readonly unknown[]) => {
    const res = await (q as pg.Pool).query(sql, params as unknown[] | undefined);
    return { rows: res.rows as R[], rowCount: res.rowCount ?? 0 } satisfies QueryResult<R>;
  };

  return {
    kind: 'postgres',
    query: (sql, params) => run(pool, sql, params),
    async exec(sql) {
      await pool.query(sql);
    },
    async transaction(fn) {
      // Serialization failures and deadlocks are retried: the transaction had no effect, so running it again is safe.
      for (let attempt = 1; ; attempt++) {
        const client = await pool.connect();
        // A connection cut while the client is checked out between two queries (database restart, backend terminated)
        // is reported as an 'error' event: unheard, it would crash the process. The next query on it fails instead,
        // and the client is dropped from the pool on release.
        let broken: Error | undefined;
        const onError = (err: Error) => {
          broken = err;
        };
        client.on('error', onError);
        try {
          await client.query('BEGIN');
          const tx: Queryable = { query: (sql, params) => run(client, sql, params) };
          const result = await fn(tx);
          await client.query('COMMIT');
          return result;
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {});
          const code = pgErrorCode(err);
          if ((code === PG_SERIALIZATION_FAILURE || code === PG_DEADLOCK) && attempt < 5) continue;
          throw err;
        } finally {
          client.off('error', onError);
          client.release(broken);
        }
      }
    },
    async close() {
      await pool.end();
    },
  };
}

/** Drops a schema made for a test run. */
export async function dropPostgresSchema(url: string, schema: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error('invalid schema name');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}
