import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { configSchema } from '../../src/config.ts';

const readme = readFileSync('README.md', 'utf8');

test('README documents every configuration variable the server reads', () => {
  for (const name of Object.keys(configSchema.shape)) {
    assert.match(readme, new RegExp(`\\| \`${name}\` \\|`), `${name} missing from README's configuration table`);
  }
});

test("README's quick start is exactly the two commands", () => {
  assert.match(readme, /```sh\nnpm install && npm start\n```/);
  assert.match(readme, /```sh\nnpm test\n```/);
});

test('README documents every CLI command', async () => {
  const { runCli } = await import('../../src/cli/main.ts');
  const lines: string[] = [];
  await runCli(['--help'], { out: (l) => lines.push(l), err: (l) => lines.push(l) });
  const names = [...lines.join('\n').matchAll(/^ {2}([a-z]+) {2}/gm)].map((m) => m[1]!);
  assert.ok(names.length >= 6);
  for (const name of names) assert.match(readme, new RegExp(`\`opencis ${name}`), name);
});
