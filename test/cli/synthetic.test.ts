import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { normaliseName } from '../../src/domain/identity/names.ts';
import { isValidNiNumber } from '../../src/domain/identity/ni-number.ts';
import { isNationalId, nationalIdFromSequence } from '../../src/domain/identity/user-id.ts';
import { isOdsCode } from '../../src/domain/organisations/organisation.ts';
import { verifyAuditChain } from '../../src/services/audit-verify.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { seedSynthetic } from '../../src/services/synthetic.ts';
import { testContext, testSealer } from '../support/context.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';

const PEOPLE = 2_000;

let t: TestDatabase;
let first: Awaited<ReturnType<typeof seedSynthetic>>;

/**
 * Organisations already there, at the very start of the synthetic code spaces (and a site code the first synthetic
 * trust would give its first site): the run must step round them.
 */
const existingOrganisations = [
  { odsCode: 'QA0', name: 'Existing ICB', type: 'icb', parentOdsCode: null },
  { odsCode: 'RA0', name: 'Existing trust', type: 'trust', parentOdsCode: 'QA0' },
  { odsCode: 'RA101', name: 'Existing site', type: 'site', parentOdsCode: 'RA0' },
  { odsCode: 'A10000', name: 'Existing practice', type: 'gp_practice', parentOdsCode: 'QA0' },
  { odsCode: 'FA000', name: 'Existing pharmacy', type: 'pharmacy', parentOdsCode: 'QA0' },
  { odsCode: 'RR8', name: 'Demo Teaching Hospitals NHS Trust', type: 'trust', parentOdsCode: 'QA0' },
] as const;

before(async () => {
  t = await createTestDatabase();
  for (const o of existingOrganisations) await saveOrganisation(testContext(t.db), o);
  // Small batches, so the run crosses several transactions as a national-scale run does.
  first = await seedSynthetic(testContext(t.db), PEOPLE, { batchSize: 700 });
});

after(async () => {
  await t.close();
});

async function count(sql: string): Promise<number> {
  const { rows } = await t.db.query<{ n: string }>(`SELECT (${sql})::text AS n`);
  return Number(rows[0]!.n);
}

test('national_id() in SQL computes the same 12-digit ID as nationalIdFromSequence', async () => {
  const values: string[] = ['10000000000', '99999999999', '55507310310', '66607310310', '77707310310'];
  let x = 0x2545f491n;
  while (values.length < 400) {
    // xorshift-style spread over the whole 11-digit range, reproducible run to run
    x = (x * 6364136223846793005n + 1442695040888963407n) % 2n ** 63n;
    values.push((10_000_000_000n + (x % 90_000_000_000n)).toString());
  }
  const { rows } = await t.db.query<{ n: string; id: string }>(
    'SELECT v AS n, national_id(v::bigint) AS id FROM unnest($1::text[]) AS v',
    [values],
  );
  assert.equal(rows.length, values.length);
  for (const r of rows) assert.equal(r.id, nationalIdFromSequence(r.n), `national_id(${r.n})`);
});

test('national_id() refuses values outside the 11-digit range, as the TypeScript function does', async () => {
  await assert.rejects(t.db.query('SELECT national_id(9999999999)'), /out of range/);
  await assert.rejects(t.db.query('SELECT national_id(100000000000)'), /out of range/);
});

test('a synthetic run creates the people, organisations and role profiles it reports, at national shape', async () => {
  assert.equal(first.people, PEOPLE);
  assert.equal(await count('SELECT count(*) FROM people'), PEOPLE);
  assert.ok(first.organisations >= PEOPLE / 130, `${first.organisations} organisations`);
  assert.equal(await count('SELECT count(*) FROM organisations'), existingOrganisations.length + first.organisations);
  assert.equal(first.positions, first.organisations * 2);
  assert.equal(await count('SELECT count(*) FROM positions'), first.positions);
  assert.equal(await count('SELECT count(*) FROM person_orgs'), PEOPLE);
  assert.equal(await count('SELECT count(*) FROM role_profiles'), first.roleProfiles);
  const perPerson = first.roleProfiles / PEOPLE;
  assert.ok(perPerson > 1.5 && perPerson < 1.6, `${perPerson} role profiles per person`);
  for (const type of ['icb', 'trust', 'site', 'gp_practice', 'pharmacy']) {
    assert.ok((await count(`SELECT count(*) FROM organisations WHERE type = '${type}'`)) >= 1, type);
  }
});

test('every synthetic ID, NI number and ODS code is well formed', async () => {
  const people = await t.db.query<{ user_id: string; ni_number: string; email: string }>(
    'SELECT user_id, ni_number, email FROM people',
  );
  for (const p of people.rows) {
    assert.ok(isNationalId(p.user_id), p.user_id);
    assert.ok(isValidNiNumber(p.ni_number), p.ni_number);
    assert.match(p.email, /^[a-z0-9]+\.[a-z0-9]+[0-9]+@synthetic\.nhs\.example$/);
  }
  const ids = await t.db.query<{ id: string }>(
    'SELECT person_orgid AS id FROM person_orgs UNION ALL SELECT person_roleid FROM role_profiles',
  );
  for (const r of ids.rows) assert.ok(isNationalId(r.id), r.id);
  const orgs = await t.db.query<{ ods_code: string; type: string; parent_ods_code: string | null }>(
    'SELECT ods_code, type, parent_ods_code FROM organisations WHERE NOT (ods_code = ANY($1))',
    [existingOrganisations.map((o) => o.odsCode)],
  );
  const shapes: Record<string, RegExp> = {
    icb: /^Q[A-Z][A-Z0-9]$/,
    trust: /^[RT][A-Z][A-Z0-9]$/,
    site: /^[RT][A-Z][A-Z0-9][0-9]{2}$/,
    gp_practice: /^[A-Z][0-9]{5}$/,
    pharmacy: /^F[A-Z][A-Z0-9][0-9]{2}$/,
  };
  for (const o of orgs.rows) {
    assert.ok(isOdsCode(o.ods_code), o.ods_code);
    assert.match(o.ods_code, shapes[o.type]!);
    assert.equal(o.parent_ods_code === null, o.type === 'icb', `${o.ods_code} parent`);
  }
});

test('a synthetic run steps round the ODS codes organisations already have', async () => {
  const { rows } = await t.db.query<{ ods_code: string; name: string }>(
    'SELECT ods_code, name FROM organisations WHERE ods_code = ANY($1) ORDER BY ods_code',
    [existingOrganisations.map((o) => o.odsCode)],
  );
  assert.deepEqual(
    rows,
    existingOrganisations
      .map((o) => ({ ods_code: o.odsCode, name: o.name }))
      .sort((a, b) => (a.ods_code < b.ods_code ? -1 : 1)),
  );
  // Nothing synthetic hangs off them: their positions and people are their own (none here).
  assert.equal(
    await count(`SELECT count(*) FROM positions WHERE ods_code IN ('QA0', 'RA0', 'RA101', 'A10000', 'FA000', 'RR8')`),
    0,
  );
  assert.equal(await count(`SELECT count(*) FROM organisations WHERE parent_ods_code IN ('QA0', 'RA0')`), 5);
});

test('synthetic name keys are the ones registerPerson stores (normaliseName)', async () => {
  const { rows } = await t.db.query<{ family_name: string; given_name: string; family_key: string; given_key: string }>(
    'SELECT family_name, given_name, family_key, given_key FROM people ORDER BY user_id LIMIT 500',
  );
  for (const r of rows) {
    assert.equal(r.family_key, normaliseName(r.family_name));
    assert.equal(r.given_key, normaliseName(r.given_name));
  }
  const distinct = await count('SELECT count(DISTINCT family_name) FROM people');
  assert.ok(distinct > 100, `${distinct} distinct family names`);
  assert.ok((await count("SELECT count(*) FROM people WHERE family_name LIKE '%''%'")) > 0, 'apostrophes');
  assert.ok((await count("SELECT count(*) FROM people WHERE given_name <> given_key AND given_name ~ '[^ -~]'")) > 0);
});

test('synthetic people and role profiles have plausible dates and statuses', async () => {
  assert.equal(
    await count("SELECT count(*) FROM people WHERE date_of_birth NOT BETWEEN '1950-01-01' AND '2005-12-31'"),
    0,
  );
  const level3 = await count('SELECT count(*) FROM people WHERE identity_assurance_level = 3');
  assert.ok(level3 > PEOPLE * 0.8, `${level3} at level 3`);
  const ended = await count("SELECT count(*) FROM role_profiles WHERE status = 'ended'");
  const dated = await count("SELECT count(*) FROM role_profiles WHERE status = 'active' AND end_date IS NOT NULL");
  assert.ok(ended > 0 && ended < first.roleProfiles * 0.15, `${ended} ended`);
  assert.ok(dated > 0 && dated < first.roleProfiles * 0.15, `${dated} active with an end date`);
  // Each profile is at a position of the organisation its person-organisation link names.
  assert.equal(
    await count(`SELECT count(*) FROM role_profiles r JOIN person_orgs po USING (person_orgid)
      JOIN positions p USING (position_id) WHERE p.ods_code <> po.ods_code OR po.user_id <> r.user_id`),
    0,
  );
  assert.equal(
    await count(`SELECT count(*) FROM positions p
      WHERE NOT EXISTS (SELECT 1 FROM position_job_roles j WHERE j.position_id = p.position_id)`),
    0,
  );
});

test('a second run adds more people and organisations without colliding, and the audit chain verifies', async () => {
  const orgsBefore = await count('SELECT count(*) FROM organisations');
  const second = await seedSynthetic(testContext(t.db), 500, { batchSize: 300 });
  assert.equal(second.people, 500);
  assert.equal(await count('SELECT count(*) FROM people'), PEOPLE + 500);
  assert.equal(await count('SELECT count(*) FROM organisations'), orgsBefore + second.organisations);
  assert.equal(await count('SELECT count(DISTINCT ni_number) FROM people'), PEOPLE + 500);
  const audit = await t.db.query<{ action: string; n: string }>(
    "SELECT action, count(*)::text AS n FROM audit_events WHERE action = 'synthetic.seeded' GROUP BY action",
  );
  // One event for each run's organisations, and one for each batch of people: (1 + 3) + (1 + 2).
  assert.equal(Number(audit.rows[0]?.n), 7);
  const chain = await verifyAuditChain(t.repos, testSealer.auditKeys);
  assert.ok(chain.ok, JSON.stringify(chain));
});
