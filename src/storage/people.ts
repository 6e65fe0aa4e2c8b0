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
  | { by: 'name'; familyPrefix: string; givenPrefix: string | null; dateOfBirth: string | null }
  /** Everyone in the organisations of the filter (an RA's "who works here"), in the chosen order. */
  | { by: 'organisation' };

/** How results are ordered: by name (family, given, user ID) or by date of birth (then name), either way round. */
export type PersonSort = 'name' | 'name_desc' | 'dob' | 'dob_desc';

export interface PersonFilters {
  /** Only people linked to one of these organisations (an organisation and those within it). */
  odsCodes?: readonly string[] | null;
  status?: PersonStatus | null;
}

/** Keyset position of a row in the sort order: the values of the sort's columns, user ID last (all index columns). */
export interface SearchCursor {
  familyKey: string;
  givenKey: string;
  userId: string;
  /** With the date-of-birth sorts. */
  dateOfBirth?: string;
}

const sortColumns: Record<PersonSort, { columns: string[]; desc: boolean }> = {
  name: { columns: ['family_key', 'given_key', 'user_id'], desc: false },
  name_desc: { columns: ['family_key', 'given_key', 'user_id'], desc: true },
  dob: { columns: ['date_of_birth', 'family_key', 'given_key', 'user_id'], desc: false },
  dob_desc: { columns: ['date_of_birth', 'family_key', 'given_key', 'user_id'], desc: true },
};

/** Above this many matches the count says "more than" (counting every match of a broad search costs a scan). */
export const SEARCH_COUNT_CAP = 10_000;

/**
 * An organisation filter is read one of two ways. Everyone at an organisation with few people (a practice, a trust: at
 * most MEMBERS_FIRST_UP_TO): their person-organisation links first, then those people, sorted — a scan of the whole
 * name index in order, probing each person's links, took 7 s for a practice of 87 among 1.3 M. Many (an ICB and
 * below): the name order first, probing each person's links, which finds a page soon because so many match. With a
 * name as well, the name narrows first unless the organisation is tiny (bench/search-console.ts, 2026-12).
 */
const MEMBERS_FIRST_UP_TO = 20_000;
const MEMBERS_FIRST_WITH_A_NAME_UP_TO = 500;

interface SearchSql {
  /** `WITH …` prefix, when the search starts from an organisation's members. */
  with: string;
  from: string;
  where: string[];
  params: unknown[];
}

async function searchSql(q: Queryable, s: PersonSearch, filters: PersonFilters): Promise<SearchSql> {
  const params: unknown[] = [];
  const where: string[] = [];
  const add = (sql: string, value: unknown) => {
    params.push(value);
    where.push(sql.replace('?', `$${params.length}`));
  };
  let prefix = '';
  let from = 'people';
  if (filters.odsCodes) {
    const { rows } = await q.query<{ n: string }>(
      'SELECT count(*)::text AS n FROM (SELECT 1 FROM person_orgs WHERE ods_code = ANY($1::text[]) LIMIT $2) m',
      [filters.odsCodes, MEMBERS_FIRST_UP_TO + 1],
    );
    params.push(filters.odsCodes);
    const members = Number(rows[0]?.n ?? 0);
    if (members <= (s.by === 'organisation' ? MEMBERS_FIRST_UP_TO : MEMBERS_FIRST_WITH_A_NAME_UP_TO)) {
      prefix = `WITH members AS MATERIALIZED (SELECT DISTINCT user_id FROM person_orgs WHERE ods_code = ANY($${params.length}::text[])) `;
      from = 'members JOIN people USING (user_id)';
    } else {
      where.push(
        `user_id IN (SELECT po.user_id FROM person_orgs po WHERE po.ods_code = ANY($${params.length}::text[]))`,
      );
    }
  }
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
    case 'organisation':
      if (!filters.odsCodes) where.push('false');
      break;
  }
  if (filters.status) add('status = ?', filters.status);
  return { with: prefix, from, where: where.length ? where : ['true'], params };
}

/**
 * RA person search. Every branch is one index range scan (see 0001_identity_core.sql) read in index order, so a page
 * costs the same however many people match; pages continue from a keyset cursor (after the last row, or before the
 * first for the previous page) rather than an offset. An organisation filter is a semi-join on person_orgs by
 * organisation (0050).
 */
export async function searchPeople(
  q: Queryable,
  s: PersonSearch,
  page: {
    limit: number;
    after: SearchCursor | null;
    before?: SearchCursor | null;
    sort?: PersonSort;
    filters?: PersonFilters;
  },
): Promise<{ people: Person[]; last: SearchCursor | null; first: SearchCursor | null; hasPrevious: boolean }> {
  const sort = sortColumns[page.sort ?? 'name'];
  const sql = await searchSql(q, s, page.filters ?? {});
  const { where, params } = sql;
  const backwards = !page.after && Boolean(page.before);
  const cursor = page.after ?? page.before ?? null;
  if (cursor) {
    const values = sort.columns.map((c) =>
      c === 'date_of_birth'
        ? (cursor.dateOfBirth ?? '')
        : c === 'family_key'
          ? cursor.familyKey
          : c === 'given_key'
            ? cursor.givenKey
            : cursor.userId,
    );
    const first = params.length + 1;
    params.push(...values);
    // Forwards in ascending order is ">"; either reversal (descending order, or paging backwards) flips it.
    const op = sort.desc !== backwards ? '<' : '>';
    const placeholders = values.map((_, i) => `$${first + i}${sort.columns[i] === 'date_of_birth' ? '::date' : ''}`);
    where.push(`(${sort.columns.join(', ')}) ${op} (${placeholders.join(', ')})`);
  }
  const direction = sort.desc !== backwards ? 'DESC' : 'ASC';
  params.push(page.limit + 1);
  const { rows } = await q.query<PersonRow & { family_key: string; given_key: string; dob_text: string }>(
    `${sql.with}SELECT ${COLUMNS}, family_key, given_key, to_char(date_of_birth, 'YYYY-MM-DD') AS dob_text
     FROM ${sql.from} WHERE ${where.join(' AND ')}
     ORDER BY ${sort.columns.map((c) => `${c} ${direction}`).join(', ')} LIMIT $${params.length}`,
    params,
  );
  const more = rows.length > page.limit;
  const pageRows = (more ? rows.slice(0, page.limit) : rows).slice();
  if (backwards) pageRows.reverse();
  const key = (r: (typeof rows)[number]): SearchCursor => ({
    familyKey: r.family_key,
    givenKey: r.given_key,
    userId: r.user_id,
    ...(sort.columns[0] === 'date_of_birth' ? { dateOfBirth: r.dob_text } : {}),
  });
  const firstRow = pageRows[0];
  const lastRow = pageRows.at(-1);
  // Forwards: a next page when there were more rows; a previous one whenever we came from a cursor. Backwards: the
  // other way round (we came from the page after this one).
  const hasNext = backwards ? cursor !== null : more;
  const hasPrevious = backwards ? more : cursor !== null;
  return {
    people: pageRows.map(personFromRow),
    last: hasNext && lastRow ? key(lastRow) : null,
    first: hasPrevious && firstRow ? key(firstRow) : null,
    hasPrevious,
  };
}

/** How many people match, counted up to SEARCH_COUNT_CAP + 1 (so "more than 10,000" can be said without a scan). */
export async function countPeople(q: Queryable, s: PersonSearch, filters: PersonFilters = {}): Promise<number> {
  const sql = await searchSql(q, s, filters);
  const { where, params } = sql;
  params.push(SEARCH_COUNT_CAP + 1);
  const { rows } = await q.query<{ n: string }>(
    `${sql.with}SELECT count(*)::text AS n FROM (SELECT 1 FROM ${sql.from} WHERE ${where.join(' AND ')}
     LIMIT $${params.length}) m`,
    params,
  );
  return Number(rows[0]?.n ?? 0);
}

/** The organisations each person works for (their person-organisation links), for result lists. */
export async function organisationsOfPeople(q: Queryable, userIds: readonly string[]): Promise<Map<string, string[]>> {
  if (userIds.length === 0) return new Map();
  const { rows } = await q.query<{ user_id: string; ods_codes: string[] }>(
    `SELECT user_id, array_agg(ods_code ORDER BY ods_code) AS ods_codes FROM person_orgs
     WHERE user_id = ANY($1::text[]) GROUP BY user_id`,
    [[...new Set(userIds)]],
  );
  return new Map(rows.map((r) => [r.user_id, r.ods_codes]));
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
