import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { architectureTable } from '../../scripts/architecture-table.ts';

/*
 * docs/architecture.md is the newcomer's map (issue 16, acceptance 7). Its table of policy statements and the files
 * that ask for them is checked against the tree, so the map cannot drift; every path the document names exists.
 */
const doc = readFileSync('docs/architecture.md', 'utf8');

test('docs/architecture.md lists every policy statement with the files that ask for it, as the tree has them', () => {
  const start = doc.indexOf('<!-- statements:start -->');
  const end = doc.indexOf('<!-- statements:end -->');
  assert.ok(start >= 0 && end > start, 'the statements table markers are missing');
  const table = doc.slice(start + '<!-- statements:start -->'.length, end).trim();
  assert.equal(table, architectureTable(), 'regenerate with: node --import tsx scripts/architecture-table.ts');
});

test('every file docs/architecture.md names exists', () => {
  const named = [...doc.matchAll(/`((?:src|test|bench|scripts|docs)\/[^`*…]+?\.(?:ts|md|sql|js|mjs|sh))`/g)].map(
    (m) => m[1]!,
  );
  assert.ok(named.length > 20, 'the map names the files of its use cases');
  assert.deepEqual(
    named.filter((path) => !existsSync(path)),
    [],
  );
});
