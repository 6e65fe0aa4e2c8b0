import { createHash } from 'node:crypto';
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

/**
 * Statements with parameters are sent as named prepared statements: each connection parses and plans a given statement
 * once and then only binds and executes it — PostgreSQL's parse/plan work is a large part of its CPU for the short
 * indexed statements OpenCIS sends. The name is a digest of the text, so one text is one statement on every connection.
 */
const statementNames = new Map<string, string>();
const STATEMENT_NAMES_MAX = 2_000;

function statementName(sql: string): string | undefined {
  let name = statementNames.get(sql);
  if (name === undefined) {
    // Statements built with varying text (a bulk insert's VALUES list) would fill every connection's cache: past the
    // limit, new texts are sent unnamed.
    if (statementNames.size >= STATEMENT_NAMES_MAX) return undefined;
    name = `oc_${createHash('sha256').update(sql).digest('base64url').slice(0, 22)}`;
    statementNames.set(sql, name);
  }
  return name;
}

/** 0A000 "cached plan must not change result type", or a prepared statement whose table or column has gone. */
function isStalePlan(err: unknown): boolean {
  const code = pgErrorCode(err);
  return code === '0A000' || code === '42P01' || code === '42703';
}

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
    const values = params as unknown[] | undefined;
    const name = values && values.length > 0 ? statementName(sql) : undefined;
    let res: pg.QueryResult;
    try {
      res = await (q as pg.Pool).query(name ? { name, text: sql, values } : { text: sql, values });
    } catch (err) {
      // A statement prepared on this connection before a schema change that altered its result (a migration run by
      // a test on a live pool): sent once more unnamed. Outside a transaction only — inside, the error has aborted it.
      if (!name || !isStalePlan(err) || 'release' in (q as object)) throw err;
      res = await (q as pg.Pool).query({ text: sql, values });
    }
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
