import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite, types } from '@electric-sql/pglite';
import { AppError } from '../domain/errors.ts';
import type { Database, Queryable } from './database.ts';

const parsers = {
  [types.DATE]: (v: string) => v,
  [types.INT8]: (v: string) => v,
  [types.NUMERIC]: (v: string) => v,
};

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
  const outside = wrap(db);
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
