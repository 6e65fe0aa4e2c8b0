import { parseArgs } from 'node:util';
import { type CliIO, UsageError } from './io.ts';

export interface Command {
  summary: string;
  help: string;
  run(args: string[], io: CliIO): Promise<number>;
}

/** Strict option parsing shared by the commands: unknown options and stray arguments are usage errors. */
export function parseOptions<T extends NonNullable<Parameters<typeof parseArgs>[0]>['options']>(
  args: string[],
  options: T,
  positionals = 0,
) {
  const parsed = parseArgs({ args, options, strict: true, allowPositionals: positionals > 0 });
  if (parsed.positionals.length > positionals) {
    throw new UsageError(`unexpected argument "${parsed.positionals[positionals]}"`);
  }
  return parsed;
}
