import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { test } from 'node:test';
import { sourceFiles } from '../support/sources.ts';

/*
 * Issue 16, acceptance 5: OpenCIS plugs into oidc-provider through its documented extension points only (the adapter,
 * findAccount().claims, extraTokenClaims, Grant, provider.interactionResult), never by patching the library. These
 * checks fail on the shapes a patch takes: an assignment to a prototype, a property defined on one of the library's
 * classes, or an interaction's result written by hand instead of through provider.interactionResult.
 */
const SRC = resolve('src');

const files = sourceFiles().map((f) => ({ path: relative(SRC, f), text: readFileSync(f, 'utf8') }));
const usesProvider = files.filter((f) => /from 'oidc-provider'/.test(f.text) || f.path.startsWith('oidc/'));

function offenders(pattern: RegExp, among = files): string[] {
  return among.flatMap((f) =>
    f.text
      .split('\n')
      .map((line, i) => ({ line: line.trim(), at: `${f.path}:${i + 1}` }))
      .filter(({ line }) => !line.startsWith('//') && !line.startsWith('*') && pattern.test(line))
      .map(({ line, at }) => `${at}: ${line}`),
  );
}

test('no source file assigns to a prototype (of oidc-provider or any class)', () => {
  assert.deepEqual(offenders(/\.prototype(\.[\w$]+|\[[^\]]+\])?\s*=(?!=)/), []);
});

test('no property is defined on, or copied onto, an oidc-provider class or its prototype', () => {
  const libraryClass = String.raw`(Provider|provider(\(\))?|[\w$]*\.?(IdToken|AccessToken|RefreshToken|AuthorizationCode|Grant|Session|Interaction|Client|OIDCContext))\b`;
  const pattern = new RegExp(
    String.raw`Object\.(defineProperty|defineProperties|assign|setPrototypeOf)\(\s*${libraryClass}`,
  );
  assert.deepEqual(offenders(pattern, usesProvider), []);
});

test('an interaction result is handed to provider.interactionResult, never written onto the interaction', () => {
  assert.deepEqual(offenders(/\b(interaction|details|d)\.result\s*=(?!=)|\.lastSubmission\s*=(?!=)/, usesProvider), []);
  const hands = usesProvider.filter((f) => /\.interactionResult\(/.test(f.text)).map((f) => f.path);
  assert.deepEqual(hands, ['oidc/interactions.ts'], 'the one place sign-ins finish');
});

test('nothing writes into the library’s request context (ctx.oidc) except through its API', () => {
  assert.deepEqual(offenders(/\bctx\.oidc(\.[\w$]+)+\s*=(?!=)/, usesProvider), []);
});
