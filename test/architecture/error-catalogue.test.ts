import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { documentedTable, ERRORS_DOC, errorTable } from '../../scripts/error-table.ts';
import {
  cardAgentErrorCodes,
  type ErrorCode,
  errorCatalogue,
  isErrorCode,
  raisedBy,
  serverErrorCodes,
} from '../../src/domain/errors.ts';
import { sourceFiles } from '../support/sources.ts';

/*
 * One catalogue (src/domain/errors.ts) for the server and the card agent: every code raised anywhere in src/ is in
 * it, every code in it is in docs/errors.md, and who raises a code is who the catalogue says.
 */

const CODE = /^[a-z0-9_]+\.[a-z0-9_.]+$/;

/** The places a code is raised, each with the smallest number of them the scan must find (so it cannot go blind). */
const RAISE_SITES = {
  AppError: { call: /\bnew AppError\(/g, min: 250 },
  errorBody: { call: /\berrorBody\(/g, min: 4 },
  Refusal: { call: /\bnew Refusal\(/g, min: 10 },
  'refused (CIS1 validation)': { call: /\brefused\(/g, min: 7 },
  'drop (admin socket)': { call: /\bdrop\(/g, min: 5 },
  'AgentError.of': { call: /\bAgentError\.of\(/g, min: 20 },
  CardError: { call: /\bnew CardError\(/g, min: 25 },
  Cis1AgentError: { call: /\bnew Cis1AgentError\(/g, min: 5 },
} as const;
type Kind = keyof typeof RAISE_SITES | 'code: in an error answer';
const CARD_AGENT_KINDS: readonly Kind[] = ['AgentError.of', 'CardError', 'Cis1AgentError'];

/** The first argument of the call that starts at `from` (just after its `(`): up to a `,` or `)` at depth 0. */
function firstArgument(text: string, from: number): string {
  let depth = 0;
  for (let i = from; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'" || c === '"' || c === '`') i = text.indexOf(c, i + 1);
    else if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      if (depth === 0) return text.slice(from, i);
      depth--;
    } else if (c === ',' && depth === 0) return text.slice(from, i);
  }
  return text.slice(from);
}

/**
 * Every literal code raised anywhere in src/, with where and how: the code literals of a raising call's first
 * argument (both arms of `a ? 'x.y' : 'x.z'` too), and `code: 'x.y'` in the error answers built by hand (CSV import
 * problems, the input guard).
 */
function raisedCodes(): { code: string; where: string; kind: Kind }[] {
  const out: { code: string; where: string; kind: Kind }[] = [];
  for (const file of sourceFiles('src')) {
    const text = readFileSync(file, 'utf8');
    for (const [kind, { call }] of Object.entries(RAISE_SITES) as [Kind, { call: RegExp }][]) {
      for (const m of text.matchAll(call)) {
        const arg = firstArgument(text, m.index + m[0].length);
        for (const [, code] of arg.matchAll(/'([^']*)'/g)) {
          if (CODE.test(code!)) out.push({ code: code!, where: file, kind });
        }
      }
    }
    for (const m of text.matchAll(/\bcode: '([a-z0-9_]+\.[a-z0-9_.]+)'/g)) {
      out.push({ code: m[1]!, where: file, kind: 'code: in an error answer' });
    }
  }
  return out;
}

test('every error code raised anywhere in the source is in the catalogue', () => {
  const raised = raisedCodes();
  for (const [kind, { min }] of Object.entries(RAISE_SITES)) {
    const found = raised.filter((r) => r.kind === kind).length;
    assert.ok(found >= min, `the scan finds the ${kind} raise sites (${found}, at least ${min})`);
  }
  assert.ok(raised.filter((r) => r.kind === 'code: in an error answer').length >= 4, 'the scan finds `code:` answers');
  for (const { code, where, kind } of raised) {
    assert.ok(isErrorCode(code), `${code} (${kind} in ${where}) is not catalogued`);
  }
});

test('the catalogue says rightly who raises a code: the server, or the card agent', () => {
  for (const { code, where, kind } of raisedCodes()) {
    if (!isErrorCode(code)) continue; // the test above fails on it
    const agentSide = CARD_AGENT_KINDS.includes(kind);
    assert.equal(
      agentSide,
      where.startsWith(join('src', 'card-agent')),
      `${kind} raised outside its program: ${where}`,
    );
    assert.equal(raisedBy(code), agentSide ? 'card agent' : 'server', `${code} (${kind} in ${where})`);
  }
});

test('every code-shaped literal in the card agent is catalogued', () => {
  // The agent compares and passes on codes too (the server's, in the CIS1 session checks): none may be unknown.
  const literals = sourceFiles(join('src', 'card-agent')).flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(/'((?:agent|card|cis1)\.[a-z0-9_.]+)'/g)].map((m) => ({
      code: m[1]!,
      file,
    })),
  );
  assert.ok(literals.length > 60, 'the scan finds the card agent’s codes');
  for (const { code, file } of literals) assert.ok(isErrorCode(code), `${code} (in ${file}) is not catalogued`);
});

test('the server’s and the card agent’s sections share no code, and make up the catalogue', () => {
  const shared = serverErrorCodes.filter((code) => (cardAgentErrorCodes as string[]).includes(code));
  assert.deepEqual(shared, [], 'a code is in one section only: the second would silently win');
  assert.deepEqual([...serverErrorCodes, ...cardAgentErrorCodes].sort(), Object.keys(errorCatalogue).sort());
  assert.ok(cardAgentErrorCodes.length >= 40 && serverErrorCodes.length >= 100);
});

test('every catalogued code is dotted, has a 4xx/5xx status and a sentence for a message', () => {
  for (const [code, entry] of Object.entries(errorCatalogue)) {
    assert.match(code, CODE, code);
    assert.ok(entry.status >= 400 && entry.status <= 599, code);
    assert.match(entry.message, /^[A-Z].*\.$/, code);
  }
});

test('docs/errors.md lists every code, as the catalogue has it', () => {
  const doc = readFileSync(ERRORS_DOC, 'utf8');
  const table = documentedTable(doc);
  assert.ok(table !== undefined, 'the errors table markers are missing');
  assert.equal(table, errorTable(), 'regenerate with: node --import tsx scripts/error-table.ts --write');
  for (const code of Object.keys(errorCatalogue) as ErrorCode[]) {
    const { status } = errorCatalogue[code];
    assert.ok(table.includes(`| \`${code}\` | ${status} |`), `${code} is not in ${ERRORS_DOC}`);
  }
  // The intro documents the body each program answers with.
  assert.match(doc, /\{ "error": \{ "code": .*"message": .*"details"/);
  assert.match(doc, /"retriesLeft"/);
});
