import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_SECRETS_KEY } from './context.ts';
import { backend, POSTGRES_URL, type TestDatabase } from './db.ts';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The clock a test run was started with (npm run test:clock: libfaketime preloaded, FAKETIME…), passed on to the child
 * processes a test starts with an environment of its own, so that they live on the same day as the test.
 */
export function clockEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ['LD_PRELOAD', 'FAKETIME', 'FAKETIME_DONT_FAKE_MONOTONIC', 'FAKETIME_DONT_RESET']) {
    const value = process.env[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** Runs the real `opencis` command (bin/opencis.js) in a child process. */
export function runOpencis(args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/opencis.js', ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'warn', ...clockEnv(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Environment that points a child `opencis` at a database of its own: for PostgreSQL the test database's schema,
 * for PGlite a fresh data directory (an in-memory PGlite cannot be shared with another process). It shares this
 * process's secrets key, so both key the audit trail alike (and open each other's sealed secrets).
 */
export function cliEnvFor(t: TestDatabase | null): Record<string, string> {
  const keys = { SECRETS_KEY: TEST_SECRETS_KEY };
  if (backend === 'postgres' && t?.schema) return { ...keys, DATABASE_URL: POSTGRES_URL, DATABASE_SCHEMA: t.schema };
  return { ...keys, DATA_DIR: mkdtempSync(join(tmpdir(), 'opencis-cli-')) };
}
