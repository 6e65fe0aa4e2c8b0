import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { test } from 'node:test';
import { sourceFiles } from '../support/sources.ts';

/*
 * Services receive repositories (and a unit of work for transactions), never a raw handle (issue 16, acceptance 1).
 * Checked on the text of the tree, as the other architecture rules are: no service or door declares a parameter (or
 * field) typed Queryable, none turns a handle into repositories itself (reposOf is gone), and the doors hand the
 * database only to what builds a context or a unit of work from it. Each allow-list states its reason.
 */
const SRC = resolve('src');

const rel = (path: string) => relative(SRC, path);
const files = sourceFiles().map((f) => ({ file: rel(f), text: readFileSync(f, 'utf8') }));
const under = (...prefixes: string[]) => files.filter(({ file }) => prefixes.some((p) => file.startsWith(p)));

/** Where the services live, and the doors that call them. */
const SERVICE_AND_DOOR_AREAS = [
  'services/',
  'pki/',
  'cis1/',
  'oidc/',
  'portal/',
  'authenticators/',
  'ra/',
  'api/',
  'signin/',
];

/** The doors: routes that get WebDeps (or the PKI routes' own deps), and the HTTP helpers and OIDC mount around them. */
const DOORS = ['ra/console/', 'api/', 'portal/', 'signin/', 'cis1/routes.ts', 'oidc/', 'http/', 'pki/routes.ts'];

/** What a door may give `deps.db` to: each builds repositories, a unit of work or a context from the database. */
const MAY_TAKE_THE_DATABASE: Record<string, string> = {
  serviceContext: 'builds the service context (repositories and unit of work on the database) for a request',
  storeContext: 'builds the store context (repositories and unit of work) for the services that keep server state',
  unitOfWork: 'the unit of work itself: one transaction with every repository bound to it',
  repositoriesOn: 'a door that does not import the services (pki/routes.ts) builds its store context by hand',
  postgresAdapterFactory: "oidc-provider's storage adapter: it keeps per-database state (written-artefacts.ts)",
};

/** Files that still declare a Queryable parameter, with why: the list only shrinks. */
const QUERYABLE_STILL_TAKEN: Record<string, string> = {};

test('no service or door declares a parameter typed Queryable (or Queryable | Repositories)', () => {
  const taking = under(...SERVICE_AND_DOOR_AREAS)
    .filter(({ text }) => /\b\w+\??\s*:\s*Queryable\b/.test(text))
    .map(({ file }) => file);
  assert.deepEqual(
    taking.filter((f) => !(f in QUERYABLE_STILL_TAKEN)),
    [],
  );
  assert.deepEqual(
    Object.keys(QUERYABLE_STILL_TAKEN).filter((f) => !taking.includes(f)),
    [],
    'these take repositories now: delete them from QUERYABLE_STILL_TAKEN',
  );
});

test('nothing turns a raw handle into repositories with reposOf (it is gone)', () => {
  assert.deepEqual(
    files.filter(({ text }) => /\breposOf\b/.test(text)).map(({ file }) => file),
    [],
  );
});

/** The name of the call `deps.db` at `index` is an argument of (through object literals), or null when it is not one. */
function calleeOf(text: string, index: number): string | null {
  let depth = 0;
  for (let i = index - 1; i >= 0; i--) {
    const c = text[i]!;
    if (c === ')' || c === ']' || c === '}') depth++;
    else if (c === '[' || c === '{') {
      if (depth > 0) depth--;
      // an unclosed { or [: deps.db sits in a literal, which may itself be an argument
    } else if (c === '(') {
      if (depth > 0) {
        depth--;
        continue;
      }
      return /([A-Za-z_$][\w$]*)\s*$/.exec(text.slice(Math.max(0, i - 100), i))?.[1] ?? null;
    } else if (c === ';' && depth === 0) return null;
  }
  return null;
}

test('a door gives deps.db only to what builds repositories, a unit of work or a context from it', () => {
  const bad: string[] = [];
  for (const { file, text } of under(...DOORS)) {
    for (const m of text.matchAll(/\bdeps\.db\b(\s*\.\s*\w+)?/g)) {
      const line = text.slice(0, m.index).split('\n').length;
      // deps.db.transaction(…), deps.db.kind…: the door uses the handle itself
      const callee = m[1] ? null : calleeOf(text, m.index);
      if (!callee || !(callee in MAY_TAKE_THE_DATABASE)) bad.push(`${file}:${line} ${m[0]} → ${callee ?? '(no call)'}`);
    }
    // and no door takes the handle out of deps under another name
    if (/\{[^}]*\bdb\b[^}]*\}\s*=\s*deps\b/.test(text)) bad.push(`${file}: destructures db from deps`);
  }
  assert.deepEqual(bad, []);
});
