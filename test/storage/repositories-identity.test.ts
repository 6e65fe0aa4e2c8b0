import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { isEffectiveOn } from '../../src/domain/access/role-profile.ts';
import { assignRoleProfile, createPosition, effectiveRoles } from '../../src/services/access.ts';
import { raManagers } from '../../src/services/bootstrap.ts';
import { findOrganisation, isInSubtree, subtreeOf } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { repositoriesOn } from '../../src/storage/repositories/index.ts';
import { testContext } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';
import { saveTestOrganisations } from '../support/organisations.ts';

/*
 * The identity/RA repositories (issue 16), on PGlite and PostgreSQL alike; and "role profile in effect" defined once
 * (role_profile_in_effect, migration 0023): claims, CIS1, reports and bootstrap read the same answer for a profile
 * starting tomorrow, one ended yesterday (its end not yet run by the job), one ending today and one open-ended.
 */
let t: TestDatabase;
const TODAY = '2026-11-26'; // the test clock's UK date
const who = {} as Record<'startsTomorrow' | 'endedYesterday' | 'endsToday' | 'openEnded', string>;

before(async () => {
  t = await createTestDatabase();
  const ctx = testContext(t.db);
  await saveTestOrganisations(ctx);
  const position = await createPosition(ctx, 'RR8', { name: 'RA Manager', jobRoles: ['R5080'] });
  const dates = {
    startsTomorrow: ['2026-11-27', null],
    endedYesterday: ['2026-11-01', '2026-11-25'],
    endsToday: ['2026-11-01', TODAY],
    openEnded: [TODAY, null],
  } as const;
  let n = 0;
  for (const [key, [start, end]] of Object.entries(dates) as [keyof typeof who, readonly [string, string | null]][]) {
    n++;
    const person = await registerPerson(ctx, {
      givenName: `Given${n}`,
      familyName: key,
      dateOfBirth: '1982-05-17',
      email: `${key.toLowerCase()}@example.nhs.uk`,
      identityAssuranceLevel: 3,
    });
    const rp = await assignRoleProfile(ctx, {
      userId: person.userId,
      positionId: position.positionId,
      startDate: TODAY,
    });
    // The dates set in the row itself: an end date in the past is what the nightly job has not ended yet.
    await t.db.query('UPDATE role_profiles SET start_date = $2, end_date = $3 WHERE person_roleid = $1', [
      rp.personRoleId,
      start,
      end,
    ]);
    who[key] = person.userId;
  }
});
after(() => t.close());

const IN_EFFECT = ['endsToday', 'openEnded'];

test(`[${backend}] the database's rule is the domain's: role_profile_in_effect agrees with isEffectiveOn`, async () => {
  const cases = [
    { status: 'active', startDate: '2026-11-27', endDate: null },
    { status: 'active', startDate: '2026-11-26', endDate: null },
    { status: 'active', startDate: '2026-11-01', endDate: '2026-11-25' },
    { status: 'active', startDate: '2026-11-01', endDate: '2026-11-26' },
    { status: 'active', startDate: '2026-11-26', endDate: '2026-11-26' },
    { status: 'ended', startDate: '2026-11-01', endDate: null },
    { status: 'ended', startDate: '2026-11-01', endDate: '2026-12-31' },
  ] as const;
  for (const c of cases) {
    const { rows } = await t.db.query<{ v: boolean }>('SELECT role_profile_in_effect($1, $2, $3, $4) AS v', [
      c.status,
      c.startDate,
      c.endDate,
      TODAY,
    ]);
    assert.equal(rows[0]!.v, isEffectiveOn(c, TODAY), JSON.stringify(c));
  }
});

test(`[${backend}] every database function that asks "in effect" calls the one definition`, async () => {
  const { rows } = await t.db.query<{ name: string; src: string }>(
    `SELECT proname AS name, prosrc AS src FROM pg_proc
     WHERE proname IN ('effective_role_rows', 'cis1_ticket_state', 'cis1_ticket_liveness')
       AND pronamespace = current_schema()::regnamespace`,
  );
  assert.equal(rows.length, 3);
  for (const r of rows) {
    assert.match(r.src, /role_profile_in_effect\(rp\.status, rp\.start_date, rp\.end_date, p_day\)/, r.name);
    assert.doesNotMatch(r.src, /rp\.end_date >= p_day/, `${r.name} writes the rule out again`);
  }
});

test(`[${backend}] claims, reports and bootstrap see the same profiles in effect today`, async () => {
  const repos = repositoriesOn(t.db);
  const ctx = testContext(t.db);
  const now = ctx.clock.now();
  // Claims (effective_role_rows, through effectiveRoles).
  const claims: string[] = [];
  for (const [key, userId] of Object.entries(who)) {
    if ((await effectiveRoles(t.repos, userId, now)).length > 0) claims.push(key);
  }
  assert.deepEqual(claims.sort(), IN_EFFECT);
  // Reports: active people with no role profile in effect.
  const without = await repos.reports.peopleWithoutRoles({ scope: null, day: TODAY, limit: 100, offset: 0 });
  const keyOf = new Map(Object.entries(who).map(([k, v]) => [v, k]));
  assert.deepEqual(
    without
      .map((p) => keyOf.get(p.userId))
      .filter(Boolean)
      .sort(),
    ['endedYesterday', 'startsTomorrow'],
  );
  // Bootstrap: who the RA Managers are.
  assert.deepEqual(
    (await raManagers(ctx))
      .map((m) => keyOf.get(m.userId))
      .filter(Boolean)
      .sort(),
    IN_EFFECT,
  );
  // One profile at a time, as the repository asks it.
  for (const [key, userId] of Object.entries(who)) {
    const { rows } = await t.db.query<{ id: string }>(
      'SELECT person_roleid AS id FROM role_profiles WHERE user_id = $1',
      [userId],
    );
    assert.equal(await repos.roleProfiles.isInEffect(rows[0]!.id, TODAY), IN_EFFECT.includes(key), key);
  }
  // Tomorrow the profile ending today is no longer in effect, and the one starting tomorrow is.
  assert.equal(
    (await repos.reports.peopleWithoutRoles({ scope: null, day: '2026-11-27', limit: 100, offset: 0 })).some(
      (p) => p.userId === who.startsTomorrow,
    ),
    false,
  );
  assert.ok(
    (await repos.reports.peopleWithoutRoles({ scope: null, day: '2026-11-27', limit: 100, offset: 0 })).some(
      (p) => p.userId === who.endsToday,
    ),
  );
});

test(`[${backend}] organisations: find, subtree and hierarchy through the repository`, async () => {
  const repos = repositoriesOn(t.db);
  assert.equal((await repos.organisations.findOrganisation('RR813'))?.parentOdsCode, 'RR8');
  assert.equal(await findOrganisation(t.repos, 'NOPE1'), undefined);
  assert.deepEqual(await subtreeOf(repos, 'QWO'), ['QWO', 'RR8', 'RR813']);
  assert.equal(await isInSubtree(t.repos, 'QWO', 'RR813'), true);
  assert.equal(await repos.organisations.isInSubtree('RR8', 'RX1'), false);
});

test(`[${backend}] catalogue, people and demo statements through their repositories`, async () => {
  const repos = repositoriesOn(t.db);
  const version = await repos.catalogue.loadedCatalogueVersion();
  assert.ok(version, 'the bundled catalogue is loaded');
  assert.equal(await repos.catalogue.checksumOfVersion('0.0.0-none'), undefined);
  assert.equal((await repos.catalogue.latestPublishedVersion())?.version, version);
  assert.deepEqual(await repos.catalogue.unknownCodes('rbac_job_roles', ['R5080', 'R0000X']), ['R0000X']);
  const listed = await repos.catalogue.listCatalogue();
  assert.equal(listed.version, version);
  assert.ok(listed.jobRoles.some((r) => r.code === 'R5080'));
  assert.equal((await repos.catalogue.catalogueLabels(version)).version, version);
  assert.equal(await repos.demo.isDemoInstallation(), false);
  assert.equal(await repos.demo.demoOrganisationExists('NOPE1'), false);
  assert.equal(await repos.demo.demoOrganisationExists('RR8'), true);
  await repos.people.updateNames(
    who.openEnded,
    { title: null, givenName: 'Ola', middleNames: null, familyName: 'Nordmann', preferredName: null },
    { familyKey: 'NORDMANN', givenKey: 'OLA' },
    new Date('2026-11-26T10:00:00Z'),
  );
  const renamed = await repos.people.findPersonByUserId(who.openEnded);
  assert.equal(renamed?.familyName, 'Nordmann');
  assert.equal(await repos.demo.activePersonWithNiNumber('QQ000000Z'), undefined);
});

test(`[${backend}] requests: insert, read, list, close, with their history`, async () => {
  const repos = repositoriesOn(t.db);
  const [rp] = await repos.roleProfiles.roleProfilesOfPerson(who.openEnded);
  const now = new Date('2026-11-26T10:00:00Z');
  const created = await repos.requests.insertRequest(
    {
      userId: who.openEnded,
      positionId: rp!.positionId,
      odsCode: 'RR8',
      startDate: '2026-12-01',
      endDate: null,
      requestedBy: 'cli:test@host',
      reason: 'a second post',
      expiresAt: new Date('2026-12-26T10:00:00Z'),
    },
    now,
  );
  assert.equal(created.status, 'pending');
  assert.equal(created.startDate, '2026-12-01');
  await repos.requests.addHistory(
    { requestId: created.requestId, from: null, to: 'pending', changedBy: 'cli:test@host', reason: 'a second post' },
    now,
  );
  assert.deepEqual((await repos.requests.selectRequest(created.requestId))?.requestId, created.requestId);
  assert.deepEqual(
    (await repos.requests.listRequests({ status: 'pending', odsCode: 'RR8', limit: 10 })).map((r) => r.requestId),
    [created.requestId],
  );
  assert.deepEqual(await repos.requests.listRequests({ status: 'pending', odsCode: 'RX1', limit: 10 }), []);
  assert.equal((await repos.requests.expiredPendingForUpdate(now, 10)).length, 0);
  const closed = await repos.requests.markClosed(
    created.requestId,
    { to: 'withdrawn', decidedBy: 'cli:test@host', reason: 'not needed' },
    now,
  );
  assert.equal(closed.status, 'withdrawn');
  assert.equal(closed.version, created.version + 1);
  assert.deepEqual(
    (await repos.requests.historyOf(created.requestId)).map((h) => h.toStatus),
    ['pending'],
  );
  assert.deepEqual(await repos.requests.pendingRequestsOfForUpdate(who.openEnded), []);
});
