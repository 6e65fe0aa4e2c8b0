/**
 * People (DOMAIN §2): the person record, search, duplicates and organisation links. The statements written first in
 * src/storage/people.ts are this module's too (re-exported here, so `repos.people` has them all).
 */
import type { IdentityAssuranceLevel, Person } from '../../domain/identity/person.ts';
import type { Queryable } from '../database.ts';

export * from '../people.ts';

export async function markEmailVerified(q: Queryable, userId: string, at: Date): Promise<void> {
  await q.query('UPDATE people SET email_verified_at = $2 WHERE user_id = $1', [userId, at]);
}

/** How many people the database holds (none yet: the demo data is loaded at first start). */
export async function peopleCount(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ n: string }>('SELECT count(*)::text AS n FROM people');
  return Number(rows[0]?.n ?? 0);
}

/** Takes the transaction-scoped advisory lock `key` (a bigint, as text): held until the transaction ends. */
export async function lockForTransaction(q: Queryable, key: string): Promise<void> {
  await q.query('SELECT pg_advisory_xact_lock($1::bigint)', [key]);
}

export type NameFields = Pick<Person, 'title' | 'givenName' | 'middleNames' | 'familyName' | 'preferredName'>;

/** A person's names, with the search keys they are found by; the record's version moves on. */
export async function updateNames(
  q: Queryable,
  userId: string,
  names: NameFields,
  keys: { familyKey: string; givenKey: string },
  now: Date,
): Promise<void> {
  await q.query(
    `UPDATE people SET title = $2, given_name = $3, middle_names = $4, family_name = $5, preferred_name = $6,
           family_key = $7, given_key = $8, updated_at = $9, version = version + 1 WHERE user_id = $1`,
    [
      userId,
      names.title,
      names.givenName,
      names.middleNames,
      names.familyName,
      names.preferredName,
      keys.familyKey,
      keys.givenKey,
      now,
    ],
  );
}

/** The name history: names before and after, the evidence seen (type and last characters), who and why. */
export async function insertNameChange(
  q: Queryable,
  c: {
    userId: string;
    before: NameFields;
    after: NameFields;
    evidenceType: string;
    evidenceLastChars: string | null;
    changedBy: string;
    reason: string | null;
  },
  now: Date,
): Promise<void> {
  await q.query(
    `INSERT INTO name_changes (user_id, before, after, evidence_type, evidence_last_chars, changed_by, changed_at, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [
      c.userId,
      JSON.stringify(c.before),
      JSON.stringify(c.after),
      c.evidenceType,
      c.evidenceLastChars,
      c.changedBy,
      now,
      c.reason,
    ],
  );
}

/** When a person's email and mobile were verified (a one-time code goes only to a verified contact). */
export async function contactVerifiedAt(
  q: Queryable,
  userId: string,
): Promise<{ email_verified_at: Date | null; mobile_verified_at: Date | null } | undefined> {
  const { rows } = await q.query<{ email_verified_at: Date | null; mobile_verified_at: Date | null }>(
    'SELECT email_verified_at, mobile_verified_at FROM people WHERE user_id = $1',
    [userId],
  );
  return rows[0];
}

/** Active people whose verified email is `email` (at most two: more than one means the address is ambiguous). */
export async function activePeopleWithVerifiedEmail(
  q: Queryable,
  email: string,
): Promise<{ user_id: string; ni_number: string | null }[]> {
  const { rows } = await q.query<{ user_id: string; ni_number: string | null }>(
    "SELECT user_id, ni_number FROM people WHERE email = $1 AND status = 'active' AND email_verified_at IS NOT NULL LIMIT 2",
    [email],
  );
  return rows;
}

/** The user IDs only of active people with that verified email (the start of enrolment needs nothing more). */
export async function activeUserIdsWithVerifiedEmail(q: Queryable, email: string): Promise<{ user_id: string }[]> {
  const { rows } = await q.query<{ user_id: string }>(
    "SELECT user_id FROM people WHERE email = $1 AND status = 'active' AND email_verified_at IS NOT NULL LIMIT 2",
    [email],
  );
  return rows;
}

/** A person's identity assurance level and photo after a check; the record's version moves on. */
export async function setAssurance(
  q: Queryable,
  userId: string,
  level: IdentityAssuranceLevel,
  photoRef: string | null,
  now: Date,
): Promise<void> {
  await q.query(
    `UPDATE people SET identity_assurance_level = $2, photo_ref = $3, updated_at = $4, version = version + 1
       WHERE user_id = $1`,
    [userId, level, photoRef, now],
  );
}
