import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { sourceFiles } from '../support/sources.ts';

/*
 * The shape of the tree (issue 16, docs/architecture.md), checked on every run: layers point one way, SQL lives only
 * in src/storage, no import cycles between files or between areas, and files stay small. Each rule's allow-list names
 * what still breaks it, with the reason; a list only ever shrinks.
 */
const SRC = resolve('src');

const files = sourceFiles();
const rel = (path: string) => relative(SRC, path);
const text = new Map(files.map((f) => [f, readFileSync(f, 'utf8')]));

/** Relative imports (and re-exports) of a file, resolved to files. Type-only imports count: they are coupling too. */
function importsOf(file: string): string[] {
  const out: string[] = [];
  for (const m of text.get(file)!.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+['"](\.[^'"]+)['"]/gms)) {
    out.push(resolve(dirname(file), m[1]!));
  }
  return out;
}

/** The area of a file: its top folder under src/, or the file itself at the top (app.ts, config.ts, main.ts…). */
function areaOf(file: string): string {
  const parts = rel(file).split('/');
  return parts.length > 1 ? parts[0]! : parts[0]!.replace(/\.ts$/, '');
}

test('the domain imports nothing outside itself', () => {
  const bad = files
    .filter((f) => areaOf(f) === 'domain')
    .flatMap((f) =>
      importsOf(f)
        .filter((t) => areaOf(t) !== 'domain')
        .map((t) => `${rel(f)} → ${rel(t)}`),
    );
  assert.deepEqual(bad, []);
});

test('no import cycle between files', () => {
  const graph = new Map(files.map((f) => [f, importsOf(f).filter((t) => text.has(t))]));
  const state = new Map<string, 'visiting' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'visiting') {
      cycles.push([...path.slice(path.indexOf(f)), f].map(rel).join(' → '));
      return;
    }
    state.set(f, 'visiting');
    for (const t of graph.get(f) ?? []) visit(t, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of files) visit(f, []);
  assert.deepEqual(cycles, []);
});

/** Area-level cycles still to break, with why they exist; each must go (issue 16, acceptance 3). */
const AREA_CYCLES_STILL_THERE: Record<string, string> = {};

test('no import cycle between areas (folders)', () => {
  const edges = new Map<string, Set<string>>();
  for (const f of files) {
    for (const t of importsOf(f)) {
      const [a, b] = [areaOf(f), areaOf(t)];
      if (a !== b) edges.set(a, (edges.get(a) ?? new Set()).add(b));
    }
  }
  const cycles: string[] = [];
  for (const [a, bs] of edges) {
    for (const b of bs) {
      if (a < b && edges.get(b)?.has(a)) {
        const name = `${a} <-> ${b}`;
        if (!(name in AREA_CYCLES_STILL_THERE)) cycles.push(name);
      }
    }
  }
  assert.deepEqual(cycles.sort(), []);
  const stillThere = (name: string) => {
    const [a, b] = name.split(' <-> ') as [string, string];
    return edges.get(a)?.has(b) === true && edges.get(b)?.has(a) === true;
  };
  assert.deepEqual(
    Object.keys(AREA_CYCLES_STILL_THERE).filter((name) => !stillThere(name)),
    [],
    'these cycles are broken now: delete them from AREA_CYCLES_STILL_THERE',
  );
});

/** Files that still hold SQL outside src/storage (issue 16, acceptance 1): the list shrinks to nothing. */
const SQL_STILL_OUTSIDE_STORAGE: readonly string[] = [];

test('SQL lives only in src/storage', () => {
  const sql =
    /\.query\s*(<[^>]*>)?\s*\(|\.exec\s*\(\s*[`'"]|\b(SELECT|INSERT INTO|DELETE FROM)\b|\bUPDATE\s+[a-z_]+\s+SET\b/;
  const withSql = files
    .filter((f) => !rel(f).startsWith('storage/'))
    .filter((f) => sql.test(text.get(f)!))
    .map(rel);
  assert.deepEqual(
    withSql.filter((f) => !SQL_STILL_OUTSIDE_STORAGE.includes(f)),
    [],
  );
  // The list only shrinks: a file that no longer holds SQL leaves it.
  assert.deepEqual(
    SQL_STILL_OUTSIDE_STORAGE.filter((f) => !withSql.includes(f)),
    [],
    'no SQL left in these: delete them from SQL_STILL_OUTSIDE_STORAGE',
  );
});

/** Files over the size a reader takes in at once, each with the reason it is one piece. */
const LONG_FILES: Record<string, string> = {
  'storage/admin-socket.ts': 'the admin socket protocol (framing, greeting, transactions) in one place',
};

test('no file over ~400 lines without a stated reason', () => {
  const long = files.filter((f) => text.get(f)!.split('\n').length > 420).map(rel);
  assert.deepEqual(
    long.filter((f) => !(f in LONG_FILES)),
    [],
  );
  assert.deepEqual(
    Object.keys(LONG_FILES).filter((f) => !long.includes(f)),
    [],
    'these are short now (or gone): delete them from LONG_FILES',
  );
});
