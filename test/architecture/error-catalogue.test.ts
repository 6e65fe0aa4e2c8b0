import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { errorCatalogue, isErrorCode } from '../../src/domain/errors.ts';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Every literal code passed to AppError or errorBody anywhere in src/, with where it is. */
function thrownCodes(): { code: string; where: string }[] {
  const out: { code: string; where: string }[] = [];
  const pattern = /(?:new AppError|errorBody)\(\s*'([^']+)'/g;
  for (const file of sourceFiles('src')) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(pattern)) out.push({ code: m[1]!, where: file });
  }
  return out;
}

test('every error code thrown anywhere in the source is in the catalogue', () => {
  const codes = thrownCodes();
  assert.ok(codes.length > 30, 'the scan finds the throw sites');
  for (const { code, where } of codes) assert.ok(isErrorCode(code), `${code} (thrown in ${where}) is not catalogued`);
});

test('every catalogued code is dotted, has a 4xx/5xx status and a sentence for a message', () => {
  for (const [code, entry] of Object.entries(errorCatalogue)) {
    assert.match(code, /^[a-z0-9_]+\.[a-z0-9_.]+$/, code);
    assert.ok(entry.status >= 400 && entry.status <= 599, code);
    assert.match(entry.message, /^[A-Z].*\.$/, code);
  }
});
