import { hostname, userInfo } from 'node:os';
import type { Actor } from '../domain/policy.ts';

export class UsageError extends Error {}

export interface CliIO {
  out(line: string): void;
  err(line: string): void;
}

export const stdio: CliIO = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/** The CLI acts as the operator of this server: whoever can run it can already read the database. */
export function operatorActor(): Actor {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (containers)
  }
  return { kind: 'operator', id: `cli:${user}@${hostname()}` };
}

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;
