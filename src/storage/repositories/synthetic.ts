/**
 * Synthetic data at national shape (src/services/synthetic.ts): set-based SQL (INSERT … SELECT over generate_series)
 * on the caller's transaction, through temporary tables dropped at commit. Only PostgreSQL 15 SQL, for both drivers.
 */
import { ukDate } from '../../domain/dates.ts';
import { type NameColumns, NI_PREFIXES, NI_SCRAMBLE, NI_SPACE, PLACES } from '../../domain/identity/synthetic-names.ts';
import type { Queryable } from '../database.ts';

export type OrganisationPlan = Record<'icb' | 'trust' | 'site' | 'gp_practice' | 'pharmacy', number>;

// ODS code spaces, one per organisation type and disjoint from each other (so a run never collides with itself):
// ICBs Q + letter + letter/digit; trusts R or T + letter + letter/digit; sites a new trust's code + 2 digits;
// GP practices a letter (never F, Q, R, T) + 5 digits; pharmacies F + letter + letter/digit + 2 digits.
// `g` is the candidate's number in its space.
const LETTERS = `'ABCDEFGHIJKLMNOPQRSTUVWXYZ'`;
const ALNUM = `'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ'`;
const PRACTICE_LETTERS = 'ABCDEGHJKLMNPY';
const codeSpaces = {
  icb: { size: 26 * 36, sql: `'Q' || substr(${LETTERS}, g / 36 + 1, 1) || substr(${ALNUM}, g % 36 + 1, 1)` },
  trust: {
    size: 2 * 26 * 36,
    sql: `substr('RT', g / 936 + 1, 1) || substr(${LETTERS}, (g % 936) / 36 + 1, 1) || substr(${ALNUM}, g % 36 + 1, 1)`,
  },
  gp_practice: {
    size: PRACTICE_LETTERS.length * 90_000,
    sql: `substr('${PRACTICE_LETTERS}', g % ${PRACTICE_LETTERS.length} + 1, 1) || (10000 + g / ${PRACTICE_LETTERS.length})::text`,
  },
  pharmacy: {
    size: 26 * 36 * 100,
    sql: `'F' || substr(${LETTERS}, g % 26 + 1, 1) || substr(${ALNUM}, (g / 26) % 36 + 1, 1) || lpad((g / 936)::text, 2, '0')`,
  },
} as const;

/**
 * Two positions per organisation type, with the national job roles they carry (DOMAIN §4); `weight` is how many
 * people an organisation of the type employs, relative to the others (a hospital site far more than a pharmacy).
 */
const orgTypes = [
  {
    type: 'icb',
    weight: 84,
    name: "'NHS ' || place || ' Integrated Care Board'",
    positions: [
      { name: 'Commissioning officer', assignable: true, roles: ['R8010'] },
      { name: 'Registration Authority Manager', assignable: false, roles: ['R5080'] },
    ],
  },
  {
    type: 'trust',
    weight: 54,
    name: `place || ' ' || (ARRAY['Teaching Hospitals NHS Foundation Trust', 'Hospitals NHS Trust',
      'Community Health NHS Trust', 'Mental Health NHS Foundation Trust'])[rank % 4 + 1]`,
    positions: [
      { name: 'Registration Authority Agent', assignable: false, roles: ['R5090'] },
      { name: 'Information officer', assignable: true, roles: ['R8012'] },
    ],
  },
  {
    type: 'site',
    weight: 64,
    name: `place || ' ' || (ARRAY['General Hospital', 'Royal Infirmary', 'Community Hospital', 'Memorial Hospital',
      'Health Campus'])[rank % 5 + 1]`,
    positions: [
      { name: 'Ward nurse', assignable: true, roles: ['R8001'] },
      { name: 'Consultant', assignable: false, roles: ['R8000', 'R0050'] },
    ],
  },
  {
    type: 'gp_practice',
    weight: 6,
    name: `place || ' ' || (ARRAY['Medical Centre', 'Surgery', 'Health Centre', 'Family Practice', 'Group Practice'])[rank % 5 + 1]`,
    positions: [
      { name: 'General practitioner', assignable: false, roles: ['R8000', 'R0260'] },
      { name: 'Receptionist', assignable: true, roles: ['R8009'] },
    ],
  },
  {
    type: 'pharmacy',
    weight: 2,
    name: `place || ' ' || (ARRAY['Pharmacy', 'Chemist', 'Community Pharmacy'])[rank % 3 + 1]`,
    positions: [
      { name: 'Pharmacist', assignable: false, roles: ['R8003'] },
      { name: 'Pharmacy assistant', assignable: true, roles: ['R8008'] },
    ],
  },
] as const;

/** An organisation made by this run, as the people batches need it. */
export interface SyntheticOrg {
  odsCode: string;
  weight: number;
  positionA: string;
  positionB: string;
}

/**
 * The organisations of a run, `plan` of each type with free ODS codes, under ICBs in turn, two positions each; what
 * the people batches need of them, with how many organisations and positions were made.
 */
export async function createOrganisations(
  tx: Queryable,
  plan: OrganisationPlan,
  now: Date,
): Promise<{ orgs: SyntheticOrg[]; organisations: number; positions: number }> {
  const roles = await tx.query<{ n: string }>('SELECT count(*)::text AS n FROM rbac_job_roles WHERE NOT retired');
  if (roles.rows[0]?.n === '0') throw new Error('load the RBAC catalogue before seeding synthetic data');
  await tx.query(`CREATE TEMP TABLE syn_orgs (
      type text NOT NULL, rank integer NOT NULL, ods_code text PRIMARY KEY, parent_ods_code text, weight integer
    ) ON COMMIT DROP`);
  const existing = Number(
    (await tx.query<{ n: string }>('SELECT count(*)::text AS n FROM organisations')).rows[0]?.n ?? '0',
  );
  await pickFreeCodes(tx, 'icb', plan.icb, existing);
  await pickFreeCodes(tx, 'trust', plan.trust, existing);
  await pickSiteCodes(tx, plan.site, plan.trust, existing);
  await pickFreeCodes(tx, 'gp_practice', plan.gp_practice, existing);
  await pickFreeCodes(tx, 'pharmacy', plan.pharmacy, existing);
  // Trusts, practices and pharmacies belong to ICBs in turn; sites already point at their trust.
  await tx.query(
    `UPDATE syn_orgs o SET parent_ods_code = icb.ods_code
     FROM syn_orgs icb
     WHERE o.type IN ('trust', 'gp_practice', 'pharmacy') AND icb.type = 'icb'
       AND icb.rank = (o.rank - 1) % $1 + 1`,
    [plan.icb],
  );
  const orgCount = await insertOrganisations(tx, now);
  const positions = await insertPositions(tx, now);
  const { rows } = await tx.query<{ ods_code: string; weight: number; position_a: string; position_b: string }>(
    `SELECT o.ods_code, o.weight, min(p.position_id)::text AS position_a, max(p.position_id)::text AS position_b
     FROM syn_orgs o JOIN positions p ON p.ods_code = o.ods_code
     GROUP BY o.ods_code, o.weight ORDER BY o.ods_code`,
  );
  const orgs = rows.map((r) => ({
    odsCode: r.ods_code,
    weight: Number(r.weight),
    positionA: r.position_a,
    positionB: r.position_b,
  }));
  return { orgs, organisations: orgCount, positions };
}

/**
 * Takes the first `k` codes of a type's space that no organisation has. At most `existing` codes are taken, so the
 * first k + existing candidates always hold k free ones: the scan stays small however often the seed runs.
 */
async function pickFreeCodes(tx: Queryable, type: keyof typeof codeSpaces, k: number, existing: number): Promise<void> {
  const space = codeSpaces[type];
  const window = Math.min(space.size, k + existing);
  const res = await tx.query(
    `INSERT INTO syn_orgs (type, rank, ods_code)
     SELECT $1, row_number() OVER (ORDER BY g), code
     FROM (SELECT g, ${space.sql} AS code FROM generate_series(0, $2::integer - 1) AS g) c
     WHERE NOT EXISTS (SELECT 1 FROM organisations o WHERE o.ods_code = c.code)
     ORDER BY g LIMIT $3`,
    [type, window, k],
  );
  if (res.rowCount < k) throw new Error(`no free ODS codes left for synthetic ${type} organisations`);
}

/**
 * Sites take their trust's code plus two digits (RJ1 → RJ101, RJ102, …), spread over the trusts in turn; as in
 * pickFreeCodes, k + existing candidates always hold k free ones.
 */
async function pickSiteCodes(tx: Queryable, k: number, trusts: number, existing: number): Promise<void> {
  const window = Math.min(trusts * 99, k + existing);
  const res = await tx.query(
    `INSERT INTO syn_orgs (type, rank, ods_code, parent_ods_code)
     SELECT 'site', row_number() OVER (ORDER BY j), c.code, c.trust
     FROM (
       SELECT j, t.ods_code AS trust, t.ods_code || lpad((j / $2 + 1)::text, 2, '0') AS code
       FROM generate_series(0, $1::integer - 1) AS j
       JOIN syn_orgs t ON t.type = 'trust' AND t.rank = j % $2 + 1
     ) c
     WHERE NOT EXISTS (SELECT 1 FROM organisations o WHERE o.ods_code = c.code)
     ORDER BY j LIMIT $3`,
    [window, trusts, k],
  );
  if (res.rowCount < k) throw new Error('no free ODS codes left for synthetic sites');
}

async function insertOrganisations(tx: Queryable, now: Date): Promise<number> {
  const typeSql = orgTypes.map((t) => `WHEN '${t.type}' THEN ${t.name}`).join('\n');
  const weightSql = orgTypes.map((t) => `WHEN '${t.type}' THEN ${t.weight}`).join(' ');
  // Sizes vary around the type's weight (×0.5 … ×1.5), so some organisations are busier than others.
  await tx.query(`UPDATE syn_orgs SET weight = GREATEST(1, (CASE type ${weightSql} END) * (2 + rank % 5) / 4)`);
  // One statement for the whole hierarchy: foreign keys are checked at its end, when the parents are there.
  const res = await tx.query(
    `INSERT INTO organisations (ods_code, name, type, parent_ods_code, status, created_at, updated_at)
     SELECT ods_code, CASE type ${typeSql} END, type, parent_ods_code, 'active', $2, $2
     FROM (SELECT o.*, ($1::text[])[(o.rank - 1) % cardinality($1::text[]) + 1] AS place FROM syn_orgs o) s`,
    [PLACES, now],
  );
  return res.rowCount;
}

async function insertPositions(tx: Queryable, now: Date): Promise<number> {
  const templates = orgTypes.flatMap((t) =>
    t.positions.map((p) => ({ type: t.type, name: p.name, assignable: p.assignable, roles: p.roles.join(',') })),
  );
  await tx.query(
    `CREATE TEMP TABLE syn_templates ON COMMIT DROP AS
     SELECT * FROM jsonb_to_recordset($1::jsonb) AS t(type text, name text, assignable boolean, roles text)`,
    [JSON.stringify(templates)],
  );
  const res = await tx.query(
    `INSERT INTO positions (ods_code, name, assignable, created_at, updated_at)
     SELECT o.ods_code, t.name, t.assignable, $1, $1
     FROM syn_orgs o JOIN syn_templates t ON t.type = o.type
     ORDER BY o.ods_code, t.name`,
    [now],
  );
  // Job roles from the loaded catalogue only; a position whose roles a catalogue lacks gets the first current role.
  await tx.query(
    `INSERT INTO position_job_roles (position_id, job_role_code)
     SELECT p.position_id, r.code
     FROM syn_orgs o
     JOIN positions p ON p.ods_code = o.ods_code
     JOIN syn_templates t ON t.type = o.type AND t.name = p.name
     CROSS JOIN LATERAL unnest(string_to_array(t.roles, ',')) AS r(code)
     WHERE EXISTS (SELECT 1 FROM rbac_job_roles j WHERE j.code = r.code AND NOT j.retired)`,
  );
  await tx.query(
    `INSERT INTO position_job_roles (position_id, job_role_code)
     SELECT p.position_id, (SELECT min(code) FROM rbac_job_roles WHERE NOT retired)
     FROM syn_orgs o JOIN positions p ON p.ods_code = o.ods_code
     WHERE NOT EXISTS (SELECT 1 FROM position_job_roles pj WHERE pj.position_id = p.position_id)`,
  );
  return res.rowCount;
}

export interface BatchInput {
  size: number;
  orgs: readonly SyntheticOrg[];
  family: NameColumns;
  given: NameColumns;
}

/**
 * One batch of people, each with one person-organisation link and one or two role profiles (55 % two: ~1.55 on
 * average). IDs come from the sequences through national_id(), as registerPerson would allocate them.
 */
export async function seedPeopleBatch(
  tx: Queryable,
  input: BatchInput,
  clock: () => Date,
): Promise<{ people: number; roleProfiles: number }> {
  await createLookupTables(tx, input);
  const slots = input.orgs.reduce((sum, o) => sum + o.weight, 0);
  // Random choices for each person, drawn once and kept, so later statements see the same person.
  // power(random(), 1.5) leans towards the start of the name lists, where the common names are.
  await tx.query(
    `CREATE TEMP TABLE syn_people ON COMMIT DROP AS
     SELECT seq, national_id(seq) AS user_id, national_id(org_seq) AS person_orgid, fi, gi, mi, slot, dob, titled,
       mobile, iam, status,
       substr($4, (ni / 4000000)::integer * 2 + 1, 2) || lpad((ni / 4 % 1000000)::text, 6, '0')
         || substr('ABCD', (ni % 4)::integer + 1, 1) AS ni_number
     FROM (
      SELECT *, (seq % ${NI_SPACE}) * ${NI_SCRAMBLE} % ${NI_SPACE} AS ni FROM (
       SELECT nextval('user_id_seq') AS seq, nextval('person_orgid_seq') AS org_seq,
         floor($1::integer * power(random(), 1.5))::integer AS fi,
         floor($2::integer * power(random(), 1.5))::integer AS gi,
         CASE WHEN random() < 0.15 THEN floor($2::integer * random())::integer END AS mi,
         floor($3::integer * random())::integer AS slot,
         DATE '1950-01-01' + floor(random() * (DATE '2005-12-31' - DATE '1950-01-01' + 1))::integer AS dob,
         random() < 0.08 AS titled,
         CASE WHEN random() < 0.7 THEN '07' || lpad(floor(random() * 1000000000)::bigint::text, 9, '0') END AS mobile,
         CASE WHEN r < 0.90 THEN 3 WHEN r < 0.98 THEN 2 ELSE 1 END AS iam,
         CASE WHEN s < 0.97 THEN 'active' WHEN s < 0.985 THEN 'suspended' ELSE 'left' END AS status
       FROM (SELECT random() AS r, random() AS s FROM generate_series(1, $5::integer)) AS g
     ) AS p0) AS p`,
    [input.family.names.length, input.given.names.length, slots, NI_PREFIXES, input.size],
  );
  // NI numbers are unique nationally: a synthetic one that a registered person already holds is dropped, with its
  // person (vanishingly rare; the sequence-derived numbers never repeat among synthetic people).
  await tx.query('ANALYZE syn_people');
  await tx.query('DELETE FROM syn_people s USING people p WHERE p.ni_number = s.ni_number');
  const people = await insertPeople(tx, clock());
  await tx.query(
    `INSERT INTO person_orgs (person_orgid, user_id, ods_code, created_at)
     SELECT s.person_orgid, s.user_id, o.ods_code, $1 FROM syn_people s JOIN syn_slots o ON o.slot = s.slot
     ORDER BY s.person_orgid`,
    [clock()],
  );
  const roleProfiles = await insertRoleProfiles(tx, clock());
  return { people, roleProfiles };
}

/** Per-batch copies of the name lists and of the organisations' slots (one row per unit of weight). */
async function createLookupTables(tx: Queryable, input: BatchInput): Promise<void> {
  for (const [table, cols] of [
    ['syn_family', input.family],
    ['syn_given', input.given],
  ] as const) {
    await tx.query(
      `CREATE TEMP TABLE ${table} ON COMMIT DROP AS
       SELECT (i - 1)::integer AS i, name, key, email
       FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(name, key, email, i)`,
      [cols.names, cols.keys, cols.emailParts],
    );
  }
  await tx.query(
    `CREATE TEMP TABLE syn_slots ON COMMIT DROP AS
     SELECT (row_number() OVER () - 1)::integer AS slot, o.ods_code, o.position_a, o.position_b
     FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::bigint[]) AS o(ods_code, weight, position_a, position_b)
     CROSS JOIN LATERAL generate_series(1, o.weight)`,
    [
      input.orgs.map((o) => o.odsCode),
      input.orgs.map((o) => o.weight),
      input.orgs.map((o) => o.positionA),
      input.orgs.map((o) => o.positionB),
    ],
  );
  await tx.query('ANALYZE syn_slots');
}

async function insertPeople(tx: Queryable, now: Date): Promise<number> {
  // Email: the ASCII forms of the names plus digits of the unique sequence value, as NHSmail adds digits to tell
  // namesakes apart; lower case, as the RA search expects.
  const res = await tx.query(
    `INSERT INTO people (user_id, title, given_name, middle_names, family_name, date_of_birth, ni_number, email, mobile,
       status, identity_assurance_level, family_key, given_key, created_at, updated_at)
     SELECT s.user_id, CASE WHEN s.titled THEN 'Dr' END, g.name, m.name, f.name, s.dob, s.ni_number,
       g.email || '.' || f.email || (s.seq % 10000000)::text || '@synthetic.nhs.example', s.mobile, s.status, s.iam,
       f.key, g.key, $1, $1
     FROM syn_people s
     JOIN syn_family f ON f.i = s.fi
     JOIN syn_given g ON g.i = s.gi
     LEFT JOIN syn_given m ON m.i = s.mi
     ORDER BY s.seq`,
    [now],
  );
  return res.rowCount;
}

/**
 * Role profiles: the first at one of the organisation's two positions, a second (55 %) at the other. Start dates fall
 * after the 18th birthday and within the last 15 years; a few percent are ended, a few have an end date to come
 * (temporary staff) and a few an end date already past but not yet tidied up. Leavers' profiles are all ended.
 */
async function insertRoleProfiles(tx: Queryable, now: Date): Promise<number> {
  const res = await tx.query(
    `INSERT INTO role_profiles (person_roleid, user_id, person_orgid, position_id, start_date, end_date, status,
       created_at, updated_at)
     SELECT national_id(nextval('person_roleid_seq')), x.user_id, x.person_orgid, x.position_id, x.start_date,
       CASE
         WHEN x.ended OR x.r < 0.03 OR x.r >= 0.06 AND x.r < 0.08
           THEN x.start_date + floor(random() * ($2::date - x.start_date + 1))::integer
         WHEN x.r < 0.06 THEN $2::date + 1 + floor(random() * 365)::integer
       END,
       CASE WHEN x.ended OR x.r < 0.03 THEN 'ended' ELSE 'active' END,
       $1, $1
     FROM (
       SELECT s.seq, k.n, s.user_id, s.person_orgid, s.status = 'left' AS ended, random() AS r,
         CASE WHEN (k.n = 1) = (s.seq % 2 = 0) THEN o.position_a ELSE o.position_b END AS position_id,
         LEAST($2::date, GREATEST(s.dob + 6575, $2::date - floor(random() * 5479)::integer)) AS start_date
       FROM syn_people s
       JOIN syn_slots o ON o.slot = s.slot
       CROSS JOIN LATERAL (VALUES (1), (2)) AS k(n)
       WHERE k.n = 1 OR s.seq % 20 < 11
     ) x
     ORDER BY x.seq, x.n`,
    [now, ukDate(now)],
  );
  return res.rowCount;
}
