import type { Actor } from '../domain/policy.ts';
import type { OutboundPolicy } from '../net/outbound.ts';
import type { Sealer } from '../secrets/sealer.ts';
import type { Database } from '../storage/database.ts';

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

export interface ServiceContext {
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
