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

/** A database whose migration history this version must not build on; the message says what happened and what to do. */
export class MigrationHistoryError extends Error {}

interface AppliedMigration {
  version: number;
  name: string;
  checksum: string;
}

const label = (m: { version: number; name: string }) => `${String(m.version).padStart(4, '0')}_${m.name}`;

/**
 * Safe upgrades: refuses a history that a fresh database would not have. A shipped migration edited after it was
 * applied (its checksum differs) or renamed; a migration in the database that this version does not ship (migrated
 * by a newer version, or renumbered); and a gap filled out of order — a migration not applied while a later one is
 * (0011, 0013, 0012, 0014 landed that way once: a database migrated between saw 0012 after 0013).
 */
export function checkMigrationHistory(
  applied: readonly AppliedMigration[],
  shipped: readonly Migration[],
  options: { allowOutOfOrder?: boolean } = {},
): void {
  const byVersion = new Map(shipped.map((m) => [m.version, m]));
  for (const a of applied) {
    const m = byVersion.get(a.version);
    if (!m) {
      throw new MigrationHistoryError(
        `this database has migration ${label(a)}, which this version of OpenCIS does not ship: it was migrated by a newer version (or one whose migrations were renumbered). Start the version that migrated it.`,
      );
    }
    if (m.name !== a.name) {
      throw new MigrationHistoryError(
        `migration ${String(a.version).padStart(4, '0')} is "${a.name}" in this database but "${m.name}" in this version: a shipped migration was renamed or renumbered. Restore it; changes go in a new migration.`,
      );
    }
    if (m.checksum !== a.checksum) {
      throw new MigrationHistoryError(
        `migration ${label(m)} was edited after it was applied to this database (applied with checksum ${a.checksum.slice(0, 12)}…, the shipped file has ${m.checksum.slice(0, 12)}…). Shipped migrations are never edited: restore the file and put the change in a new migration.`,
      );
    }
  }
  if (options.allowOutOfOrder) return;
  const latest = applied.reduce<AppliedMigration | undefined>(
    (a, b) => (!a || b.version > a.version ? b : a),
    undefined,
  );
  const done = new Set(applied.map((a) => a.version));
  const gap = shipped.find((m) => latest && m.version < latest.version && !done.has(m.version));
  if (gap && latest) {
    throw new MigrationHistoryError(
      `migration ${label(gap)} is not applied to this database but the later ${label(latest)} is: it arrived out of order, and applying it now would run it after ${label(latest)}, unlike on a fresh database. Check that it does not depend on or conflict with the later migrations, then apply it with \`opencis migrate --allow-out-of-order\`.`,
    );
  }
}

async function appliedMigrations(q: Pick<Database, 'query'>): Promise<AppliedMigration[]> {
  const { rows } = await q.query<AppliedMigration>(
    'SELECT version, name, checksum FROM schema_migrations ORDER BY version',
  );
  return rows.map((r) => ({ version: Number(r.version), name: r.name, checksum: r.checksum }));
}

export async function migrate(
  db: Database,
  dir?: string,
  options: { allowOutOfOrder?: boolean } = {},
): Promise<{ applied: Migration[] }> {
  await db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()
  )`);
  const shipped = listMigrations(dir);
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(727274)');
    checkMigrationHistory(await appliedMigrations(tx), shipped, options);
  });
  const applied: Migration[] = [];
  for (const m of shipped) {
    const done = await db.transaction(async (tx) => {
      // The lock makes two nodes starting at once apply each migration exactly once.
      await tx.query('SELECT pg_advisory_xact_lock(727274)');
      const { rows } = await tx.query<{ checksum: string }>(
        'SELECT checksum FROM schema_migrations WHERE version = $1',
        [m.version],
      );
      if (rows[0]) {
        if (rows[0].checksum !== m.checksum) {
          throw new MigrationHistoryError(
            `migration ${label(m)} was changed after it was applied (migrations are forward only)`,
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
