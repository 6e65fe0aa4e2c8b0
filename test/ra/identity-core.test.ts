import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { AppError } from '../../src/domain/errors.ts';
import { isNationalId } from '../../src/domain/identity/user-id.ts';
import {
  assignRoleProfile,
  createPosition,
  effectiveRoles,
  endRoleProfile,
  roleProfilesOf,
} from '../../src/services/access.ts';
import { auditTrailOf } from '../../src/services/audit.ts';
import { verifyAuditChain } from '../../src/services/audit-verify.ts';
import { isInSubtree, saveOrganisation, subtreeOf } from '../../src/services/organisations.ts';
import {
  changePersonStatus,
  findDuplicates,
  getPerson,
  registerPerson,
  searchPeople,
} from '../../src/services/people.ts';
import { TestClock, testContext, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';

let t: TestDatabase;
const clock = new TestClock(new Date('2026-11-26T09:00:00Z'));
const ctx = () => testContext(t.db, { clock });

before(async () => {
  t = await createTestDatabase();
  for (const o of [
    { odsCode: 'QWO', name: 'Test ICB', type: 'icb' },
    { odsCode: 'RR8', name: 'Test Trust', type: 'trust', parentOdsCode: 'QWO' },
    { odsCode: 'RR813', name: 'Test Site', type: 'site', parentOdsCode: 'RR8' },
    { odsCode: 'A81001', name: 'Test Practice', type: 'gp_practice', parentOdsCode: 'QWO' },
    { odsCode: 'Y51', name: 'Other ICB', type: 'icb' },
  ]) {
    await saveOrganisation(ctx(), o);
  }
});
after(() => t.close());

async function rejectsWith(p: Promise<unknown>, code: string): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof AppError, `expected AppError ${code}, got ${String(err)}`);
    assert.equal(err.code, code);
    return err;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

let n = 0;
function person(overrides: Record<string, unknown> = {}) {
  n++;
  return {
    givenName: `Given${n}`,
    familyName: `Family${n}`,
    dateOfBirth: '1980-05-17',
    niNumber: `AB${String(100000 + n).padStart(6, '0')}C`,
    email: `person${n}@example.nhs.uk`,
    ...overrides,
  };
}

test(`[${backend}] registering a person gives a new valid 12-digit user ID and an audit event`, async () => {
  const p = await registerPerson(ctx(), person({ familyName: "O'Brien", givenName: 'Zoë' }));
  assert.ok(isNationalId(p.userId));
  assert.equal(p.status, 'active');
  assert.equal(p.familyName, "O'Brien");
  const trail = await auditTrailOf(t.repos, 'person', p.userId);
  assert.equal(trail.length, 1);
  assert.equal(trail[0]!.action, 'person.registered');
  assert.equal(trail[0]!.actor, 'cli:test@host');
  assert.equal(trail[0]!.requestId, 'test-request');
});

test(`[${backend}] names in any script and SQL/HTML-looking text are stored and returned verbatim`, async () => {
  for (const [given, family] of [
    ['Siobhán', 'Nguyễn'],
    ['明', '王'],
    ['Robert', "Robert'); DROP TABLE people;--"],
    ['<b>x</b>', '<script>alert(1)</script>'],
  ] as const) {
    const p = await registerPerson(ctx(), person({ givenName: given, familyName: family }));
    const back = await getPerson(ctx(), p.userId);
    assert.equal(back.familyName, family);
    assert.equal(back.givenName, given);
  }
});

test(`[${backend}] the same NI number is a duplicate, whatever else differs`, async () => {
  const first = await registerPerson(ctx(), person({ niNumber: 'CE111111A' }));
  const err = await rejectsWith(registerPerson(ctx(), person({ niNumber: 'ce 11 11 11 a' })), 'person.duplicate');
  assert.deepEqual((err.details as { candidates: string[] }).candidates, [first.userId]);
  // and cannot be confirmed away: NI numbers are unique
  await rejectsWith(
    registerPerson(ctx(), person({ niNumber: 'CE111111A' }), { confirmedDifferentFrom: [first.userId] }),
    'person.duplicate',
  );
});

test(`[${backend}] the same normalised name and date of birth is a duplicate until the RA confirms a different person`, async () => {
  const first = await registerPerson(
    ctx(),
    person({ givenName: 'Mary Ann', familyName: "O'Neill", dateOfBirth: '1970-01-02', niNumber: null }),
  );
  const candidates = await findDuplicates(
    ctx(),
    person({ givenName: 'mary', familyName: 'ONeill', dateOfBirth: '1970-01-02', niNumber: null }),
  );
  assert.deepEqual(
    candidates.map((c) => c.userId),
    [first.userId],
  );
  await rejectsWith(
    registerPerson(
      ctx(),
      person({ givenName: 'Mary', familyName: 'oneill', dateOfBirth: '1970-01-02', niNumber: null }),
    ),
    'person.duplicate',
  );
  const second = await registerPerson(
    ctx(),
    person({ givenName: 'Mary', familyName: 'oneill', dateOfBirth: '1970-01-02', niNumber: null }),
    { confirmedDifferentFrom: [first.userId] },
  );
  assert.notEqual(second.userId, first.userId);
  const trail = await auditTrailOf(t.repos, 'person', second.userId);
  assert.match(trail[0]!.reason ?? '', new RegExp(`confirmed different from ${first.userId}`));
});

test(`[${backend}] two concurrent registrations of the same person: one wins, the other gets person.duplicate`, async () => {
  for (const ni of ['HJ222222B', null]) {
    const same = person({ givenName: 'Concurrent', familyName: `Twin${ni ?? 'x'}`, niNumber: ni });
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => registerPerson(ctx(), same)));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r) => r.status === 'rejected');
    assert.equal(ok.length, 1, `exactly one wins (ni ${ni})`);
    for (const f of failed) assert.equal(((f as PromiseRejectedResult).reason as AppError).code, 'person.duplicate');
  }
});

test(`[${backend}] bad person input is refused with catalogued codes and nothing is stored`, async () => {
  const { rows: before } = await t.db.query<{ n: string }>('SELECT count(*)::text AS n FROM people');
  await rejectsWith(registerPerson(ctx(), person({ niNumber: 'AB123456E' })), 'person.invalid_ni_number');
  await rejectsWith(registerPerson(ctx(), person({ dateOfBirth: '2025-02-31' })), 'person.invalid_date_of_birth');
  await rejectsWith(registerPerson(ctx(), person({ dateOfBirth: '2027-01-01' })), 'person.invalid_date_of_birth');
  await rejectsWith(registerPerson(ctx(), person({ givenName: '' })), 'request.invalid');
  await rejectsWith(registerPerson(ctx(), person({ familyName: 'x'.repeat(101) })), 'request.invalid');
  await rejectsWith(registerPerson(ctx(), { ...person(), givenName: 42 }), 'request.invalid');
  await rejectsWith(registerPerson(ctx(), null), 'request.invalid');
  await rejectsWith(
    registerPerson(ctx(), testContext(t.db, { allowExampleNiPrefix: false }) && person({ niNumber: 'ZZ123456A' })),
    'person.invalid_ni_number',
  );
  const { rows: afterRows } = await t.db.query<{ n: string }>('SELECT count(*)::text AS n FROM people');
  assert.equal(afterRows[0]!.n, before[0]!.n);
});

test(`[${backend}] person search by user ID, NI number, email and name prefix + date of birth, with paging`, async () => {
  const people = [];
  for (let i = 0; i < 5; i++) {
    people.push(
      await registerPerson(
        ctx(),
        person({ familyName: `Searchable`, givenName: `Sam${i}`, dateOfBirth: '1991-03-04' }),
      ),
    );
  }
  const byId = await searchPeople(ctx(), { userId: people[0]!.userId });
  assert.deepEqual(
    byId.people.map((p) => p.userId),
    [people[0]!.userId],
  );
  const byNi = await searchPeople(ctx(), { niNumber: people[1]!.niNumber!.toLowerCase() });
  assert.deepEqual(
    byNi.people.map((p) => p.userId),
    [people[1]!.userId],
  );
  const byEmail = await searchPeople(ctx(), { email: people[2]!.email!.toUpperCase() });
  assert.deepEqual(
    byEmail.people.map((p) => p.userId),
    [people[2]!.userId],
  );
  const page1 = await searchPeople(ctx(), { familyName: 'search', dateOfBirth: '1991-03-04' }, { limit: 3 });
  assert.equal(page1.people.length, 3);
  assert.ok(page1.next);
  const page2 = await searchPeople(
    ctx(),
    { familyName: 'search', dateOfBirth: '1991-03-04' },
    { limit: 3, after: page1.next },
  );
  assert.equal(page2.people.length, 2);
  assert.equal(page2.next, null);
  assert.deepEqual(
    new Set([...page1.people, ...page2.people].map((p) => p.userId)),
    new Set(people.map((p) => p.userId)),
  );
  const byGiven = await searchPeople(ctx(), { familyName: 'SEARCHABLE', givenName: 'sam3' });
  assert.deepEqual(
    byGiven.people.map((p) => p.userId),
    [people[3]!.userId],
  );
  // punctuation (LIKE wildcards included) is folded away like any other: it cannot widen a search
  await rejectsWith(searchPeople(ctx(), { familyName: '%%_' }), 'request.invalid');
  await rejectsWith(searchPeople(ctx(), { userId: '123' }), 'person.invalid_user_id');
  await rejectsWith(searchPeople(ctx(), { familyName: 'S' }), 'request.invalid');
  await rejectsWith(searchPeople(ctx(), { familyName: 'Search' }, { after: 'garbage!' }), 'request.invalid');
});

test(`[${backend}] organisations form a hierarchy and an RA's scope is its subtree`, async () => {
  assert.deepEqual(await subtreeOf(t.repos, 'QWO'), ['A81001', 'QWO', 'RR8', 'RR813']);
  assert.ok(await isInSubtree(t.repos, 'QWO', 'RR813'));
  assert.ok(!(await isInSubtree(t.repos, 'RR8', 'A81001')));
  assert.ok(!(await isInSubtree(t.repos, 'Y51', 'RR8')));
  await rejectsWith(
    saveOrganisation(ctx(), { odsCode: 'QWO', name: 'Loop', type: 'icb', parentOdsCode: 'RR813' }, { upsert: true }),
    'organisation.hierarchy_cycle',
  );
  await rejectsWith(saveOrganisation(ctx(), { odsCode: 'RR8', name: 'Again' }), 'organisation.exists');
  await rejectsWith(
    saveOrganisation(ctx(), { odsCode: 'ZZ9', name: 'Orphan', parentOdsCode: 'NOPE1' }),
    'organisation.parent_not_found',
  );
  for (const bad of ['R1', 'RR8-1', 'ABCDEFG', '', 'R R8', 'rr8;drop']) {
    await rejectsWith(saveOrganisation(ctx(), { odsCode: bad, name: 'Bad' }), 'organisation.invalid_ods_code');
  }
  const lower = await saveOrganisation(ctx(), {
    odsCode: ' f1234 ',
    name: 'Pharmacy',
    type: 'pharmacy',
    parentOdsCode: 'qwo',
  });
  assert.equal(lower.organisation.odsCode, 'F1234');
  assert.equal(lower.organisation.parentOdsCode, 'QWO');
  const again = await saveOrganisation(
    ctx(),
    { odsCode: 'F1234', name: 'Pharmacy', type: 'pharmacy', parentOdsCode: 'QWO' },
    { upsert: true },
  );
  assert.equal(again.outcome, 'unchanged');
});

test(`[${backend}] positions accept only codes in the national catalogue`, async () => {
  const pos = await createPosition(ctx(), 'RR8', {
    name: 'Ward nurse',
    assignable: true,
    jobRoles: ['R8001'],
    activities: ['B0825'],
  });
  assert.equal(pos.assignable, true);
  await rejectsWith(createPosition(ctx(), 'RR8', { name: 'Bad', jobRoles: ['R9999'] }), 'rbac.unknown_code');
  await rejectsWith(
    createPosition(ctx(), 'RR8', { name: 'Bad', jobRoles: ['R8001'], activities: ['B9999'] }),
    'rbac.unknown_code',
  );
  await rejectsWith(createPosition(ctx(), 'RR8', { name: 'Bad', jobRoles: ['X8001'] }), 'request.invalid');
  await rejectsWith(createPosition(ctx(), 'RR8', { name: 'Bad', jobRoles: [] }), 'request.invalid');
  await rejectsWith(createPosition(ctx(), 'NOPE1', { name: 'Bad', jobRoles: ['R8001'] }), 'organisation.not_found');
  const { rows } = await t.db.query<{ n: string }>("SELECT count(*)::text AS n FROM positions WHERE name = 'Bad'");
  assert.equal(rows[0]!.n, '0');
});

test(`[${backend}] a role profile is effective only between its dates, by the clock, with no restart`, async () => {
  const c = new TestClock(new Date('2026-11-26T09:00:00Z'));
  const local = testContext(t.db, { clock: c });
  const p = await registerPerson(local, person());
  const nurse = await createPosition(local, 'RR8', { name: 'Nurse', jobRoles: ['R8001'], activities: ['B0825'] });
  const gp = await createPosition(local, 'A81001', { name: 'GP', jobRoles: ['R8000', 'R0260'] });
  const rp1 = await assignRoleProfile(local, {
    userId: p.userId,
    positionId: nurse.positionId,
    startDate: '2026-11-01',
    endDate: '2026-11-30',
  });
  const rp2 = await assignRoleProfile(local, { userId: p.userId, positionId: gp.positionId, startDate: '2026-12-01' });
  assert.ok(isNationalId(rp1.personRoleId) && isNationalId(rp1.personOrgId));
  assert.notEqual(rp1.personOrgId, rp2.personOrgId);

  let eff = await effectiveRoles(t.repos, p.userId, c.now());
  assert.deepEqual(
    eff.map((r) => r.personRoleId),
    [rp1.personRoleId],
  );
  const nurseRole = eff[0]!;
  assert.equal(nurseRole.jobRoles[0]!.roleCode, 'S8000:G8000:R8001');
  assert.equal(nurseRole.jobRoles[0]!.roleName, '"Clinical":"Clinical Provision":"Nurse Access Role"');
  assert.deepEqual(nurseRole.activityCodes, ['B0825']);
  assert.ok(nurseRole.effectiveActivities.includes('B0820'), 'B0825 includes B0820');

  c.set('2026-11-30T23:59:00Z'); // still 30 Nov in London
  eff = await effectiveRoles(t.repos, p.userId, c.now());
  assert.deepEqual(
    eff.map((r) => r.personRoleId),
    [rp1.personRoleId],
  );
  c.set('2026-12-01T00:00:01Z');
  eff = await effectiveRoles(t.repos, p.userId, c.now());
  assert.deepEqual(
    eff.map((r) => r.personRoleId),
    [rp2.personRoleId],
  );

  await endRoleProfile(local, rp2.personRoleId, 'moved on');
  assert.deepEqual(await effectiveRoles(t.repos, p.userId, c.now()), []);
  await rejectsWith(endRoleProfile(local, rp2.personRoleId, 'again'), 'role_profile.already_ended');
  assert.equal((await roleProfilesOf(local, p.userId)).length, 2);
});

test(`[${backend}] a suspended or departed person has no effective roles and gets no new ones`, async () => {
  const p = await registerPerson(ctx(), person());
  const pos = await createPosition(ctx(), 'RR8', { name: 'Clerk', jobRoles: ['R8010'] });
  await assignRoleProfile(ctx(), { userId: p.userId, positionId: pos.positionId, startDate: '2026-01-01' });
  assert.equal((await effectiveRoles(t.repos, p.userId, clock.now())).length, 1);
  await changePersonStatus(ctx(), p.userId, 'suspended', 'investigation');
  assert.equal((await effectiveRoles(t.repos, p.userId, clock.now())).length, 0);
  await rejectsWith(
    assignRoleProfile(ctx(), { userId: p.userId, positionId: pos.positionId, startDate: '2026-01-01' }),
    'role_profile.person_inactive',
  );
  await changePersonStatus(ctx(), p.userId, 'deceased', 'reported');
  await rejectsWith(changePersonStatus(ctx(), p.userId, 'active', 'mistake'), 'person.invalid_status_change');
  await rejectsWith(
    assignRoleProfile(ctx(), {
      userId: p.userId,
      positionId: pos.positionId,
      startDate: '2026-02-01',
      endDate: '2026-01-01',
    }),
    'role_profile.invalid_dates',
  );
  await rejectsWith(
    assignRoleProfile(ctx(), { userId: '555073103109', positionId: pos.positionId, startDate: '2026-01-01' }),
    'person.invalid_user_id',
  );
});

test(`[${backend}] every change above is in an audit chain that verifies`, async () => {
  const res = await verifyAuditChain(t.repos, testSealer.auditKeys);
  assert.ok(res.ok, JSON.stringify(res));
  assert.ok(res.events > 20);
});

test(`[${backend}] a person actor cannot change anything (RA powers arrive with RA roles)`, async () => {
  const p = await registerPerson(ctx(), person());
  const asPerson = testContext(t.db, { actor: { kind: 'person', id: p.userId, userId: p.userId } });
  await rejectsWith(registerPerson(asPerson, person()), 'auth.forbidden');
  await rejectsWith(changePersonStatus(asPerson, p.userId, 'left', 'self'), 'auth.forbidden');
  assert.equal((await getPerson(asPerson, p.userId)).userId, p.userId);
});
