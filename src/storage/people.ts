import type { Person, PersonStatus } from '../domain/identity/person.ts';
import type { Queryable } from './database.ts';

export interface PersonRow {
  user_id: string;
  title: string | null;
  given_name: string;
  middle_names: string | null;
  family_name: string;
  preferred_name: string | null;
  date_of_birth: string;
  ni_number: string | null;
  email: string | null;
  mobile: string | null;
  status: PersonStatus;
  identity_assurance_level: number;
  photo_ref: string | null;
  created_at: Date;
  updated_at: Date;
  version: number;
}

export function personFromRow(r: PersonRow): Person {
  return {
    userId: r.user_id,
    title: r.title,
    givenName: r.given_name,
    middleNames: r.middle_names,
    familyName: r.family_name,
    preferredName: r.preferred_name,
    dateOfBirth: r.date_of_birth,
    niNumber: r.ni_number,
    email: r.email,
    mobile: r.mobile,
    status: r.status,
    identityAssuranceLevel: r.identity_assurance_level as Person['identityAssuranceLevel'],
    photoRef: r.photo_ref,
    createdAt: new Date(r.created_at).toISOString(),
    updatedAt: new Date(r.updated_at).toISOString(),
    version: Number(r.version),
  };
}

const COLUMNS = `user_id, title, given_name, middle_names, family_name, preferred_name, date_of_birth, ni_number, email,
  mobile, status, identity_assurance_level, photo_ref, created_at, updated_at, version`;

export async function findPersonByUserId(q: Queryable, userId: string, lock = false): Promise<Person | undefined> {
  const { rows } = await q.query<PersonRow>(
    `SELECT ${COLUMNS} FROM people WHERE user_id = $1${lock ? ' FOR UPDATE' : ''}`,
    [userId],
  );
  return rows[0] && personFromRow(rows[0]);
}

/** Candidates for the duplicate rule (DOMAIN §2): the same NI number, or the same normalised name and date of birth. */
export async function findDuplicateCandidates(
  q: Queryable,
  c: { niNumber: string | null; familyKey: string; givenKey: string; dateOfBirth: string },
): Promise<Person[]> {
  const { rows } = await q.query<PersonRow>(
    `SELECT ${COLUMNS} FROM people
     WHERE ($1::text IS NOT NULL AND ni_number = $1)
        OR (date_of_birth = $2 AND family_key = $3 AND given_key = $4)
     ORDER BY user_id LIMIT 20`,
    [c.niNumber, c.dateOfBirth, c.familyKey, c.givenKey],
  );
  return rows.map(personFromRow);
}

export async function insertPerson(
  q: Queryable,
  p: Omit<Person, 'createdAt' | 'updatedAt' | 'version'> & { familyKey: string; givenKey: string; at: Date },
): Promise<Person> {
  const { rows } = await q.query<PersonRow>(
    `INSERT INTO people (user_id, title, given_name, middle_names, family_name, preferred_name, date_of_birth, ni_number,
       email, mobile, status, identity_assurance_level, photo_ref, family_key, given_key, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)
     RETURNING ${COLUMNS}`,
    [
      p.userId,
      p.title,
      p.givenName,
      p.middleNames,
      p.familyName,
      p.preferredName,
      p.dateOfBirth,
      p.niNumber,
      p.email,
      p.mobile,
      p.status,
      p.identityAssuranceLevel,
      p.photoRef,
      p.familyKey,
      p.givenKey,
      p.at,
    ],
  );
  return personFromRow(rows[0]!);
}

export async function updatePersonStatus(
  q: Queryable,
  userId: string,
  status: PersonStatus,
  at: Date,
): Promise<Person> {
  const { rows } = await q.query<PersonRow>(
    `UPDATE people SET status = $2, updated_at = $3, version = version + 1 WHERE user_id = $1 RETURNING ${COLUMNS}`,
    [userId, status, at],
  );
  return personFromRow(rows[0]!);
}

export async function nextNationalIdSequence(
  q: Queryable,
  sequence: 'user_id_seq' | 'person_roleid_seq' | 'person_orgid_seq' | 'workgroup_code_seq',
): Promise<string> {
  const { rows } = await q.query<{ n: string }>(`SELECT nextval('${sequence}')::text AS n`);
  return rows[0]!.n;
}

export type PersonSearch =
  | { by: 'userId'; userId: string }
  | { by: 'niNumber'; niNumber: string }
  | { by: 'email'; email: string }
  | { by: 'name'; familyPrefix: string; givenPrefix: string | null; dateOfBirth: string | null };

/** Keyset position after the last result of a page: family key, given key and user ID (all index columns). */
export interface SearchCursor {
  familyKey: string;
  givenKey: string;
  userId: string;
}

/**
 * RA person search. Every branch is one index range scan (see 0001_identity_core.sql) read in index order, so a page
 * costs the same however many people match; pages continue from a keyset cursor rather than an offset.
 */
export async function searchPeople(
  q: Queryable,
  s: PersonSearch,
  page: { limit: number; after: SearchCursor | null },
): Promise<{ people: Person[]; last: SearchCursor | null }> {
  const params: unknown[] = [];
  const where: string[] = [];
  const add = (sql: string, value: unknown) => {
    params.push(value);
    where.push(sql.replace('?', `$${params.length}`));
  };
  switch (s.by) {
    case 'userId':
      add('user_id = ?', s.userId);
      break;
    case 'niNumber':
      add('ni_number = ?', s.niNumber);
      break;
    case 'email':
      add('email = ?', s.email);
      break;
    case 'name':
      if (s.dateOfBirth) add('date_of_birth = ?', s.dateOfBirth);
      add('family_key LIKE ?', `${escapeLike(s.familyPrefix)}%`);
      if (s.givenPrefix) add('given_key LIKE ?', `${escapeLike(s.givenPrefix)}%`);
      break;
  }
  if (page.after) {
    params.push(page.after.familyKey, page.after.givenKey, page.after.userId);
    const n = params.length;
    where.push(`(family_key, given_key, user_id) > ($${n - 2}, $${n - 1}, $${n})`);
  }
  params.push(page.limit + 1);
  const { rows } = await q.query<PersonRow & { family_key: string; given_key: string }>(
    `SELECT ${COLUMNS}, family_key, given_key FROM people WHERE ${where.join(' AND ')}
     ORDER BY family_key, given_key, user_id LIMIT $${params.length}`,
    params,
  );
  const more = rows.length > page.limit;
  const pageRows = more ? rows.slice(0, page.limit) : rows;
  const lastRow = pageRows.at(-1);
  return {
    people: pageRows.map(personFromRow),
    last:
      more && lastRow ? { familyKey: lastRow.family_key, givenKey: lastRow.given_key, userId: lastRow.user_id } : null,
  };
}

function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** The organisations a person works for (their person-organisation links), for RA scope checks. */
export async function personOrgCodes(q: Queryable, userId: string): Promise<string[]> {
  const { rows } = await q.query<{ ods_code: string }>(
    'SELECT ods_code FROM person_orgs WHERE user_id = $1 ORDER BY 1',
    [userId],
  );
  return rows.map((r) => r.ods_code);
}

/** Display names of people by user ID (for lists that name people beside their IDs); unknown IDs are left out. */
export async function displayNames(q: Queryable, userIds: readonly string[]): Promise<Map<string, string>> {
  const ids = [...new Set(userIds)].filter((id) => /^[0-9]{12}$/.test(id));
  if (ids.length === 0) return new Map();
  const { rows } = await q.query<{ user_id: string; given_name: string; family_name: string; preferred_name: string }>(
    'SELECT user_id, given_name, family_name, preferred_name FROM people WHERE user_id = ANY($1::text[])',
    [ids],
  );
  return new Map(rows.map((r) => [r.user_id, r.preferred_name ?? `${r.given_name} ${r.family_name}`]));
}
