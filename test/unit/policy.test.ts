import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AppError } from '../../src/domain/errors.ts';
import {
  type Actor,
  authorize,
  isAllowed,
  type RaPower,
  raRolesOf,
  type Statement,
  statements,
  type Target,
} from '../../src/domain/policy.ts';

/*
 * The RA role matrix of DOMAIN §5, written out here independently of policy.ts: one row per statement, one column per
 * role, the column's letter where the role is granted the statement for a target in its subtree, '.' where it is not.
 *
 *   M RA Manager (R5080)          A Advanced RA Agent (B0272)   R RA Agent (B0274)
 *   S Sponsor (B1300 or B0002)    I ID Checker (B0267)          L Local Smartcard Administrator (B0264)
 *
 * The target is another person's record or a position in the role's organisation subtree, with no special flags; the
 * special targets (own record, own request, assignable positions, appointments) have their own tables below.
 */
const columns = 'MARSIL';
const matrix: Record<Statement, string> = {
  'person:read': 'MARSIL',
  'person:create': 'MAR.I.',
  'person:update': 'MAR...',
  'person:verify_identity': 'MAR.I.',
  'person:change_name': 'MAR...',
  'person:change_status': 'MAR...',
  'person:leaver': 'MAR...',
  'application:review': 'MAR.I.',
  'organisation:read': 'MARSIL',
  'organisation:create': 'M.....', // within their subtree: the target is the new organisation's parent
  'organisation:update': 'M.....',
  'catalogue:load': '......',
  'position:create': 'MA....',
  'position:update': 'MA....',
  'request:create': 'MARS..',
  'request:approve': 'MAR...',
  'role_profile:assign': 'MAR...', // sponsors only assignable positions: see below
  'role_profile:end': 'MARS..',
  'role_profile:change_dates': 'MARS..',
  'ra:appoint_staff': 'MA....',
  'ra:appoint_manager': 'M.....',
  'ra:set_policy': 'M.....',
  'report:view': 'MAR...',
  'audit:read': 'M.....',
  'card:issue': 'MAR...',
  'card:unlock': 'MAR..L',
  'card:renew': 'MAR..L',
  'card:cancel': 'MAR...',
  'authenticator:enrol': 'MAR...',
  'client:register': 'M.....',
};

/** What may reach a person with no organisation yet (a new starter): DOMAIN §5 procedures 1–3. */
/** Relying parties are national: registering one is not scoped to an organisation. */
const unscopedStatements: readonly Statement[] = ['client:register'];

const newStarterStatements: readonly Statement[] = [
  'person:read',
  'audit:read',
  'person:create',
  'person:change_name',
  'person:verify_identity',
  'application:review',
  'request:create',
];

function granted(row: string, column: string): boolean {
  const i = columns.indexOf(column);
  assert.ok(i >= 0 && row.length === columns.length, `bad matrix row ${row}`);
  if (row[i] === '.') return false;
  assert.equal(row[i], column, `matrix row ${row}: column ${i} must be ${column} or .`);
  return true;
}

/** Expected answers for every statement: the matrix column, narrowed by `only` when given. */
function expectedFor(column: string, only?: (s: Statement) => boolean): Record<Statement, boolean> {
  return Object.fromEntries(
    statements.map((s) => [s, granted(matrix[s], column) && (only ? only(s) : true)]),
  ) as Record<Statement, boolean>;
}

/** Every statement, allowed where `allowed` says. */
function everyStatement(allowed: (s: Statement) => boolean): Record<Statement, boolean> {
  return Object.fromEntries(statements.map((s) => [s, allowed(s)])) as Record<Statement, boolean>;
}

function answers(actor: Actor, target: Target): Record<Statement, boolean> {
  return Object.fromEntries(statements.map((s) => [s, isAllowed(actor, s, target)])) as Record<Statement, boolean>;
}

const SELF = '555000000001';
const OTHER = '555000000002';

// A trust (RR8) with a site (RR813) under it; the RA's profile is at the trust, so its subtree is both.
const trustSubtree = ['RR8', 'RR813'];

function personWith(...powers: RaPower[]): Actor {
  return { kind: 'person', id: SELF, userId: SELF, powers };
}

/** Each role both as the bare code that defines it and as real profiles carry it (job role baseline expanded). */
const roleProfiles: { column: string; name: string; jobRoles: string[]; activities: string[] }[] = [
  { column: 'M', name: 'RA Manager (R5080 alone)', jobRoles: ['R5080'], activities: [] },
  {
    column: 'M',
    name: 'RA Manager (R5080 with its baseline)',
    jobRoles: ['R5080'],
    activities: ['B0002', 'B0264', 'B0267', 'B0272', 'B0274', 'B1300'],
  },
  {
    column: 'A',
    name: 'Advanced RA Agent (B0272, which includes B0274)',
    jobRoles: [],
    activities: ['B0272', 'B0274'],
  },
  {
    column: 'A',
    name: 'Advanced RA Agent (R5090 + B0272 with baseline)',
    jobRoles: ['R5090'],
    activities: ['B0264', 'B0267', 'B0272', 'B0274'],
  },
  { column: 'R', name: 'RA Agent (B0274 alone)', jobRoles: [], activities: ['B0274'] },
  {
    column: 'R',
    name: 'RA Agent (R5090 with baseline)',
    jobRoles: ['R5090'],
    activities: ['B0264', 'B0267', 'B0274'],
  },
  { column: 'S', name: 'Sponsor (B1300)', jobRoles: ['R8008'], activities: ['B1300'] },
  { column: 'S', name: 'Sponsor (B0002 sponsorship rights)', jobRoles: ['R8008'], activities: ['B0002'] },
  { column: 'I', name: 'ID Checker (B0267)', jobRoles: ['R8010'], activities: ['B0267'] },
  { column: 'L', name: 'Local Smartcard Administrator (B0264)', jobRoles: ['R8010'], activities: ['B0264'] },
];

for (const role of roleProfiles) {
  const actor = personWith({ jobRoles: role.jobRoles, activities: role.activities, odsCodes: trustSubtree });
  const check = (target: Target, expected: Record<Statement, boolean>) =>
    assert.deepEqual(answers(actor, target), expected);

  describe(role.name, () => {
    test('in scope: the matrix, for a person or position in its own organisation', () => {
      check({ odsCode: 'RR8', userId: OTHER }, expectedFor(role.column));
    });
    test('in scope: the matrix, for a site below its trust (subtree reach)', () => {
      check({ odsCode: 'RR813', userId: OTHER }, expectedFor(role.column));
    });
    test('in scope: the matrix, for a person who works in several organisations, one of them in reach', () => {
      check({ odsCodes: ['Y51', 'RR813'], userId: OTHER }, expectedFor(role.column));
    });
    test('out of scope: nothing, for another ICB or the parent of its organisation (but national relying parties)', () => {
      const expected = expectedFor(role.column, (s) => unscopedStatements.includes(s));
      check({ odsCode: 'Y51', userId: OTHER }, expected);
      check({ odsCode: 'QWO', userId: OTHER }, expected);
      check({ odsCodes: ['Y51', 'A81001'], userId: OTHER }, expected);
    });
    test('a new starter with no organisation: only search, register, verify, review and first request', () => {
      const expected = expectedFor(
        role.column,
        (s) => newStarterStatements.includes(s) || unscopedStatements.includes(s),
      );
      check({ userId: OTHER }, expected);
      check({ userId: OTHER, odsCodes: [] }, expected);
      check({}, expected);
    });
    test('its own record: read only, whatever the role (segregation of duties)', () => {
      const expected = everyStatement((s) => s === 'person:read');
      check({ odsCode: 'RR8', userId: SELF }, expected);
      check({ odsCodes: ['RR813'], userId: SELF, positionAssignable: true }, expected);
      check({ userId: SELF }, expected);
    });
  });
}

/*
 * Special targets, in scope (RR8), about another person. Each row: statement, target, expected columns.
 */
const special: { name: string; statement: Statement; target: Target; expect: string }[] = [
  {
    name: 'approve a request made by someone else',
    statement: 'request:approve',
    target: { requestedBy: OTHER },
    expect: 'MAR...',
  },
  {
    name: 'approve a request they made',
    statement: 'request:approve',
    target: { requestedBy: SELF },
    expect: '......',
  },
  {
    name: 'assign an assignable position',
    statement: 'role_profile:assign',
    target: { positionAssignable: true },
    expect: 'MARS..',
  },
  {
    name: 'assign a position that is not assignable',
    statement: 'role_profile:assign',
    target: { positionAssignable: false },
    expect: 'MAR...',
  },
  {
    name: 'assign an RA Manager position',
    statement: 'role_profile:assign',
    target: { appointsRole: 'ra_manager' },
    expect: 'M.....',
  },
  {
    name: 'assign an assignable RA Manager position',
    statement: 'role_profile:assign',
    target: { appointsRole: 'ra_manager', positionAssignable: true },
    expect: 'M.....',
  },
  {
    name: 'assign an RA staff position',
    statement: 'role_profile:assign',
    target: { appointsRole: 'ra_staff' },
    expect: 'MA....',
  },
  {
    name: 'assign an assignable RA staff position',
    statement: 'role_profile:assign',
    target: { appointsRole: 'ra_staff', positionAssignable: true },
    expect: 'MA....',
  },
  {
    name: 'approve a request for an RA Manager position',
    statement: 'request:approve',
    target: { appointsRole: 'ra_manager', requestedBy: OTHER },
    expect: 'M.....',
  },
  {
    name: 'approve a request for an RA staff position',
    statement: 'request:approve',
    target: { appointsRole: 'ra_staff', requestedBy: OTHER },
    expect: 'MA....',
  },
  {
    name: 'approve their own request for an RA staff position',
    statement: 'request:approve',
    target: { appointsRole: 'ra_staff', requestedBy: SELF },
    expect: '......',
  },
  {
    name: 'request an RA Manager position (approval decides)',
    statement: 'request:create',
    target: { appointsRole: 'ra_manager' },
    expect: 'MARS..',
  },
  {
    name: 'end an RA Manager profile',
    statement: 'role_profile:end',
    target: { appointsRole: 'ra_manager' },
    expect: 'MARS..',
  },
];

describe('special targets', () => {
  for (const row of special) {
    test(`${row.name}: ${row.expect}`, () => {
      for (const role of roleProfiles) {
        const actor = personWith({ jobRoles: role.jobRoles, activities: role.activities, odsCodes: trustSubtree });
        const target: Target = { odsCode: 'RR8', userId: OTHER, ...row.target };
        assert.equal(isAllowed(actor, row.statement, target), granted(row.expect, role.column), role.name);
        // and never outside the subtree
        assert.equal(isAllowed(actor, row.statement, { ...target, odsCode: 'Y51' }), false, `${role.name}, Y51`);
      }
    });
  }
});

const targets: Target[] = [
  {},
  { userId: OTHER },
  { odsCode: 'RR8', userId: OTHER },
  { odsCode: 'Y51', userId: OTHER, requestedBy: OTHER },
  { odsCodes: ['RR813'], userId: OTHER, positionAssignable: true, appointsRole: 'ra_manager' },
];

test('the matrix names every statement, and only statements', () => {
  assert.deepEqual(Object.keys(matrix).sort(), [...statements].sort());
});

test('the operator and the system may do everything, to anyone, anywhere', () => {
  for (const actor of [
    { kind: 'operator', id: 'cli:root@host' },
    { kind: 'system', id: 'system:seed' },
  ] as const) {
    for (const target of targets)
      assert.deepEqual(
        answers(actor, target),
        everyStatement(() => true),
      );
    for (const s of statements) assert.equal(isAllowed(actor, s), true);
  }
});

test('a person with no RA powers may only read their own record', () => {
  const nothing = everyStatement(() => false);
  for (const actor of [
    { kind: 'person', id: SELF, userId: SELF },
    personWith(),
    personWith({ jobRoles: ['R8000'], activities: ['B0380', 'B0825', 'B0820'], odsCodes: trustSubtree }),
  ] as const satisfies readonly Actor[]) {
    for (const target of targets) assert.deepEqual(answers(actor, target), nothing);
    assert.deepEqual(
      answers(actor, { userId: SELF, odsCode: 'RR8' }),
      everyStatement((s) => s === 'person:read'),
    );
  }
});

test('each role applies only in the subtree of the profile that gives it', () => {
  // A sponsor at the trust who is also the smartcard unlocker at another ICB.
  const actor = personWith(
    { jobRoles: ['R8008'], activities: ['B1300'], odsCodes: trustSubtree },
    { jobRoles: ['R8010'], activities: ['B0264'], odsCodes: ['Y51'] },
  );
  assert.equal(isAllowed(actor, 'card:unlock', { odsCodes: ['Y51'], userId: OTHER }), true);
  assert.equal(isAllowed(actor, 'card:unlock', { odsCodes: ['RR813'], userId: OTHER }), false);
  assert.equal(isAllowed(actor, 'role_profile:assign', { odsCode: 'RR813', positionAssignable: true }), true);
  assert.equal(isAllowed(actor, 'role_profile:assign', { odsCode: 'Y51', positionAssignable: true }), false);
  // An advanced agent in one ICB and an RA Manager in another appoints managers only in the second.
  const twoHats = personWith(
    { jobRoles: ['R5090'], activities: ['B0272', 'B0274'], odsCodes: ['Y51'] },
    { jobRoles: ['R5080'], activities: [], odsCodes: trustSubtree },
  );
  assert.equal(isAllowed(twoHats, 'role_profile:assign', { odsCode: 'RR8', appointsRole: 'ra_manager' }), true);
  assert.equal(isAllowed(twoHats, 'role_profile:assign', { odsCode: 'Y51', appointsRole: 'ra_manager' }), false);
  assert.equal(isAllowed(twoHats, 'role_profile:assign', { odsCode: 'Y51', appointsRole: 'ra_staff' }), true);
});

test('authorize throws auth.forbidden naming the statement, and passes silently when allowed', () => {
  const lsa = personWith({ jobRoles: ['R8010'], activities: ['B0264'], odsCodes: trustSubtree });
  assert.throws(
    () => authorize(lsa, 'person:create', { odsCode: 'RR8' }),
    (err) => err instanceof AppError && err.code === 'auth.forbidden',
  );
  authorize(lsa, 'card:unlock', { odsCode: 'RR8', userId: OTHER });
});

test('raRolesOf names the roles held, without the ones a higher role in the same profile covers', () => {
  const p = (jobRoles: string[], activities: string[], odsCodes = trustSubtree): RaPower => ({
    jobRoles,
    activities,
    odsCodes,
  });
  assert.deepEqual(raRolesOf({ kind: 'operator', id: 'cli:root@host' }), []);
  assert.deepEqual(raRolesOf(personWith()), []);
  assert.deepEqual(raRolesOf(personWith(p(['R5080'], ['B0002', 'B0264', 'B0267', 'B0272', 'B0274', 'B1300']))), [
    'ra_manager',
  ]);
  assert.deepEqual(raRolesOf(personWith(p(['R5080'], []), p(['R8008'], ['B1300'], ['Y51']))), [
    'ra_manager',
    'sponsor',
  ]);
  assert.deepEqual(raRolesOf(personWith(p(['R5090'], ['B0264', 'B0267', 'B0272', 'B0274']))), ['advanced_ra_agent']);
  assert.deepEqual(raRolesOf(personWith(p(['R5090'], ['B0264', 'B0267', 'B0274']))), ['ra_agent']);
  assert.deepEqual(raRolesOf(personWith(p(['R8010'], ['B0264', 'B0267']), p(['R8008'], ['B0002']))), [
    'sponsor',
    'id_checker',
    'local_smartcard_administrator',
  ]);
  assert.deepEqual(raRolesOf(personWith(p(['R8000'], ['B0380']))), []);
});
