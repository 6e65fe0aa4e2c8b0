/**
 * RA person search at national scale: `npm run bench:search`.
 *
 * Fills a PostgreSQL schema with the synthetic national data set (1.3 M people by default; seeded once and reused by
 * later runs), then times the searchPeople service for each kind of search an RA makes, one caller at a time and with
 * several at once, next to a bare `SELECT 1` round trip through the same pool (the floor no query can beat). Prints a
 * table and writes the figures to bench/results/search-<date>.json.
 *
 * Settings (environment): BENCH_DATABASE_URL (loopback only), BENCH_SCHEMA, BENCH_PEOPLE, BENCH_ITERATIONS,
 * BENCH_CONCURRENCY, BENCH_SAMPLE, BENCH_MAX_SECONDS (cap on each measurement).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createSealer } from '../src/secrets/sealer.ts';
import { BUNDLED_CATALOGUE, loadCatalogue, readCatalogueFile } from '../src/services/catalogue.ts';
import { type ServiceContext, serviceContext, systemClock } from '../src/services/context.ts';
import { type SearchQuery, searchPeople } from '../src/services/people.ts';
import { seedSynthetic } from '../src/services/synthetic.ts';
import type { Database } from '../src/storage/database.ts';
import { migrate } from '../src/storage/migrate.ts';
import { openPostgres } from '../src/storage/postgres.ts';

const settings = {
  url: process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  schema: process.env.BENCH_SCHEMA ?? 'opencis_bench',
  people: wholeNumber('BENCH_PEOPLE', 1_300_000),
  iterations: wholeNumber('BENCH_ITERATIONS', 2_000),
  concurrency: wholeNumber('BENCH_CONCURRENCY', 8),
  sample: wholeNumber('BENCH_SAMPLE', 4_000),
  maxSeconds: wholeNumber('BENCH_MAX_SECONDS', 60),
};

function wholeNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a whole number ≥ 1`);
  return n;
}

/** The benchmark writes millions of rows: refuse anything but a database on this machine. */
function assertLoopback(url: string): void {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  if (!['127.0.0.1', 'localhost', '::1'].includes(host)) {
    throw new Error(`BENCH_DATABASE_URL must point at a loopback address, not ${host}`);
  }
}

interface SampleRow {
  user_id: string;
  ni_number: string | null;
  email: string | null;
  family_name: string;
  given_name: string;
  date_of_birth: string;
}

interface Measurement {
  kind: string;
  callers: number;
  calls: number;
  errors: number;
  meanRows: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  opsPerSecond: number;
}

type Call = (i: number) => Promise<number>;

async function main(): Promise<void> {
  assertLoopback(settings.url);
  const db = await openPostgres({ url: settings.url, schema: settings.schema, poolSize: settings.concurrency + 2 });
  try {
    const ctx: ServiceContext = serviceContext({
      db,
      clock: systemClock,
      actor: { kind: 'system', id: 'system:bench' },
      requestId: null,
      allowExampleNiPrefix: false,
      // Nothing here seals secrets; a throwaway key keeps the context complete.
      sealer: createSealer(randomBytes(32)),
    });
    await migrate(db);
    await loadCatalogue(ctx, await readCatalogueFile(BUNDLED_CATALOGUE), { onlyIfNewer: true });
    const seed = await ensureDataSet(ctx, db);
    // VACUUM as well as ANALYZE: a freshly loaded table has no visibility map and unset hint bits, which a live
    // database (autovacuum) would not have; measuring before they settle times the load, not the search.
    const analyzeStarted = performance.now();
    await db.query('VACUUM (ANALYZE)');
    out(`VACUUM (ANALYZE) took ${seconds(analyzeStarted)}`);
    const counts = await rowCounts(db);
    out(
      `Data set: ${Object.entries(counts)
        .map(([t, n]) => `${t} ${n.toLocaleString('en-GB')}`)
        .join(', ')}`,
    );
    const postgres =
      (await db.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v ?? null;
    const sample = await sampleRows(db);
    // The load average says whether something else shared the CPUs while we measured (2 cores: anything above ~2).
    const loadBefore = loadavg()[0]!;
    const results = await measureAll(ctx, db, sample);
    const load = { before: round2(loadBefore), after: round2(loadavg()[0]!) };
    printTable(results);
    out(`Load average (1 min) ${load.before} before, ${load.after} after measuring.`);
    await saveResults({ postgres, counts, seed, load, results });
  } finally {
    await db.close();
  }
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`;
}

async function countOf(db: Database, table: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`);
  return Number(rows[0]!.n);
}

/** Seeds the synthetic data set up to BENCH_PEOPLE people; a schema that has them already is reused as it is. */
async function ensureDataSet(
  ctx: ServiceContext,
  db: Database,
): Promise<{ seededPeople: number; seconds: number } | null> {
  const have = await countOf(db, 'people');
  if (have >= settings.people) {
    out(`Schema ${settings.schema} already has ${have.toLocaleString('en-GB')} people: not seeding.`);
    return null;
  }
  const missing = settings.people - have;
  out(
    `Schema ${settings.schema} has ${have.toLocaleString('en-GB')} people: seeding ${missing.toLocaleString('en-GB')}…`,
  );
  const res = await seedSynthetic(ctx, missing, { progress: out });
  out(
    `Seeded ${res.people} people, ${res.organisations} organisations, ${res.positions} positions and ` +
      `${res.roleProfiles} role profiles in ${(res.ms / 1000).toFixed(1)} s.`,
  );
  return { seededPeople: res.people, seconds: Math.round(res.ms / 100) / 10 };
}

async function rowCounts(db: Database): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of ['people', 'organisations', 'positions', 'person_orgs', 'role_profiles', 'audit_events']) {
    counts[table] = await countOf(db, table);
  }
  return counts;
}

/** Search terms come from real rows, picked at random, so each search looks for someone who is there. */
async function sampleRows(db: Database): Promise<SampleRow[]> {
  const { rows } = await db.query<SampleRow>(
    `SELECT user_id, ni_number, email, family_name, given_name, date_of_birth
     FROM people ORDER BY random() LIMIT $1`,
    [settings.sample],
  );
  if (rows.length === 0) throw new Error('no people to search for');
  return rows;
}

/** A prefix of 3 to 5 characters, as RA staff type the start of a name. */
function prefix(name: string, i: number): string {
  return name.slice(0, 3 + (i % 3));
}

function searches(ctx: ServiceContext, sample: readonly SampleRow[]): Record<string, Call> {
  const row = (i: number) => sample[i % sample.length]!;
  const search = async (query: SearchQuery, mustFind: string | null): Promise<number> => {
    const page = await searchPeople(ctx, query, { limit: 20 });
    if (mustFind && !page.people.some((p) => p.userId === mustFind)) {
      throw new Error(`search ${JSON.stringify(query)} did not find ${mustFind}`);
    }
    return page.people.length;
  };
  return {
    'user ID': (i) => search({ userId: row(i).user_id }, row(i).user_id),
    'NI number': (i) => search({ niNumber: row(i).ni_number ?? '' }, row(i).user_id),
    email: (i) => search({ email: row(i).email ?? '' }, row(i).user_id),
    'family prefix + date of birth': (i) =>
      search({ familyName: prefix(row(i).family_name, i), dateOfBirth: row(i).date_of_birth }, null),
    'family prefix + given prefix': (i) =>
      search({ familyName: prefix(row(i).family_name, i), givenName: row(i).given_name.slice(0, 2 + (i % 2)) }, null),
  };
}

async function measureAll(ctx: ServiceContext, db: Database, sample: readonly SampleRow[]): Promise<Measurement[]> {
  const kinds: Record<string, Call> = {
    'SELECT 1 (floor)': async () => {
      await db.query('SELECT 1');
      return 1;
    },
    ...searches(ctx, sample),
  };
  const results: Measurement[] = [];
  for (const callers of [1, settings.concurrency]) {
    for (const [kind, call] of Object.entries(kinds)) {
      await measure(call, 50, 1); // warm the pool's connections and the plan cache; not counted
      const m = await measure(call, settings.iterations, callers);
      results.push({ kind, ...m });
      out(`  ${kind}, ${callers} caller${callers === 1 ? '' : 's'}: p99 ${m.p99.toFixed(2)} ms`);
    }
  }
  return results;
}

/** Runs `iterations` calls spread over `callers` concurrent loops, stopping early at BENCH_MAX_SECONDS. */
async function measure(call: Call, iterations: number, callers: number): Promise<Omit<Measurement, 'kind'>> {
  const latencies: number[] = [];
  let next = 0;
  let errors = 0;
  let rows = 0;
  const started = performance.now();
  const deadline = started + settings.maxSeconds * 1000;
  const loop = async () => {
    while (next < iterations && performance.now() < deadline) {
      const i = next++;
      const t0 = performance.now();
      try {
        const found = await call(i);
        rows += found;
      } catch (err) {
        errors++;
        if (errors === 1) out(`    first error: ${err instanceof Error ? err.message : String(err)}`);
      }
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: callers }, loop));
  const wall = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return {
    callers,
    calls: latencies.length,
    errors,
    meanRows: latencies.length ? rows / latencies.length : 0,
    p50: at(0.5),
    p95: at(0.95),
    p99: at(0.99),
    max: latencies.at(-1) ?? 0,
    opsPerSecond: latencies.length / wall,
  };
}

function printTable(results: readonly Measurement[]): void {
  const header = ['search', 'callers', 'calls', 'rows', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'ops/s'];
  const lines = results.map((r) => [
    r.kind,
    String(r.callers),
    String(r.calls),
    r.meanRows.toFixed(1),
    r.p50.toFixed(2),
    r.p95.toFixed(2),
    r.p99.toFixed(2),
    r.max.toFixed(2),
    Math.round(r.opsPerSecond).toString(),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...lines.map((l) => l[c]!.length)));
  const fmt = (cells: string[]) => cells.map((v, c) => (c === 0 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!)));
  out('');
  out(fmt(header).join('  '));
  for (const l of lines) out(fmt(l).join('  '));
  const errors = results.reduce((n, r) => n + r.errors, 0);
  if (errors > 0) out(`\n${errors} calls failed (counted in the latencies above).`);
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

async function saveResults(body: {
  postgres: string | null;
  load: { before: number; after: number };
  counts: Record<string, number>;
  seed: { seededPeople: number; seconds: number } | null;
  results: Measurement[];
}): Promise<void> {
  const now = new Date();
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'results');
  await mkdir(dir, { recursive: true });
  const file = join(dir, `search-${now.toISOString().slice(0, 10)}.json`);
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null, memoryGb: totalmem() / 2 ** 30 };
  const report = { at: now.toISOString(), machine, node: process.version, settings, ...body };
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  out(`\nFigures written to ${file}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
