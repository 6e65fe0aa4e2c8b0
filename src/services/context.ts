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

/** What the services that keep the server's own state (keys, CRLs, seals) need: repositories and the unit of work. */
export type StoreContext = Pick<ServiceContext, 'repos' | 'transaction' | 'clock' | 'sealer'>;

/** A store context on `db`, for a door or job that holds the database (its repositories and unit of work). */
export function storeContext(base: { db: Database; clock: Clock; sealer: Sealer }): StoreContext {
  return { repos: repositoriesOn(base.db), transaction: unitOfWork(base.db), clock: base.clock, sealer: base.sealer };
}

/** A service context on `db`: its repositories and unit of work come from the database given. */
export function serviceContext(base: Omit<ServiceContext, 'repos' | 'transaction'> & { db: Database }): ServiceContext {
  const { db, ...rest } = base;
  return { ...rest, repos: repositoriesOn(db), transaction: unitOfWork(db) };
}
