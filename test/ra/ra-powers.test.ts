import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Position } from '../../src/domain/access/role-profile.ts';
import { AppError } from '../../src/domain/errors.ts';
import {
  type Actor,
  isAllowed,
  type PersonFacts,
  type PositionFacts,
  type RaPower,
  raRolesOf,
  type Statement,
  type Target,
} from '../../src/domain/policy.ts';
import { assignRoleProfile, createPosition, endRoleProfile } from '../../src/services/access.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { changePersonStatus, registerPerson } from '../../src/services/people.ts';
import { personActorWithPowers } from '../../src/services/ra-powers.ts';
import { personFacts } from '../../src/services/targets.ts';
import { TestClock, testContext } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';

/*
 * RA powers end to end (DOMAIN §5): organisations, positions carrying the RA job roles and activities, people holding
 * them through role profiles; then `personActorWithPowers` (from the database, at the clock's time) and `isAllowed`.
 *
 *   QWO (ICB) ─ RR8 (trust) ─ RR813 (site)        Y51 (another ICB) ─ RX1 (trust)
 *            └ A81001 (GP practice)
 */
let t: TestDatabase;
const clock = new TestClock(new Date('2026-11-26T09:00:00Z'));
const ctx = () => testContext(t.db, { clock });
const actorOf = (userId: string): Promise<Actor> => personActorWithPowers(t.repos, userId, clock.now());

let n = 0;
async function newPerson(): Promise<string> {
  n++;
  const p = await registerPerson(ctx(), {
    givenName: `Ra${n}`,
    familyName: `Powers${n}`,
    dateOfBirth: '1979-03-14',
    niNumber: `AB${String(200000 + n).padStart(6, '0')}C`,
    email: `ra${n}@example.nhs.uk`,
  });
  return p.userId;
}

async function personIn(position: Position, dates: { startDate?: string; endDate?: string } = {}): Promise<string> {
  const userId = await newPerson();
  await assignRoleProfile(ctx(), { userId, positionId: position.positionId, startDate: '2026-01-01', ...dates });
  return userId;
}

/** A person as RA services load them for the policy: who they are, where they work, what access they hold. */
async function facts(userId: string): Promise<PersonFacts> {
  return personFacts(t.repos, clock, userId);
}
async function personTarget(userId: string): Promise<Target & { kind: 'person' }> {
  return { kind: 'person', person: await facts(userId) };
}
const org = (odsCode: string): Target => ({ kind: 'organisation', odsCode });
const positionAt = (odsCode: string, more: Partial<PositionFacts> = {}): PositionFacts => ({
  odsCode,
  assignable: false,
  appoints: null,
  ...more,
});

const positions: Record<string, Position> = {};
const ids: Record<string, string> = {};

before(async () => {
  t = await createTestDatabase();
  for (const o of [
    { odsCode: 'QWO', name: 'Test ICB', type: 'icb' },
    { odsCode: 'RR8', name: 'Test Trust', type: 'trust', parentOdsCode: 'QWO' },
    { odsCode: 'RR813', name: 'Test Site', type: 'site', parentOdsCode: 'RR8' },
    { odsCode: 'A81001', name: 'Test Practice', type: 'gp_practice', parentOdsCode: 'QWO' },
    { odsCode: 'Y51', name: 'Other ICB', type: 'icb' },
    { odsCode: 'RX1', name: 'Other Trust', type: 'trust', parentOdsCode: 'Y51' },
  ]) {
    await saveOrganisation(ctx(), o);
  }
  const define = async (
    key: string,
    ods: string,
    jobRoles: string[],
    activities: string[] = [],
    assignable = false,
  ) => {
    positions[key] = await createPosition(ctx(), ods, { name: key, jobRoles, activities, assignable });
  };
  await define('manager', 'QWO', ['R5080']);
  await define('advanced', 'RR8', ['R5090'], ['B0272']);
  await define('agent', 'RR8', ['R5090']);
  await define('sponsor', 'RR8', ['R8000'], ['B1300']);
  await define('idChecker', 'RR8', ['R8010'], ['B0267']);
  await define('lsa', 'RR8', ['R8010'], ['B0264']);
  await define('nurse', 'RR8', ['R8001'], [], true);
  await define('siteNurse', 'RR813', ['R8001'], [], true);
  await define('siteClerk', 'RR813', ['R8010']);
  await define('otherNurse', 'RX1', ['R8001'], [], true);
  await define('otherAgent', 'RX1', ['R5090']);
  for (const key of [
    'manager',
    'advanced',
    'agent',
    'sponsor',
    'idChecker',
    'lsa',
    'nurse',
    'siteNurse',
    'otherNurse',
  ]) {
    ids[key] = await personIn(positions[key]!);
  }
});
after(() => t.close());

test(`[${backend}] every RA role a profile gives becomes a power, scoped to that profile's subtree`, async () => {
  const expected: Record<string, string[]> = {
    manager: ['ra_manager'],
    advanced: ['advanced_ra_agent'],
    agent: ['ra_agent'],
    sponsor: ['sponsor'],
    idChecker: ['id_checker'],
    lsa: ['local_smartcard_administrator'],
    nurse: [],
  };
  for (const [key, roles] of Object.entries(expected)) {
    const actor = await actorOf(ids[key]!);
    assert.deepEqual(raRolesOf(actor), roles, key);
  }
  const manager = await actorOf(ids.manager!);
  assert.ok(manager.kind === 'person');
  assert.deepEqual(manager.powers, [
    {
      jobRoles: ['R5080'],
      activities: ['B0002', 'B0264', 'B0267', 'B0272', 'B0274', 'B1300'],
      odsCode: 'QWO',
      odsCodes: ['A81001', 'QWO', 'RR8', 'RR813'],
    },
  ] satisfies RaPower[]);
  const nurse = await actorOf(ids.nurse!);
  assert.ok(nurse.kind === 'person');
  assert.deepEqual(nurse.powers, [], 'a clinical profile gives no RA power');
});

/*
 * What each RA may do to a person at the site below the trust (in scope for all of them: the manager's profile is at
 * the ICB, everyone else's at the trust), and to a person at a trust in the other ICB (in scope for none).
 * Columns: M manager, A advanced agent, R agent, S sponsor, I ID checker, L smartcard administrator, N nurse.
 */
const columns = ['manager', 'advanced', 'agent', 'sponsor', 'idChecker', 'lsa', 'nurse'] as const;
type PersonTargetOf = Target & { kind: 'person' };
const probes: { statement: Statement; target: (p: PersonTargetOf, ods: string) => Target; expect: string }[] = [
  { statement: 'person:read', target: (p) => p, expect: 'MARSIL.' },
  { statement: 'person:verify_identity', target: (p) => p, expect: 'MAR.I..' },
  { statement: 'person:change_status', target: (p) => p, expect: 'MAR....' },
  { statement: 'card:issue', target: (p) => p, expect: 'MAR....' },
  { statement: 'card:unlock', target: (p) => p, expect: 'MAR..L.' },
  { statement: 'card:renew', target: (p) => p, expect: 'MAR..L.' },
  {
    statement: 'request:create',
    target: (p, ods) => ({ kind: 'position', person: p.person, position: positionAt(ods) }),
    expect: 'MARS...',
  },
  {
    statement: 'request:approve',
    target: (p, ods) => ({
      kind: 'request',
      person: p.person,
      position: positionAt(ods),
      requestedBy: '999999999999',
      requestedOnBehalfOf: null,
    }),
    expect: 'MAR....',
  },
  {
    statement: 'role_profile:assign',
    target: (p, ods) => ({ kind: 'position', person: p.person, position: positionAt(ods, { assignable: true }) }),
    expect: 'MARS...',
  },
  {
    statement: 'role_profile:assign',
    target: (p, ods) => ({ kind: 'position', person: p.person, position: positionAt(ods) }),
    expect: 'MAR....',
  },
  {
    statement: 'role_profile:assign',
    target: (p, ods) => ({ kind: 'position', person: p.person, position: positionAt(ods, { appoints: 'ra_staff' }) }),
    expect: 'MA.....',
  },
  {
    statement: 'role_profile:assign',
    target: (p, ods) => ({ kind: 'position', person: p.person, position: positionAt(ods, { appoints: 'ra_manager' }) }),
    expect: 'M......',
  },
  {
    statement: 'role_profile:end',
    target: (p, ods) => ({ kind: 'role_profile', person: p.person, profile: positionAt(ods) }),
    expect: 'MARS...',
  },
  {
    statement: 'role_profile:end',
    target: (p, ods) => ({
      kind: 'role_profile',
      person: p.person,
      profile: positionAt(ods, { appoints: 'ra_manager' }),
    }),
    expect: 'M......',
  },
  { statement: 'position:create', target: (_p, ods) => org(ods), expect: 'MA.....' },
  { statement: 'report:view', target: (_p, ods) => org(ods), expect: 'MAR....' },
  { statement: 'audit:read', target: (_p, ods) => org(ods), expect: 'M......' },
];

test(`[${backend}] the RA role matrix holds end to end, in scope (a site below the trust) and out of scope (another ICB)`, async () => {
  const site = await personTarget(ids.siteNurse!);
  const other = await personTarget(ids.otherNurse!);
  assert.deepEqual(site.person.odsCodes, ['RR813']);
  assert.deepEqual(other.person.odsCodes, ['RX1']);
  const failures: string[] = [];
  for (const [i, key] of columns.entries()) {
    const actor = await actorOf(ids[key]!);
    for (const probe of probes) {
      const want = probe.expect[i] !== '.';
      const inScope = isAllowed(actor, probe.statement, probe.target(site, 'RR813'));
      const outOfScope = isAllowed(actor, probe.statement, probe.target(other, 'RX1'));
      if (inScope !== want) failures.push(`${key} ${probe.statement} ${probe.expect} at RR813: got ${inScope}`);
      if (outOfScope) failures.push(`${key} ${probe.statement} at RX1 (other ICB): allowed`);
    }
  }
  assert.deepEqual(failures, []);
});

test(`[${backend}] reach is the subtree below the profile's organisation, never above or beside it`, async () => {
  const agent = await actorOf(ids.agent!); // at the trust RR8
  const manager = await actorOf(ids.manager!); // at the ICB QWO
  const trustNurse = await personIn(positions.nurse!);
  const gp = await newPerson();
  await assignRoleProfile(ctx(), {
    userId: gp,
    positionId: (await createPosition(ctx(), 'A81001', { name: 'GP', jobRoles: ['R0260'] })).positionId,
    startDate: '2026-01-01',
  });
  assert.equal(isAllowed(agent, 'card:issue', await personTarget(trustNurse)), true);
  assert.equal(isAllowed(agent, 'card:issue', await personTarget(gp)), false, 'a practice beside the trust');
  assert.equal(isAllowed(manager, 'card:issue', await personTarget(gp)), true, 'the ICB reaches the practice');
  assert.equal(isAllowed(agent, 'position:create', org('QWO')), false);
  assert.equal(isAllowed(manager, 'organisation:update', org('RR813')), true);
  assert.equal(isAllowed(manager, 'organisation:update', org('Y51')), false);
  assert.equal(isAllowed(manager, 'organisation:create', org('RR814')), false, 'operator only');
  assert.equal(isAllowed(manager, 'catalogue:load', { kind: 'national' }), false, 'operator only');
});

test(`[${backend}] a person working in several organisations is in scope if any of them is in reach`, async () => {
  const both = await personIn(positions.otherNurse!);
  await assignRoleProfile(ctx(), {
    userId: both,
    positionId: positions.siteClerk!.positionId,
    startDate: '2026-01-01',
  });
  const target = await personTarget(both);
  assert.deepEqual(target.person.odsCodes, ['RR813', 'RX1']);
  assert.equal(isAllowed(await actorOf(ids.agent!), 'card:issue', target), true);
  const otherAgent = await actorOf(await personIn(positions.otherAgent!));
  assert.equal(isAllowed(otherAgent, 'card:issue', target), true);
  assert.equal(isAllowed(otherAgent, 'card:issue', await personTarget(ids.siteNurse!)), false);
});

test(`[${backend}] a new starter with no organisation may be registered, verified and requested, nothing more`, async () => {
  const starter = await personTarget(await newPerson());
  assert.deepEqual(starter.person.odsCodes, []);
  const agent = await actorOf(ids.agent!);
  for (const s of ['person:read', 'person:change_name', 'person:verify_identity'] as const) {
    assert.equal(isAllowed(agent, s, starter), true, s);
  }
  assert.equal(isAllowed(agent, 'person:create', { kind: 'national' }), true);
  assert.equal(
    isAllowed(agent, 'request:create', { kind: 'position', person: starter.person, position: positionAt('RR8') }),
    true,
    'a first position in their organisation',
  );
  for (const s of ['card:issue', 'person:change_status', 'role_profile:assign', 'authenticator:enrol'] as const) {
    assert.equal(isAllowed(agent, s, starter), false, s);
  }
  assert.equal(isAllowed(await actorOf(ids.lsa!), 'person:create', { kind: 'national' }), false);
  assert.equal(isAllowed(await actorOf(ids.idChecker!), 'person:verify_identity', starter), true);
});

test(`[${backend}] segregation of duties: no RA acts on their own record, approves their own request or appoints above their role`, async () => {
  const manager = await actorOf(ids.manager!);
  const self = await personTarget(ids.manager!);
  assert.equal(isAllowed(manager, 'person:read', self), true);
  for (const s of ['card:issue', 'person:update', 'person:change_status'] as const) {
    assert.equal(isAllowed(manager, s, self), false, s);
  }
  assert.equal(
    isAllowed(manager, 'role_profile:assign', { kind: 'position', person: self.person, position: positionAt('QWO') }),
    false,
  );
  assert.equal(
    isAllowed(manager, 'role_profile:end', { kind: 'role_profile', person: self.person, profile: positionAt('QWO') }),
    false,
  );
  const site = await personTarget(ids.siteNurse!);
  const request = (requestedBy: string, appoints: PositionFacts['appoints'] = null): Target => ({
    kind: 'request',
    person: site.person,
    position: positionAt('RR813', { appoints }),
    requestedBy,
    requestedOnBehalfOf: null,
  });
  assert.equal(isAllowed(manager, 'request:approve', request(ids.manager!)), false);
  assert.equal(isAllowed(manager, 'request:approve', request(ids.sponsor!)), true);
  const advanced = await actorOf(ids.advanced!);
  assert.equal(isAllowed(advanced, 'request:approve', request(ids.sponsor!, 'ra_manager')), false);
  assert.equal(isAllowed(advanced, 'request:approve', request(ids.sponsor!, 'ra_staff')), true);
  assert.equal(isAllowed(manager, 'request:approve', request(ids.sponsor!, 'ra_manager')), true);
});

test(`[${backend}] the services ask the same policy: an advanced agent creates positions in reach, an agent cannot`, async () => {
  const as = async (key: string) => testContext(t.db, { clock, actor: await actorOf(ids[key]!) });
  const created = await createPosition(await as('advanced'), 'RR813', { name: 'Site porter', jobRoles: ['R8008'] });
  assert.equal(created.odsCode, 'RR813');
  for (const [key, ods] of [
    ['agent', 'RR813'],
    ['advanced', 'RX1'],
    ['sponsor', 'RR8'],
  ] as const) {
    await assert.rejects(
      createPosition(await as(key), ods, { name: 'Not allowed', jobRoles: ['R8008'] }),
      (err) => err instanceof AppError && err.code === 'auth.forbidden',
      `${key} at ${ods}`,
    );
  }
});

test(`[${backend}] a role profile past its end date, or ended, stops granting at once`, async () => {
  const c = new TestClock(new Date('2026-11-26T09:00:00Z'));
  const temp = await personIn(positions.lsa!, { endDate: '2026-11-30' });
  const site = await personTarget(ids.siteNurse!);
  const on = async (at: string) => {
    c.set(at);
    return isAllowed(await personActorWithPowers(t.repos, temp, c.now()), 'card:unlock', site);
  };
  assert.equal(await on('2026-11-30T23:59:00Z'), true, 'still 30 November in London');
  assert.equal(await on('2026-12-01T00:00:01Z'), false);
  const agent = await personIn(positions.agent!);
  const before = await personActorWithPowers(t.repos, agent, clock.now());
  assert.equal(isAllowed(before, 'card:issue', site), true);
  const [profile] = (
    await t.db.query<{ person_roleid: string }>('SELECT person_roleid FROM role_profiles WHERE user_id = $1', [agent])
  ).rows;
  await endRoleProfile(ctx(), profile!.person_roleid, 'left the RA team');
  assert.deepEqual(raRolesOf(await personActorWithPowers(t.repos, agent, clock.now())), []);
});

test(`[${backend}] a suspended RA has no powers until restored`, async () => {
  const agent = await personIn(positions.advanced!);
  const site = await personTarget(ids.siteNurse!);
  await changePersonStatus(ctx(), agent, 'suspended', 'investigation');
  const suspended = await actorOf(agent);
  assert.ok(suspended.kind === 'person');
  assert.deepEqual(suspended.powers, []);
  assert.equal(isAllowed(suspended, 'card:issue', site), false);
  assert.equal(isAllowed(suspended, 'person:read', site), false);
  await changePersonStatus(ctx(), agent, 'active', 'cleared');
  assert.equal(isAllowed(await actorOf(agent), 'card:issue', site), true);
});
