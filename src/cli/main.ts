import { ConfigError, loadConfig } from '../config.ts';
import { AppError } from '../domain/errors.ts';
import type { Command } from './command.ts';
import { auditCommand } from './commands/audit.ts';
import { authenticatorCommand } from './commands/authenticator.ts';
import { bootstrapCommand } from './commands/bootstrap.ts';
import { caCommand } from './commands/ca.ts';
import { cardCommand } from './commands/card.ts';
import { clientCommand } from './commands/client.ts';
import { idpCommand } from './commands/idp.ts';
import { importCommand } from './commands/import.ts';
import { migrateCommand } from './commands/migrate.ts';
import { oidcCommand } from './commands/oidc.ts';
import { rbacCommand } from './commands/rbac.ts';
import { seedCommand } from './commands/seed.ts';
import { serveCommand } from './commands/serve.ts';
import { type CliIO, EXIT, stdio, UsageError } from './io.ts';

const commands: Record<string, Command> = {
  serve: serveCommand,
  migrate: migrateCommand,
  seed: seedCommand,
  import: importCommand,
  audit: auditCommand,
  rbac: rbacCommand,
  bootstrap: bootstrapCommand,
  card: cardCommand,
  ca: caCommand,
  authenticator: authenticatorCommand,
  client: clientCommand,
  oidc: oidcCommand,
  idp: idpCommand,
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'Usage: opencis <command> [options]',
    '',
    'Commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `opencis <command> --help` for a command’s options. Configuration comes from environment variables',
    '(DATABASE_URL, DATA_DIR, PORT, …): see README.',
  ].join('\n');
}

/** Runs one CLI invocation and returns its exit code (0 ok, 1 failed, 2 usage error). Never throws. */
export async function runCli(argv: string[], io: CliIO = stdio): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(usage());
    return name ? EXIT.ok : EXIT.usage;
  }
  if (name === '--version') {
    const { VERSION } = await import('../version.ts');
    io.out(VERSION);
    return EXIT.ok;
  }
  const command = commands[name];
  if (!command) {
    io.err(`opencis: unknown command "${name}"\n\n${usage()}`);
    return EXIT.usage;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(command.help);
    return EXIT.ok;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError || isParseArgsError(err)) {
      io.err(`opencis ${name}: ${(err as Error).message}\n\n${command.help}`);
      return EXIT.usage;
    }
    if (err instanceof ConfigError) {
      io.err(`opencis: ${err.message}`);
      return EXIT.usage;
    }
    if (err instanceof AppError) {
      io.err(
        `opencis ${name}: ${err.message} [${err.code}]${err.details ? `\n${JSON.stringify(err.details, null, 2)}` : ''}`,
      );
      return EXIT.failed;
    }
    io.err(`opencis ${name}: ${(err as Error).message ?? String(err)}`);
    return EXIT.failed;
  }
}

function isParseArgsError(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS');
}

export type { Command } from './command.ts';
export { parseOptions } from './command.ts';
export { loadConfig };
