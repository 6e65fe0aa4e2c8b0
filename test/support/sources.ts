import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The server's source folder, for the checks that read the code as text (test/architecture). */
export const SRC = resolve('src');

/** Every file below `dir` whose name matches `names` (TypeScript by default), depth first. */
export function sourceFiles(dir: string = SRC, names: RegExp = /\.ts$/): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path, names);
    return names.test(name) ? [path] : [];
  });
}
