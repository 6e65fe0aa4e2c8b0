import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite, parse, protocol, types } from '@electric-sql/pglite';
import pgUtils from 'pg/lib/utils.js';
import { AppError } from '../domain/errors.ts';
import { type Database, pgErrorCode, type Queryable, type QueryResult } from './database.ts';

const parsers = {
  [types.DATE]: (v: string) => v,
  [types.INT8]: (v: string) => v,
  [types.NUMERIC]: (v: string) => v,
};

/**
 * A parameter as text, as `pg` sends it to a PostgreSQL server (types left for the server to infer from the statement):
 * the same statement gets the same values on both databases. Binary values are sent as bytea's hex text.
 */
function textParameter(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Uint8Array)
    return `\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
  const prepared = pgUtils.prepareValue(value);
  return prepared === null || prepared === undefined ? null : String(prepared);
}

/** 0A000 "cached plan must not change result type", or a prepared statement whose table or column has gone. */
function isStalePlan(err: unknown): boolean {
  const code = pgErrorCode(err);
  return code === '0A000' || code === '42P01' || code === '42703';
}

const STATEMENT_NAMES_MAX = 2_000;

/**
 * Statements outside a transaction, in one call into PostgreSQL each (PGlite's own `query` makes six: parse, describe,
 * bind, describe, execute, sync — each a trip into the WebAssembly, and the statement parsed and planned every time).
 * A statement with parameters is prepared once under a name, like the PostgreSQL driver does (src/storage/postgres.ts),
 * and then only bound and executed: PostgreSQL keeps its plan. Parameters go as text with their types inferred by the
 * server, as `pg` sends them. Runs under PGlite's own locks, so it never overlaps a transaction or another query.
 */
function fastQueries(db: PGlite) {
  const { serialize } = protocol;
  const prepared = new Map<string, string>();
  let next = 0;

  const run = async (message: Uint8Array) =>
    db._runExclusiveTransaction(() => db._runExclusiveQuery(() => db.execProtocolStream(message, {})));

  const concat = (parts: Uint8Array[]) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  };

  async function statementFor(sql: string): Promise<string> {
    let name = prepared.get(sql);
    if (name !== undefined) return name;
    if (prepared.size >= STATEMENT_NAMES_MAX) return ''; // texts that vary (bulk inserts): unnamed, as pg does
    name = `oc_${++next}`;
    await run(concat([serialize.parse({ name, text: sql }), serialize.sync()]));
    prepared.set(sql, name);
    return name;
  }

  async function execute<R>(sql: string, params: readonly unknown[] | undefined): Promise<QueryResult<R>> {
    const values = (params ?? []).map(textParameter);
    const statement = values.length > 0 ? await statementFor(sql) : '';
    const messages = await run(
      concat([
        ...(statement ? [] : [serialize.parse({ text: sql })]),
        serialize.bind({ statement, values }),
        serialize.describe({ type: 'P' }),
        serialize.execute({}),
        serialize.sync(),
      ]),
    );
    const res = parse.parseResults(messages, db.parsers)[0]!;
    return { rows: res.rows as R[], rowCount: Math.max(res.affectedRows ?? 0, res.rows.length) };
  }

  return {
    async query<R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      try {
        return await execute<R>(sql, params);
      } catch (err) {
        // Prepared before a schema change that altered its result: prepared again.
        const name = prepared.get(sql);
        if (!name || !isStalePlan(err)) throw err;
        prepared.delete(sql);
        await run(concat([serialize.close({ type: 'S', name }), serialize.sync()])).catch(() => {});
        return execute<R>(sql, params);
      }
    },
  };
}

export interface PgliteOptions {
  /** Directory for the database files; omit for an in-memory database. */
  dataDir?: string;
  /** A dump made by `dumpPglite`, loaded instead of running migrations again (tests). */
  loadDataDir?: Blob | File;
}

/**
 * PGlite is one PostgreSQL backend in this process. Two processes on one data directory lose writes without an error,
 * so the directory is locked with a pid file and a second process is refused with a clear message.
 */
function lockDataDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const lockPath = join(dir, 'opencis.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(lockPath, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(readFileSync(lockPath, 'utf8').trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
        throw new AppError('service.data_dir_locked', { dataDir: dir, pid: holder });
      }
      rmSync(lockPath, { force: true }); // stale lock from a process that died
    }
  }
  throw new AppError('service.data_dir_locked', { dataDir: dir });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function openPglite(options: PgliteOptions = {}): Promise<Database & { dump(): Promise<Blob> }> {
  let unlock = () => {};
  let pgDir: string | undefined;
  if (options.dataDir) {
    unlock = lockDataDir(options.dataDir);
    pgDir = join(options.dataDir, 'pglite');
  }
  let db: PGlite;
  try {
    db = await PGlite.create({ dataDir: pgDir, loadDataDir: options.loadDataDir, parsers });
  } catch (err) {
    unlock();
    throw err;
  }
  const wrap = (q: { query: PGlite['query'] }): Queryable => ({
    async query(sql, params) {
      const res = await q.query(sql, params as unknown[] | undefined);
      return { rows: res.rows as never[], rowCount: Math.max(res.affectedRows ?? 0, res.rows.length) };
    },
  });
  const outside = fastQueries(db);
  return {
    kind: 'pglite',
    query: outside.query,
    async exec(sql) {
      await db.exec(sql);
    },
    // PGlite serialises transactions behind its own mutex: never send BEGIN/COMMIT through db.query, and never call
    // db.query inside the callback (it would wait for the mutex this transaction holds).
    transaction: (fn) => db.transaction((tx) => fn(wrap(tx))),
    async dump() {
      return db.dumpDataDir('none');
    },
    async close() {
      try {
        await db.close();
      } finally {
        unlock();
      }
    },
  };
}
