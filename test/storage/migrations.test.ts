import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Database } from '../../src/storage/database.ts';
import { listMigrations, MigrationHistoryError, migrate } from '../../src/storage/migrate.ts';
import { openPglite } from '../../src/storage/pglite.ts';
import { dropPostgresSchema, openPostgres } from '../../src/storage/postgres.ts';
import { backend, POSTGRES_URL } from '../support/db.ts';

/**
 * Safe upgrades: a database migrated step by step from any earlier release reaches exactly the schema of a fresh one,
 * and a history a fresh database would not have (an edited migration, a gap filled out of order, a migration this
 * version does not ship) stops the start with a message saying what happened.
 */
const SQL_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../src/storage/sql');
const shipped = listMigrations();

/** A migrations folder holding the first `n` shipped migrations (what an earlier release shipped), optionally edited. */
function releaseWith(versions: readonly number[], edit: (name: string, sql: string) => string = (_n, s) => s): string {
  const dir = mkdtempSync(join(tmpdir(), 'opencis-migrations-'));
  for (const m of shipped.filter((x) => versions.includes(x.version))) {
    const file = `${String(m.version).padStart(4, '0')}_${m.name}.sql`;
    const edited = edit(m.name, m.sql);
    if (edited === m.sql) copyFileSync(join(SQL_DIR, file), join(dir, file));
    else writeFileSync(join(dir, file), edited);
  }
  return dir;
}

interface Scratch {
  db: Database;
  schema?: string;
  close(): Promise<void>;
}

async function scratchDatabase(): Promise<Scratch> {
  if (backend === 'postgres') {
    const schema = `m_${process.pid}_${randomBytes(4).toString('hex')}`;
    const db = await openPostgres({ url: POSTGRES_URL, schema, poolSize: 2 });
    return {
      db,
      schema,
      async close() {
        await db.close();
        await dropPostgresSchema(POSTGRES_URL, schema);
      },
    };
  }
  const db = await openPglite();
  return { db, close: () => db.close() };
}

/**
 * The schema as text: on PostgreSQL `pg_dump --schema-only` of the scratch schema (its name replaced); on PGlite, which
 * has no pg_dump here, the same objects read from the catalogue (columns, constraints, indexes, functions, triggers,
 * views, sequences).
 */
async function schemaOf(s: Scratch): Promise<string> {
  if (s.schema) {
    const url = new URL(POSTGRES_URL);
    const dump = execFileSync(
      'pg_dump',
      [
        '--schema-only',
        '--no-owner',
        '--no-privileges',
        `--schema=${s.schema}`,
        '-h',
        url.hostname,
        '-p',
        url.port || '5432',
        '-U',
        url.username || 'postgres',
        url.pathname.slice(1),
      ],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    );
    return dump
      .replaceAll(s.schema, 'SCHEMA')
      .split('\n')
      .filter((l) => !l.startsWith('-- Dumped') && !l.startsWith('\\restrict') && !l.startsWith('\\unrestrict'))
      .join('\n');
  }
  const parts: string[] = [];
  const read = async (sql: string) => {
    const { rows } = await s.db.query<Record<string, unknown>>(sql);
    parts.push(...rows.map((r) => JSON.stringify(r)));
  };
  const here = '(SELECT oid FROM pg_namespace WHERE nspname = current_schema())';
  await read(`SELECT table_name, column_name, ordinal_position, data_type, is_nullable, column_default, is_identity
    FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`);
  await read(`SELECT conrelid::regclass::text AS rel, conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
    WHERE connamespace = ${here} ORDER BY 1, 2`);
  await read(`SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1, 2`);
  await read(`SELECT proname, pg_get_functiondef(oid) AS def FROM pg_proc WHERE pronamespace = ${here} AND prokind = 'f'
    ORDER BY 1, 2`);
  await read(`SELECT tgname, pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE NOT tgisinternal
    AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = ${here}) ORDER BY 1`);
  await read(`SELECT viewname, definition FROM pg_views WHERE schemaname = current_schema() ORDER BY 1`);
  await read(`SELECT sequencename, data_type, increment_by, min_value, max_value FROM pg_sequences
    WHERE schemaname = current_schema() ORDER BY 1`);
  return parts.join('\n');
}

test(`[${backend}] a database migrated from every earlier migration step to head has the schema of a fresh one${backend === 'postgres' ? ' (pg_dump --schema-only)' : ''}`, async () => {
  const fresh = await scratchDatabase();
  let expected: string;
  try {
    await migrate(fresh.db);
    expected = await schemaOf(fresh);
  } finally {
    await fresh.close();
  }
  assert.ok(expected.length > 1000);
  for (let step = 1; step < shipped.length; step++) {
    const s = await scratchDatabase();
    try {
      // An install of the release that shipped migrations up to this step…
      const versions = shipped.slice(0, step).map((m) => m.version);
      await migrate(s.db, releaseWith(versions));
      // …upgraded to this one.
      const { applied } = await migrate(s.db);
      assert.deepEqual(
        applied.map((m) => m.version),
        shipped.slice(step).map((m) => m.version),
      );
      assert.equal(await schemaOf(s), expected, `upgraded from step ${step} (${versions.at(-1)})`);
    } finally {
      await s.close();
    }
  }
});

test(`[${backend}] a shipped migration edited after it was applied stops the start, naming it`, async () => {
  const s = await scratchDatabase();
  try {
    await migrate(s.db);
    const all = shipped.map((m) => m.version);
    const third = shipped[2]!;
    const edited = releaseWith(all, (name, sql) => (name === third.name ? `${sql}\n-- a later edit\n` : sql));
    await assert.rejects(migrate(s.db, edited), (err: Error) => {
      assert.ok(err instanceof MigrationHistoryError);
      assert.match(
        err.message,
        new RegExp(`migration 000${third.version}_${third.name} was edited after it was applied`),
      );
      assert.match(err.message, /put the change in a new migration/);
      return true;
    });
    // A migration this version does not ship (the database was migrated by a newer one).
    await assert.rejects(migrate(s.db, releaseWith(all.slice(0, -1))), /does not ship/);
    // A renamed one.
    const renamed = releaseWith(all.slice(0, -1));
    const last = shipped.at(-1)!;
    copyFileSync(
      join(SQL_DIR, `${String(last.version).padStart(4, '0')}_${last.name}.sql`),
      join(renamed, `${String(last.version).padStart(4, '0')}_renamed.sql`),
    );
    await assert.rejects(migrate(s.db, renamed), /was renamed or renumbered/);
    // Nothing was changed by the refusals: the real release still finds the database up to date.
    assert.deepEqual((await migrate(s.db)).applied, []);
  } finally {
    await s.close();
  }
});

test(`[${backend}] a gap filled out of order (0012 arriving after 0013) stops the start, until it is applied on purpose`, async () => {
  const s = await scratchDatabase();
  try {
    // The release with the gap is one from before 0023, which replaces a function 0012 creates (a later migration may
    // build on an earlier one: only the gap itself arrives out of order).
    const all = shipped.map((m) => m.version).filter((v) => v < 23);
    await migrate(s.db, releaseWith(all.filter((v) => v !== 12)));
    await assert.rejects(migrate(s.db), (err: Error) => {
      assert.ok(err instanceof MigrationHistoryError);
      assert.match(
        err.message,
        /migration 0012_\w+ is not applied to this database but the later \d{4}_\w+ is: it arrived out of order/,
      );
      assert.match(err.message, /opencis migrate --allow-out-of-order/);
      return true;
    });
    const { rows } = await s.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM schema_migrations WHERE version = 12',
    );
    assert.equal(rows[0]!.n, 0, 'nothing applied by the refused start');
    const { applied } = await migrate(s.db, undefined, { allowOutOfOrder: true });
    assert.deepEqual(
      applied.map((m) => m.version),
      [12, ...shipped.map((m) => m.version).filter((v) => v >= 23)],
    );
    assert.deepEqual((await migrate(s.db)).applied, [], 'and then starts normally');
  } finally {
    await s.close();
  }
});
