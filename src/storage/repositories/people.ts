/**
 * People (DOMAIN §2): the person record, search, duplicates and organisation links. The statements written first in
 * src/storage/people.ts are this module's too (re-exported here, so `repos.people` has them all).
 */
import type { Queryable } from '../database.ts';

export * from '../people.ts';

export async function markEmailVerified(q: Queryable, userId: string, at: Date): Promise<void> {
  await q.query('UPDATE people SET email_verified_at = $2 WHERE user_id = $1', [userId, at]);
}

/** Takes the transaction-scoped advisory lock `key` (a bigint, as text): held until the transaction ends. */
export async function lockForTransaction(q: Queryable, key: string): Promise<void> {
  await q.query('SELECT pg_advisory_xact_lock($1::bigint)', [key]);
}
