/**
 * Prints the table docs/architecture.md keeps of every policy statement and the files that ask for it (issue 16,
 * acceptance 2). test/architecture/architecture-doc.test.ts fails when the document and the tree disagree; this script
 * prints the table to paste: `node --import tsx scripts/architecture-table.ts`.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { statements } from '../src/domain/policy.ts';

const SRC = resolve('src');

function sourceFiles(dir = SRC): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

/**
 * For each statement, the files outside the policy (src/domain/policy.ts and its modules in src/domain/policy/) that
 * name it (as a string literal): its callers.
 */
export function callersOfStatements(): Map<string, string[]> {
  const inPolicy = (name: string) =>
    name === join('domain', 'policy.ts') || name.startsWith(join('domain', 'policy') + sep);
  const files = sourceFiles().filter((f) => !inPolicy(relative(SRC, f)));
  const texts = files.map((f) => [relative(SRC, f), readFileSync(f, 'utf8')] as const);
  return new Map(
    statements.map((s) => [s, texts.filter(([, text]) => text.includes(`'${s}'`)).map(([name]) => `src/${name}`)]),
  );
}

export function architectureTable(): string {
  const rows = [...callersOfStatements()].map(
    ([s, callers]) => `| \`${s}\` | ${callers.length ? callers.map((c) => `\`${c}\``).join(', ') : '—'} |`,
  );
  return ['| statement | asked for in |', '| --- | --- |', ...rows].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) console.log(architectureTable());
