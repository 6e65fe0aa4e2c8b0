import type { Actor } from '../domain/policy.ts';
import type { OutboundPolicy } from '../net/outbound.ts';
import type { Sealer } from '../secrets/sealer.ts';
import type { Database } from '../storage/database.ts';
import { type Repositories, repositoriesOn, unitOfWork } from '../storage/repositories/index.ts';

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

export interface ServiceContext {
  /** The repositories on the database: reads, and single statements that need no transaction. */
  repos: Repositories;
  /** One transaction with every repository bound to it (the unit of work): committed if `fn` resolves. */
  transaction<T>(fn: (tx: Repositories) => Promise<T>): Promise<T>;
  /** TRANSITIONAL (issue 16): the raw handle, until every service reads and writes through the repositories. */
  db: Database;
  clock: Clock;
  actor: Actor;
  requestId: string | null;
  /** Accept HMRC's example NI prefix QQ (demo and test data only). */
  allowExampleNiPrefix: boolean;
  /** Encrypts the secrets OpenCIS keeps but never shows (CA keys, card unblock secrets, TOTP seeds). */
  sealer: Sealer;
  /** Where the server may send its own requests (OUTBOUND_ALLOWED_RANGES); absent: public https only. */
  outbound?: OutboundPolicy;
}

/** A service context on `db`: its repositories and unit of work come from the database given. */
export function serviceContext(base: Omit<ServiceContext, 'repos' | 'transaction'>): ServiceContext {
  return { ...base, repos: repositoriesOn(base.db), transaction: unitOfWork(base.db) };
}
