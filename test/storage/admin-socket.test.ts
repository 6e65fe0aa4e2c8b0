import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { openPglite } from '../../src/storage/pglite.ts';
import { type CliResult, clockEnv, runOpencis } from '../support/cli.ts';
import { backend } from '../support/db.ts';
import { freePort } from '../support/server.ts';

/**
 * Issue 17, acceptance 6: on the embedded default (PGlite, one process per data directory), every `opencis` command
 * works while the server runs — through the server's admin socket — with the same output and exit codes as with the
 * server stopped, and what it does is visible to the running server at once. The real server, in a child process.
 * (Always the embedded database, whichever backend the suite runs on: PostgreSQL has no such lock.)
 */
const env: Record<string, string> = {
  DATA_DIR: mkdtempSync(join(tmpdir(), 'opencis-admin-')),
  SECRETS_KEY: randomBytes(32).toString('base64'),
  DEMO_DATA: 'false',
  ALLOW_EXAMPLE_NI_PREFIX: 'true',
  LOG_LEVEL: 'warn',
};
let server: ChildProcess | null = null;
let url: string;

/** `opencis serve` in a child process, started once it prints its address. */
async function startServer(): Promise<void> {
  const port = await freePort();
  url = `http://localhost:${port}`;
  const child = spawn(process.execPath, ['bin/opencis.js', 'serve'], {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      ...clockEnv(),
      ...env,
      PORT: String(port),
      PUBLIC_URL: url,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server = child;
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 120_000);
    const seen = (d: Buffer) => {
      output += d;
      if (output.includes('OpenCIS is running at')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', seen);
    child.stderr!.on('data', seen);
    child.once('exit', (code) => reject(new Error(`server exited ${code}:\n${output}`)));
  });
}

async function stopServer(): Promise<void> {
  const child = server;
  server = null;
  if (!child || child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

before(startServer);
after(stopServer);

const opencis = (args: string[]): Promise<CliResult> => runOpencis(args, env);
let clientId: string;
let secret: string;

test(`[${backend}] with the server running on the embedded database: opencis client register works, and the new client can be used at once`, async () => {
  const res = await opencis([
    'client',
    'register',
    '--name',
    'Ward EPR',
    '--redirect-uri',
    'https://epr.example.nhs.uk/callback',
    '--auth',
    'client_secret_basic',
  ]);
  assert.equal(res.code, 0, res.stderr);
  clientId = /client_id +(\S+)/.exec(res.stdout)![1]!;
  secret = /client_secret +(\S+)/.exec(res.stdout)![1]!;
  assert.match(res.stderr, /shown this once/);
  // The running server authenticates it: a bad code is invalid_grant (the client is known), not invalid_client.
  const token = await fetch(`${url}/oidc/access_token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: 'x',
      redirect_uri: 'https://epr.example.nhs.uk/callback',
    }),
  });
  assert.equal(((await token.json()) as { error: string }).error, 'invalid_grant');
  const list = await opencis(['client', 'list']);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, new RegExp(`${clientId.replace('.', '\\.')} +active +client_secret_basic +AAL2 +Ward EPR`));
});

test(`[${backend}] with the server running: bootstrap, audit verify and seal, rbac, ca, migrate — and serve is still refused`, async () => {
  const boot = await opencis([
    'bootstrap',
    '--ods',
    'RX9',
    '--org-name',
    'Admin Socket Trust',
    '--given-name',
    'Ada',
    '--family-name',
    'Socket',
    '--date-of-birth',
    '1980-03-04',
    '--email',
    'ada.socket@example.nhs.uk',
  ]);
  assert.equal(boot.code, 0, boot.stderr);
  const link = /(https?:\/\/\S+\/enrol\S*)/.exec(boot.stdout)?.[1];
  assert.ok(link, boot.stdout);
  // The running server knows the one-time link the command just made.
  const page = await fetch(link.replace(/^https?:\/\/[^/]+/, url));
  assert.equal(page.status, 200);

  const sealed = await opencis(['audit', 'seal']);
  assert.equal(sealed.code, 0, sealed.stderr);
  const verified = await opencis(['audit', 'verify']);
  assert.equal(verified.code, 0, verified.stderr);
  assert.match(verified.stdout, /Audit chain verified: \d+ events in 32 lanes/);
  for (const args of [
    ['rbac', 'show'],
    ['ca', 'show'],
    ['migrate', '--status'],
    ['oidc', 'keys'],
  ]) {
    const res = await opencis(args);
    assert.equal(res.code, 0, `${args.join(' ')}: ${res.stderr}`);
  }
  const serve = await opencis(['serve']);
  assert.equal(serve.code, 1);
  assert.match(serve.stderr, /service\.data_dir_locked/);
  assert.equal(statSync(join(env.DATA_DIR!, 'opencis.sock')).mode & 0o777, 0o600);
});

test(`[${backend}] output and exit codes through the running server are those of the command with the server stopped`, async () => {
  const commands = [
    ['client', 'list'],
    ['client', 'disable', '999999999999.apps.national'], // 1: no such client
    ['client', 'register', '--name', 'x'], // 2: usage
    ['card', 'list', '555073103107'],
    ['ca', 'show'],
  ];
  const through: CliResult[] = [];
  for (const args of commands) through.push(await opencis(args));
  await stopServer();
  for (const [i, args] of commands.entries()) {
    const alone = await opencis(args);
    assert.deepEqual(
      { code: through[i]!.code, stdout: through[i]!.stdout, stderr: through[i]!.stderr },
      { code: alone.code, stdout: alone.stdout, stderr: alone.stderr },
      args.join(' '),
    );
  }
  assert.deepEqual(
    through.map((r) => r.code),
    [0, 1, 2, 0, 0],
  );
  // Audited as the operator, as a command on its own is.
  const db = await openPglite({ dataDir: env.DATA_DIR });
  try {
    const { rows } = await db.query<{ actor: string }>(
      "SELECT actor FROM audit_events WHERE action = 'oidc.client_registered' AND target_id = $1",
      [clientId],
    );
    assert.match(rows[0]!.actor, /^cli:.+@.+/);
  } finally {
    await db.close();
  }
  await startServer();
});
