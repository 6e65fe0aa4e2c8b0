import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Database } from './database.ts';

const SQL_DIR = join(dirname(fileURLToPath(import.meta.url)), 'sql');

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

/** Migrations are files `NNNN_name.sql`, applied in order, forward only; each applied once, in its own transaction. */
export function listMigrations(dir = SQL_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => {
      const sql = readFileSync(join(dir, f), 'utf8');
      return {
        version: Number(f.slice(0, 4)),
        name: f.slice(5, -4),
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    });
}

export interface MigrationStatus {
  applied: number[];
  pending: number[];
  latest: number;
}

export async function migrate(db: Database, dir?: string): Promise<{ applied: Migration[] }> {
  await db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()
  )`);
  const applied: Migration[] = [];
  for (const m of listMigrations(dir)) {
    const done = await db.transaction(async (tx) => {
      // The lock makes two nodes starting at once apply each migration exactly once.
      await tx.query('SELECT pg_advisory_xact_lock(727274)');
      const { rows } = await tx.query<{ checksum: string }>(
        'SELECT checksum FROM schema_migrations WHERE version = $1',
        [m.version],
      );
      if (rows[0]) {
        if (rows[0].checksum !== m.checksum) {
          throw new Error(
            `migration ${m.version}_${m.name} was changed after it was applied (migrations are forward only)`,
          );
        }
        return false;
      }
      for (const statement of splitStatements(m.sql)) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
        m.version,
        m.name,
        m.checksum,
      ]);
      return true;
    });
    if (done) applied.push(m);
  }
  return { applied };
}

export async function migrationStatus(db: Database, dir?: string): Promise<MigrationStatus> {
  const all = listMigrations(dir).map((m) => m.version);
  let applied: number[] = [];
  try {
    const { rows } = await db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    applied = rows.map((r) => Number(r.version));
  } catch {
    applied = [];
  }
  return { applied, pending: all.filter((v) => !applied.includes(v)), latest: all.at(-1) ?? 0 };
}

/**
 * Splits a migration into statements so each runs through the transaction's ordinary query path on both drivers.
 * Understands comments, quoted strings and $$-quoted bodies; that is all our migrations use.
 */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let cur = '';
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i]!;
    if (ch === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? sql.length : end + 1;
      continue;
    }
    if (ch === "'") {
      const end = sql.indexOf("'", i + 1);
      cur += sql.slice(i, end + 1);
      i = end + 1;
      continue;
    }
    if (ch === '$') {
      const m = /^\$[a-z_]*\$/i.exec(sql.slice(i));
      if (m) {
        const end = sql.indexOf(m[0], i + m[0].length);
        cur += sql.slice(i, end + m[0].length);
        i = end + m[0].length;
        continue;
      }
    }
    if (ch === ';') {
      if (cur.trim()) out.push(cur.trim());
      cur = '';
      i++;
      continue;
    }
    cur += ch;
    i++;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}
