/**
 * The `opencis-card-agent` command: runs the local card agent, or creates a virtual smartcard (SoftHSM2 token).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { cardAgentOptionsSchema, DEFAULT_AGENT_PORT, startCardAgent } from './server.ts';
import { initVirtualCard, openPkcs11Module } from './token.ts';

export { type CardAgentOptions, type RunningCardAgent, startCardAgent } from './server.ts';

const SOFTHSM2_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const OPENSC_MODULE = '/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so';

const HELP = `Usage: opencis-card-agent [options]
       opencis-card-agent init-virtual-card --label LABEL [--module PATH]   (reads the SO PIN from stdin)

Runs the OpenCIS card agent on http://127.0.0.1:PORT: OpenCIS pages in this computer's browser use it to sign in
with the smartcard (or virtual smartcard) in the reader, and RAs use it to issue and unlock cards. The passcode is
checked on the card and never leaves this computer.

Options:
  --module PATH             PKCS#11 module [env OPENCIS_AGENT_MODULE; default ${SOFTHSM2_MODULE}
                            if installed, else OpenSC's ${OPENSC_MODULE}]
  --token-label LABEL       use the card with this label [env OPENCIS_AGENT_TOKEN_LABEL; default: the first card]
  --port N                  port on 127.0.0.1 [env OPENCIS_AGENT_PORT; default ${DEFAULT_AGENT_PORT}]
  --allowed-origin ORIGIN   web origin of OpenCIS pages allowed to use the agent, e.g. http://localhost:3000;
                            repeat for several [env OPENCIS_AGENT_ALLOWED_ORIGINS, comma-separated]
  --server URL              the OpenCIS server, e.g. http://localhost:3000 [env OPENCIS_SERVER_URL]
  --cis1-allowed-origin ORIGIN
                            web origin of a CIS1 application allowed to get the smartcard ticket (getTicket);
                            repeat for several [env OPENCIS_AGENT_CIS1_ORIGINS, comma-separated; default none]
  --cis1-no-local-programs  refuse getTicket to local programs that send no Origin (native CIS1 applications are
                            allowed by default) [env OPENCIS_AGENT_CIS1_LOCAL_PROGRAMS=false]
  --state-dir DIR           where the agent keeps this workstation's id [env OPENCIS_AGENT_STATE_DIR; default
                            $XDG_STATE_HOME/opencis-card-agent or ~/.local/state/opencis-card-agent]
  -h, --help                show this help

CIS1 (legacy smartcard sign-in): open http://127.0.0.1:PORT/cis1 to sign in with the card and choose a role;
applications then ask GET http://127.0.0.1:PORT/v1/cis1/ticket. Removing the card ends the session.

init-virtual-card creates a virtual smartcard: it initialises SoftHSM2's blank token with LABEL and the transport
SO PIN given on stdin (one line), and prints the new card's serial. The RA then issues it like a physical card.

Exit status: 0 ok, 1 failed, 2 bad usage. Stops cleanly on SIGTERM or Ctrl-C.`;

const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export interface CardAgentCliIO {
  out(line: string): void;
  err(line: string): void;
}

const stdio: CardAgentCliIO = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

export interface CardAgentCliEnvironment {
  env: Record<string, string | undefined>;
  stdin: AsyncIterable<Buffer | string>;
  /** Resolves when the agent should stop (default: SIGTERM or SIGINT). */
  stopSignal: () => Promise<void>;
}

const defaultEnvironment: CardAgentCliEnvironment = {
  env: process.env,
  stdin: process.stdin,
  stopSignal: () =>
    new Promise((resolve) => {
      process.once('SIGTERM', () => resolve());
      process.once('SIGINT', () => resolve());
    }),
};

class UsageError extends Error {}

const CLI_NAMES: Record<string, string> = {
  modulePath: '--module',
  tokenLabel: '--token-label',
  port: '--port',
  allowedOrigins: '--allowed-origin',
  serverUrl: '--server',
  cis1AllowedOrigins: '--cis1-allowed-origin',
  workstationId: 'workstation id file',
  label: '--label',
  soPin: 'SO PIN (stdin)',
};

function usageMessage(error: z.ZodError, given: Record<string, unknown>): string {
  return error.issues
    .map((issue) => {
      const key = String(issue.path[0] ?? '');
      const name = CLI_NAMES[key] ?? key;
      const index = issue.path.length > 1 ? ` (${String(issue.path[1])})` : '';
      const message = given[key] === undefined ? 'is required' : issue.message;
      return `${name}${index}: ${message}`;
    })
    .join('\n');
}

function defaultStateDir(env: Record<string, string | undefined>): string {
  return join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'opencis-card-agent');
}

/**
 * This installation's workstation id (CIS1 sessions and tickets are bound to it, and the audit trail names it): random,
 * created on first start in the state directory (mode 0600). If it cannot be kept there, a new id is used for this run.
 */
function workstationIdIn(dir: string, warn: (line: string) => void): string | undefined {
  const file = join(dir, 'workstation-id');
  try {
    if (existsSync(file)) return readFileSync(file, 'utf8').trim();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const id = randomBytes(24).toString('base64url');
    writeFileSync(file, `${id}\n`, { mode: 0o600, flag: 'wx' });
    chmodSync(file, 0o600);
    return id;
  } catch (err) {
    warn(
      `workstation id not kept in ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}): using a new one for this run`,
    );
    return undefined;
  }
}

function defaultModule(): string {
  return existsSync(SOFTHSM2_MODULE) ? SOFTHSM2_MODULE : OPENSC_MODULE;
}

const moduleSchema = z.string().refine(existsSync, 'no PKCS#11 module at that path');

/** Runs one invocation and returns its exit code (0 ok, 1 failed, 2 usage). Never throws. */
export async function runCardAgentCli(
  argv: string[],
  io: CardAgentCliIO = stdio,
  environment: CardAgentCliEnvironment = defaultEnvironment,
): Promise<number> {
  try {
    if (argv[0] === 'init-virtual-card') return await initVirtualCardCommand(argv.slice(1), io, environment);
    return await serveCommand(argv, io, environment);
  } catch (err) {
    if (err instanceof UsageError || isParseArgsError(err)) {
      io.err(`opencis-card-agent: ${(err as Error).message}\nRun \`opencis-card-agent --help\` for the options.`);
      return EXIT.usage;
    }
    io.err(`opencis-card-agent: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT.failed;
  }
}

async function serveCommand(argv: string[], io: CardAgentCliIO, environment: CardAgentCliEnvironment) {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      module: { type: 'string' },
      'token-label': { type: 'string' },
      port: { type: 'string' },
      'allowed-origin': { type: 'string', multiple: true },
      server: { type: 'string' },
      'cis1-allowed-origin': { type: 'string', multiple: true },
      'cis1-no-local-programs': { type: 'boolean' },
      'state-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.out(HELP);
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new UsageError(`unknown command "${positionals[0]}"`);
  const env = environment.env;
  const envOrigins = env.OPENCIS_AGENT_ALLOWED_ORIGINS?.split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '');
  const envCis1Origins = env.OPENCIS_AGENT_CIS1_ORIGINS?.split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '');
  const stateDir = values['state-dir'] ?? (env.OPENCIS_AGENT_STATE_DIR || defaultStateDir(env));
  const given = {
    modulePath: values.module ?? env.OPENCIS_AGENT_MODULE ?? defaultModule(),
    tokenLabel: values['token-label'] ?? (env.OPENCIS_AGENT_TOKEN_LABEL || undefined),
    port: values.port ?? env.OPENCIS_AGENT_PORT ?? DEFAULT_AGENT_PORT,
    allowedOrigins: values['allowed-origin'] ?? envOrigins ?? [],
    serverUrl: values.server ?? env.OPENCIS_SERVER_URL,
    cis1AllowedOrigins: values['cis1-allowed-origin'] ?? envCis1Origins ?? [],
    cis1AllowLocalProcesses: !(values['cis1-no-local-programs'] ?? env.OPENCIS_AGENT_CIS1_LOCAL_PROGRAMS === 'false'),
    workstationId: workstationIdIn(stateDir, (line) => io.err(line)),
  };
  const parsed = cardAgentOptionsSchema.extend({ modulePath: moduleSchema }).safeParse(given);
  if (!parsed.success) throw new UsageError(usageMessage(parsed.error, given));

  const agent = await startCardAgent({ ...parsed.data, log: (line) => io.err(line) });
  io.out(`opencis-card-agent listening on ${agent.url}`);
  await environment.stopSignal();
  await agent.close();
  return EXIT.ok;
}

const initVirtualCardSchema = z.object({
  label: z
    .string()
    .min(1)
    .refine((l) => Buffer.byteLength(l, 'utf8') <= 32, 'a token label is at most 32 bytes'),
  modulePath: moduleSchema,
  soPin: z.string().min(4, 'the SO PIN on stdin must be 4 to 255 characters').max(255),
});

async function initVirtualCardCommand(argv: string[], io: CardAgentCliIO, environment: CardAgentCliEnvironment) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: { label: { type: 'string' }, module: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    io.out(HELP);
    return EXIT.ok;
  }
  if (values.label === undefined) throw new UsageError('--label: is required');
  const given = {
    label: values.label,
    modulePath: values.module ?? environment.env.OPENCIS_AGENT_MODULE ?? defaultModule(),
    soPin: await readLine(environment.stdin),
  };
  const parsed = initVirtualCardSchema.safeParse(given);
  if (!parsed.success) throw new UsageError(usageMessage(parsed.error, given));
  const { label, modulePath, soPin } = parsed.data;
  io.out(await initVirtualCard(openPkcs11Module(modulePath), label, soPin));
  return EXIT.ok;
}

/** The first line of stdin, without its line ending (the SO PIN is never an argument: ps would show it). */
async function readLine(stream: AsyncIterable<Buffer | string>): Promise<string> {
  let text = '';
  for await (const chunk of stream) {
    text += chunk.toString();
    const end = text.indexOf('\n');
    if (end >= 0) return text.slice(0, end).replace(/\r$/, '');
  }
  return text.replace(/\r$/, '');
}

function isParseArgsError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS');
}
