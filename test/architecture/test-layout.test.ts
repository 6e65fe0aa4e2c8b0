import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

/*
 * Tests by feature (issue 16, acceptance 6): test/ mirrors src/, one folder per area (test/ra/, test/oidc/…), and
 * what a file needs decides which suite runs it, not where it lives. A file that imports ../support/db.ts runs on both
 * databases (npm run test:pglite, test:postgres); any other runs once, in npm run test:unit. scripts/test-files.mjs
 * makes both lists; these checks hold it, and the tree, to that.
 */
const TEST = resolve('test');
/** Folders of test/ that are not a feature: browser journeys, real process faults, helpers, checks of the tree. */
const NOT_AREAS = ['e2e', 'faults', 'support'];
const OWN = ['architecture'];

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

const rel = (path: string) => relative(resolve('.'), path);
/** Every test file the unit and database suites share out: all of test/ but e2e/, faults/ and support/. */
const testFiles = walk(TEST)
  .filter((path) => path.endsWith('.test.ts') && !NOT_AREAS.includes(relative(TEST, path).split('/')[0]!))
  .map(rel)
  .sort();

function listed(kind: 'unit' | 'db'): string[] {
  return execFileSync(process.execPath, ['scripts/test-files.mjs', kind], { encoding: 'utf8' }).trim().split(/\s+/);
}

/** The files a file imports by relative path (import … from, a bare import, import()), resolved. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const imports = /(?:^\s*(?:import|export)\b[^;]*?\bfrom\s*|^\s*import\s*|\bimport\(\s*)['"](\.[^'"]+)['"]/gms;
  return [...text.matchAll(imports)].map((m) => rel(resolve(dirname(file), m[1]!)));
}

/** Whether `file` reaches test/support/db.ts through its imports, directly or through other helpers. */
function reachesDatabase(file: string, seen = new Set<string>()): boolean {
  if (seen.has(file)) return false;
  seen.add(file);
  return importsOf(file).some(
    (target) => target === 'test/support/db.ts' || (target.startsWith('test/') && reachesDatabase(target, seen)),
  );
}

test('every test file outside e2e/, faults/ and support/ is run by exactly one suite: unit or both databases', () => {
  const unit = listed('unit');
  const db = listed('db');
  assert.ok(unit.length > 10 && db.length > 10, `unit ${unit.length}, db ${db.length}`);
  assert.deepEqual(
    unit.filter((file) => db.includes(file)),
    [],
    'in both suites',
  );
  assert.deepEqual([...unit, ...db].sort(), testFiles, 'the two lists together are every test file, each once');
});

test('a file is a database test exactly when it imports ../support/db.ts; a unit test reaches no database helper', () => {
  for (const file of listed('db')) {
    assert.ok(importsOf(file).includes('test/support/db.ts'), `${file} runs on both databases but imports no db.ts`);
  }
  for (const file of listed('unit')) {
    assert.ok(!reachesDatabase(file), `${file} needs a database through a helper: import ../support/db.ts itself`);
  }
});

test('no test is left in test/unit or test/integration, and none lies loose in test/', () => {
  assert.ok(!existsSync('test/unit'), 'test/unit is gone: tests live in the folder of their feature');
  assert.ok(!existsSync('test/integration'), 'test/integration is gone: tests live in the folder of their feature');
  assert.deepEqual(
    testFiles.filter((file) => dirname(file) === 'test'),
    [],
  );
});

test('each folder of test/ is named after an area of src/ (or is architecture, e2e, faults or support)', () => {
  const areas = readdirSync('src').filter((name) => statSync(join('src', name)).isDirectory());
  const folders = readdirSync(TEST).filter((name) => statSync(join(TEST, name)).isDirectory());
  assert.deepEqual(
    folders.filter((name) => !areas.includes(name) && !NOT_AREAS.includes(name) && !OWN.includes(name)),
    [],
  );
});

test("README's project layout names every folder of test/, and none that is not there", () => {
  const readme = readFileSync('README.md', 'utf8');
  const start = readme.indexOf('## Project layout');
  assert.ok(start >= 0, 'README has a Project layout section');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const named = [...new Set([...section.matchAll(/`test\/([\w-]+)\/`/g)].map((m) => m[1]!))].sort();
  const folders = readdirSync(TEST)
    .filter((name) => statSync(join(TEST, name)).isDirectory())
    .sort();
  assert.deepEqual(named, folders);
});
