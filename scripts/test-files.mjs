#!/usr/bin/env node
/**
 * Prints the test files of one kind, space-separated and sorted, for the npm scripts (issue 16, acceptance 6):
 *
 *   node scripts/test-files.mjs unit   files that need no database (npm run test:unit)
 *   node scripts/test-files.mjs db     files that import test/support/db.ts, run on PGlite and on PostgreSQL
 *                                      (npm run test:pglite, npm run test:postgres)
 *
 * Tests live in a folder per feature under test/ (test/ra/, test/oidc/…), whatever they need; what decides the suite
 * is whether the file imports ../support/db.ts. test/e2e/ (Chromium), test/faults/ (real process faults) and
 * test/support/ (helpers) are in neither. test/architecture/test-layout.test.ts checks every file is in exactly one.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TEST = join(ROOT, 'test');
/** Folders of test/ whose files the unit and database suites never run. */
const OUTSIDE = ['e2e', 'faults', 'support'];
/** An import of the test database helper, from a test folder (`../support/db.ts`). */
const USES_DB = /^\s*import\b[^;]*?\bfrom\s+['"]\.\.\/support\/db\.ts['"]/m;

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? walk(path) : [path];
  });
}

/** Every test file the two suites share out, relative to the repository (test/ra/ra.test.ts…), sorted. */
function testFiles() {
  return readdirSync(TEST, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && !OUTSIDE.includes(entry.name))
    .flatMap((entry) => walk(join(TEST, entry.name)))
    .filter((path) => path.endsWith('.test.ts'))
    .map((path) => relative(ROOT, path).split('\\').join('/'))
    .sort();
}

/** 'db' when the file imports the test database helper, else 'unit'. */
function kindOf(file) {
  return USES_DB.test(readFileSync(join(ROOT, file), 'utf8')) ? 'db' : 'unit';
}

/**
 * Fails so that the suite fails: the npm scripts take this output with $(…), which does not stop on an error, and an
 * empty list would make node --test run its default pattern instead — every test file, e2e and faults included. So the
 * reason also goes to stdout as one word, a path that does not exist, and node --test stops on it ("Could not find …").
 */
function fail(reason) {
  process.stderr.write(`scripts/test-files.mjs: ${reason}\n`);
  process.stdout.write(`/nonexistent/test-files.mjs-failed:${reason.replace(/[^\w.:-]+/g, '-')}\n`);
  process.exit(1);
}

const kind = process.argv[2];
if (kind !== 'unit' && kind !== 'db') fail('usage: node scripts/test-files.mjs unit|db');
let files = [];
try {
  files = testFiles().filter((file) => kindOf(file) === kind);
} catch (error) {
  fail(error instanceof Error ? error.message : String(error));
}
if (files.length === 0) fail(`no ${kind} test files under test/`);
process.stdout.write(`${files.join(' ')}\n`);
