import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AppError } from '../../src/domain/errors.ts';
import {
  type Actor,
  type Appointment,
  authorize,
  type ClientActor,
  isAllowed,
  organisationsWhere,
  type PersonFacts,
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
 * The target is what the statement is about (`targetFor` below): another person with no RA powers, a position or
 * role profile that appoints nobody, an organisation, a relying party — in the role's organisation subtree, with no
 * special flags. The special targets (own record, own request, assignable positions, appointments, people holding RA
 * powers, national effects) have their own tables below.
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
  'person:decide_nationally': 'M.....',
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
  'client:manage': 'M.....',
  'idp:register': '......', // the operator's alone
};

/** What may reach a person with no organisation yet (a new starter): DOMAIN §5 procedures 1–2, and their history. */
const newStarterStatements: readonly Statement[] = [
  'person:read',
  'person:change_name',
  'person:verify_identity',
  'audit:read',
];

function granted(row: string, column: string): boolean {
  const i = columns.indexOf(column);
  assert.ok(i >= 0 && row.length === columns.length, `bad matrix row ${row}`);
  if (row[i] === '.') return false;
  assert.equal(row[i], column, `matrix row ${row}: column ${i} must be ${column} or .`);
  return true;
}

const SELF = '555000000001';
const OTHER = '555000000002';

/** A person with their organisation links and the profiles they hold (each with what it appoints). */
function person(
  userId: string,
  odsCodes: readonly string[],
  profiles: { odsCode: string; appoints: Appointment }[] = odsCodes.map((o) => ({ odsCode: o, appoints: null })),
): PersonFacts {
  return { userId, odsCodes, profiles };
}
const position = (odsCode: string, appoints: Appointment = null, assignable = false) => ({
  odsCode,
  appoints,
  assignable,
});

/**
 * The natural target of each statement (what it is about), at organisation `ods` (or the person's organisations
 * `odsCodes`), about person `userId`.
 */
function targetFor(statement: Statement, p: PersonFacts, ods: string): Target {
  switch (statement) {
    case 'request:create':
    case 'role_profile:assign':
      return { kind: 'position', person: p, position: position(ods) };
    case 'request:approve':
      return {
        kind: 'request',
        person: p,
        position: position(ods),
        requestedBy: OTHER.replace(/2$/, '3'),
        requestedOnBehalfOf: null,
      };
    case 'role_profile:end':
    case 'role_profile:change_dates':
      return { kind: 'role_profile', person: p, profile: position(ods) };
    case 'client:register':
    case 'client:manage':
      return { kind: 'client', client: { odsCode: ods, lockedByOperator: false } };
    case 'organisation:read':
    case 'organisation:create':
    case 'organisation:update':
    case 'catalogue:load':
    case 'position:create':
    case 'position:update':
    case 'ra:appoint_staff':
    case 'ra:appoint_manager':
    case 'ra:set_policy':
    case 'report:view':
    case 'audit:read':
    case 'application:review':
    case 'person:decide_nationally':
      return { kind: 'organisation', odsCode: ods };
    default:
      return { kind: 'person', person: p };
  }
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

function answers(actor: Actor, p: PersonFacts, ods: string): Record<Statement, boolean> {
  return Object.fromEntries(statements.map((s) => [s, isAllowed(actor, s, targetFor(s, p, ods))])) as Record<
    Statement,
    boolean
  >;
}

// A trust (RR8) with a site (RR813) under it; the RA's profile is at the trust, so its subtree is both.
const trustSubtree = ['RR8', 'RR813'];

function personWith(...powers: RaPower[]): Actor {
  return { kind: 'person', id: SELF, userId: SELF, powers };
}

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

  describe(role.name, () => {
    test('in scope: the matrix, for a person, position or organisation in its own organisation', () => {
      assert.deepEqual(answers(actor, person(OTHER, ['RR8']), 'RR8'), expectedFor(role.column));
    });
    test('in scope: the matrix, for a site below its trust (subtree reach)', () => {
      assert.deepEqual(answers(actor, person(OTHER, ['RR813']), 'RR813'), expectedFor(role.column));
    });
    test('in scope: the matrix, for a person who works in several organisations, one of them in reach (but national effects)', () => {
      const both = person(OTHER, ['Y51', 'RR813']);
      const national = ['person:change_status', 'person:leaver'];
      // An RA Manager decides them nationally; anyone else needs the power in Y51 too.
      assert.deepEqual(
        answers(actor, both, 'RR813'),
        expectedFor(role.column, (s) => !national.includes(s) || role.column === 'M'),
      );
    });
    test('out of scope: nothing, for another ICB or the parent of its organisation', () => {
      const nothing = everyStatement(() => false);
      assert.deepEqual(answers(actor, person(OTHER, ['Y51']), 'Y51'), nothing);
      assert.deepEqual(answers(actor, person(OTHER, ['QWO']), 'QWO'), nothing);
      assert.deepEqual(answers(actor, person(OTHER, ['Y51', 'A81001']), 'A81001'), nothing);
    });
    test('a new starter with no organisation: only search, register, read, name and identity check', () => {
      const starter = person(OTHER, []);
      for (const s of statements) {
        if (targetFor(s, starter, 'RR8').kind !== 'person') continue;
        assert.equal(
          isAllowed(actor, s, { kind: 'person', person: starter }),
          granted(matrix[s], role.column) && newStarterStatements.includes(s),
          s,
        );
      }
      for (const s of ['person:read', 'person:create', 'person:verify_identity'] as const) {
        assert.equal(isAllowed(actor, s, { kind: 'national' }), granted(matrix[s], role.column), `${s} nationally`);
      }
      for (const s of ['card:issue', 'person:change_status', 'catalogue:load', 'report:view'] as const) {
        assert.equal(isAllowed(actor, s, { kind: 'national' }), false, `${s} nationally`);
      }
    });
    test('its own record: read only, whatever the role (segregation of duties)', () => {
      const self = person(SELF, ['RR8']);
      const aboutThePerson = (s: Statement) =>
        targetFor(s, self, 'RR8').kind !== 'organisation' && targetFor(s, self, 'RR8').kind !== 'client';
      const expected = everyStatement((s) =>
        aboutThePerson(s) ? s === 'person:read' : granted(matrix[s], role.column),
      );
      assert.deepEqual(answers(actor, self, 'RR8'), expected);
    });
  });
}

/*
 * Special targets, in scope (RR8), about another person. Each row: statement, target, expected columns.
 */
const other = person(OTHER, ['RR8']);
const holdsStaff = person(OTHER, ['RR8'], [{ odsCode: 'RR8', appoints: 'ra_staff' }]);
const holdsManager = person(OTHER, ['RR8'], [{ odsCode: 'RR8', appoints: 'ra_manager' }]);
const request = (requestedBy: string, appoints: Appointment = null, onBehalfOf: string | null = null): Target => ({
  kind: 'request',
  person: other,
  position: position('RR8', appoints),
  requestedBy,
  requestedOnBehalfOf: onBehalfOf,
});
const give = (appoints: Appointment, assignable: boolean): Target => ({
  kind: 'position',
  person: other,
  position: position('RR8', appoints, assignable),
});
const profile = (appoints: Appointment, assignable = false, extendsAccess?: boolean): Target => ({
  kind: 'role_profile',
  person: other,
  profile: position('RR8', appoints, assignable),
  ...(extendsAccess === undefined ? {} : { extendsAccess }),
});
const special: { name: string; statement: Statement; target: Target; expect: string }[] = [
  {
    name: 'approve a request made by someone else',
    statement: 'request:approve',
    target: request('555000000009'),
    expect: 'MAR...',
  },
  { name: 'approve a request they made', statement: 'request:approve', target: request(SELF), expect: '......' },
  {
    name: 'approve a request their own API client made',
    statement: 'request:approve',
    target: request('client:1.apps.national', null, SELF),
    expect: '......',
  },
  {
    name: 'assign an assignable position',
    statement: 'role_profile:assign',
    target: give(null, true),
    expect: 'MARS..',
  },
  {
    name: 'assign a position that is not assignable',
    statement: 'role_profile:assign',
    target: give(null, false),
    expect: 'MAR...',
  },
  {
    name: 'assign an RA Manager position',
    statement: 'role_profile:assign',
    target: give('ra_manager', false),
    expect: 'M.....',
  },
  {
    name: 'assign an assignable RA Manager position',
    statement: 'role_profile:assign',
    target: give('ra_manager', true),
    expect: 'M.....',
  },
  {
    name: 'assign an RA staff position',
    statement: 'role_profile:assign',
    target: give('ra_staff', false),
    expect: 'MA....',
  },
  {
    name: 'assign an assignable RA staff position',
    statement: 'role_profile:assign',
    target: give('ra_staff', true),
    expect: 'MA....',
  },
  {
    name: 'approve a request for an RA Manager position',
    statement: 'request:approve',
    target: request('555000000009', 'ra_manager'),
    expect: 'M.....',
  },
  {
    name: 'approve a request for an RA staff position',
    statement: 'request:approve',
    target: request('555000000009', 'ra_staff'),
    expect: 'MA....',
  },
  {
    name: 'approve their own request for an RA staff position',
    statement: 'request:approve',
    target: request(SELF, 'ra_staff'),
    expect: '......',
  },
  {
    name: 'request an RA Manager position (approval decides)',
    statement: 'request:create',
    target: { kind: 'position', person: other, position: position('RR8', 'ra_manager') },
    expect: 'MARS..',
  },
  { name: 'end an RA Manager profile', statement: 'role_profile:end', target: profile('ra_manager'), expect: 'M.....' },
  { name: 'end an RA staff profile', statement: 'role_profile:end', target: profile('ra_staff'), expect: 'MA....' },
  {
    name: 'shorten an RA Manager profile',
    statement: 'role_profile:change_dates',
    target: profile('ra_manager', false, false),
    expect: 'M.....',
  },
  {
    name: 'lengthen an RA Manager profile',
    statement: 'role_profile:change_dates',
    target: profile('ra_manager', false, true),
    expect: 'M.....',
  },
  {
    name: 'lengthen an RA staff profile',
    statement: 'role_profile:change_dates',
    target: profile('ra_staff', false, true),
    expect: 'MA....',
  },
  {
    name: 'shorten a profile that is not assignable',
    statement: 'role_profile:change_dates',
    target: profile(null, false, false),
    expect: 'MARS..',
  },
  {
    name: 'lengthen a profile that is not assignable',
    statement: 'role_profile:change_dates',
    target: profile(null, false, true),
    expect: 'MAR...',
  },
  {
    name: 'lengthen an assignable profile',
    statement: 'role_profile:change_dates',
    target: profile(null, true, true),
    expect: 'MARS..',
  },
  ...(
    [
      'person:change_status',
      'person:leaver',
      'card:issue',
      'card:unlock',
      'card:renew',
      'card:cancel',
      'authenticator:enrol',
      'person:update',
    ] as const
  ).flatMap((s) => [
    {
      name: `${s} for someone holding RA staff powers`,
      statement: s,
      target: { kind: 'person', person: holdsStaff } as Target,
      expect: matrix[s].replace(/[RSIL]/g, '.'),
    },
    {
      name: `${s} for someone holding RA Manager powers`,
      statement: s,
      target: { kind: 'person', person: holdsManager } as Target,
      expect: matrix[s].replace(/[ARSIL]/g, '.'),
    },
  ]),
  {
    name: 'read someone holding RA Manager powers',
    statement: 'person:read',
    target: { kind: 'person', person: holdsManager },
    expect: 'MARSIL',
  },
  {
    name: 'change the name of someone holding RA Manager powers (confers nothing)',
    statement: 'person:change_name',
    target: { kind: 'person', person: holdsManager },
    expect: 'MAR...',
  },
];

describe('special targets', () => {
  for (const row of special) {
    test(`${row.name}: ${row.expect}`, () => {
      for (const role of roleProfiles) {
        const actor = personWith({ jobRoles: role.jobRoles, activities: role.activities, odsCodes: trustSubtree });
        assert.equal(isAllowed(actor, row.statement, row.target), granted(row.expect, role.column), role.name);
        // and never outside the subtree
        const moved = JSON.parse(JSON.stringify(row.target).replaceAll('"RR8"', '"Y51"')) as Target;
        assert.equal(isAllowed(actor, row.statement, moved), false, `${role.name}, Y51`);
      }
    });
  }
});

/*
 * National effects (DOMAIN §5.4): a person's status and a national leaver reach every organisation they hold access
 * in. An RA of one of them alone may not decide it; an RA Manager there may (a national decision) — unless the person
 * holds an RA appointment elsewhere that the manager could not have made.
 */
describe('national effects', () => {
  const agent = personWith({ jobRoles: ['R5090'], activities: ['B0264', 'B0267', 'B0274'], odsCodes: trustSubtree });
  const manager = personWith({ jobRoles: ['R5080'], activities: [], odsCodes: trustSubtree });
  const bothAgents = personWith(
    { jobRoles: ['R5090'], activities: ['B0274'], odsCodes: trustSubtree },
    { jobRoles: ['R5090'], activities: ['B0274'], odsCodes: ['Y51', 'RX1'] },
  );
  const locum = person(
    OTHER,
    ['RR8', 'RX1'],
    [
      { odsCode: 'RR8', appoints: null },
      { odsCode: 'RX1', appoints: null },
    ],
  );
  const managerElsewhere = person(
    OTHER,
    ['RR8', 'RX1'],
    [
      { odsCode: 'RR8', appoints: null },
      { odsCode: 'RX1', appoints: 'ra_manager' },
    ],
  );
  const endedElsewhere = person(OTHER, ['RR8', 'RX1'], [{ odsCode: 'RR8', appoints: null }]);
  for (const s of ['person:change_status', 'person:leaver'] as const) {
    test(`${s}: an RA of one of the person's organisations alone may not; of all of them may`, () => {
      assert.equal(isAllowed(agent, s, { kind: 'person', person: locum }), false);
      assert.equal(isAllowed(bothAgents, s, { kind: 'person', person: locum }), true);
      assert.equal(isAllowed(agent, s, { kind: 'person', person: endedElsewhere }), true, 'no access held in RX1');
    });
    test(`${s}: an RA Manager of one of them decides nationally, but not over an RA Manager elsewhere`, () => {
      assert.equal(isAllowed(manager, s, { kind: 'person', person: locum }), true);
      assert.equal(isAllowed(manager, s, { kind: 'person', person: managerElsewhere }), false);
    });
  }
});

/*
 * API clients: their registered activities, in their organisation's subtree, capped by what their registrar holds
 * now, never acting on the registrar, and nothing at all once the registrar may no longer register them.
 */
describe('API clients', () => {
  const registrarPowers: RaPower[] = [{ jobRoles: ['R5080'], activities: [], odsCode: 'RR8', odsCodes: trustSubtree }];
  const registrar = { kind: 'person' as const, id: SELF, userId: SELF, powers: registrarPowers };
  const clientOf = (activities: string[], reg: ClientActor['registrar'] = registrar): ClientActor => ({
    kind: 'client',
    id: 'client:123456789012.apps.national',
    odsCode: 'RR8',
    powers: [{ activities, odsCode: 'RR8', odsCodes: trustSubtree }],
    registrar: reg,
  });
  const agentClient = clientOf(['B0274']);
  test('holds its activities in its subtree: an RA Agent’s work, not a manager’s', () => {
    assert.equal(isAllowed(agentClient, 'card:issue', { kind: 'person', person: other }), true);
    assert.equal(isAllowed(agentClient, 'card:issue', { kind: 'person', person: person(OTHER, ['Y51']) }), false);
    assert.equal(isAllowed(agentClient, 'role_profile:assign', give('ra_staff', false)), false);
    for (const s of ['client:register', 'client:manage', 'audit:read', 'ra:appoint_manager'] as const) {
      assert.equal(isAllowed(agentClient, s, targetFor(s, other, 'RR8')), false, s);
    }
  });
  test('acting on its registrar is acting on oneself', () => {
    const me = person(SELF, ['RR8']);
    assert.equal(isAllowed(agentClient, 'person:read', { kind: 'person', person: me }), true);
    assert.equal(
      isAllowed(agentClient, 'role_profile:assign', { kind: 'position', person: me, position: position('RR8') }),
      false,
    );
    assert.equal(isAllowed(agentClient, 'card:issue', { kind: 'person', person: me }), false);
    assert.equal(isAllowed(agentClient, 'request:approve', request(SELF)), false);
    assert.equal(isAllowed(agentClient, 'request:approve', request(agentClient.id)), false, 'its own request');
  });
  test('never more than its registrar holds now, and nothing once they may not register it', () => {
    const demoted = {
      ...registrar,
      powers: [{ jobRoles: ['R5090'], activities: ['B0274'], odsCode: 'RR8', odsCodes: trustSubtree }],
    };
    assert.equal(isAllowed(clientOf(['B0274'], demoted), 'person:read', { kind: 'person', person: other }), false);
    const gone = { ...registrar, powers: [] };
    assert.equal(isAllowed(clientOf(['B0274'], gone), 'person:read', { kind: 'national' }), false);
    assert.deepEqual(organisationsWhere(clientOf(['B0274'], gone), 'report:view'), []);
    assert.deepEqual(organisationsWhere(agentClient, 'report:view'), trustSubtree);
    // The operator registered it: its own activities only.
    assert.equal(isAllowed(clientOf(['B0274'], null), 'card:issue', { kind: 'person', person: other }), true);
  });
});

/* Relying parties belong to an organisation; the operator's, and those the operator disabled, are the operator's. */
describe('relying parties', () => {
  const manager = personWith({ jobRoles: ['R5080'], activities: [], odsCodes: trustSubtree });
  test('an RA Manager registers and manages those of their subtree only', () => {
    const rp = (odsCode: string | null, lockedByOperator = false): Target => ({
      kind: 'client',
      client: { odsCode, lockedByOperator },
    });
    assert.equal(isAllowed(manager, 'client:manage', rp('RR813')), true);
    assert.equal(isAllowed(manager, 'client:manage', rp('Y51')), false);
    assert.equal(isAllowed(manager, 'client:manage', rp(null)), false, 'the operator’s national client');
    assert.equal(isAllowed(manager, 'client:manage', rp('RR8', true)), false, 'disabled by the operator');
    assert.equal(isAllowed({ kind: 'operator', id: 'cli:root@host' }, 'client:manage', rp('RR8', true)), true);
  });
});

test('the matrix names every statement, and only statements', () => {
  assert.deepEqual(Object.keys(matrix).sort(), [...statements].sort());
});

const targets: Target[] = [
  { kind: 'national' },
  { kind: 'organisation', odsCode: 'RR8' },
  { kind: 'person', person: person(OTHER, ['RR8']) },
  { kind: 'person', person: holdsManager },
  request(OTHER, 'ra_manager'),
  give('ra_manager', true),
  profile('ra_manager', false, true),
  { kind: 'client', client: { odsCode: null, lockedByOperator: true } },
];

test('the operator and the system may do everything, to anyone, anywhere', () => {
  for (const actor of [
    { kind: 'operator', id: 'cli:root@host' },
    { kind: 'system', id: 'system:seed' },
  ] as const) {
    for (const target of targets) for (const s of statements) assert.equal(isAllowed(actor, s, target), true, s);
  }
});

test('a person with no RA powers may only read their own record', () => {
  for (const actor of [
    { kind: 'person', id: SELF, userId: SELF },
    personWith(),
    personWith({ jobRoles: ['R8000'], activities: ['B0380', 'B0825', 'B0820'], odsCodes: trustSubtree }),
  ] as const satisfies readonly Actor[]) {
    for (const target of targets) for (const s of statements) assert.equal(isAllowed(actor, s, target), false, s);
    const self: Target = { kind: 'person', person: person(SELF, ['RR8']) };
    for (const s of statements) assert.equal(isAllowed(actor, s, self), s === 'person:read', s);
  }
});

test('each role applies only in the subtree of the profile that gives it', () => {
  // A sponsor at the trust who is also the smartcard unlocker at another ICB.
  const actor = personWith(
    { jobRoles: ['R8008'], activities: ['B1300'], odsCodes: trustSubtree },
    { jobRoles: ['R8010'], activities: ['B0264'], odsCodes: ['Y51'] },
  );
  assert.equal(isAllowed(actor, 'card:unlock', { kind: 'person', person: person(OTHER, ['Y51']) }), true);
  assert.equal(isAllowed(actor, 'card:unlock', { kind: 'person', person: person(OTHER, ['RR813']) }), false);
  const assignable = (ods: string, appoints: Appointment = null): Target => ({
    kind: 'position',
    person: person(OTHER, []),
    position: position(ods, appoints, true),
  });
  assert.equal(isAllowed(actor, 'role_profile:assign', assignable('RR813')), true);
  assert.equal(isAllowed(actor, 'role_profile:assign', assignable('Y51')), false);
  // An advanced agent in one ICB and an RA Manager in another appoints managers only in the second.
  const twoHats = personWith(
    { jobRoles: ['R5090'], activities: ['B0272', 'B0274'], odsCodes: ['Y51'] },
    { jobRoles: ['R5080'], activities: [], odsCodes: trustSubtree },
  );
  assert.equal(isAllowed(twoHats, 'role_profile:assign', assignable('RR8', 'ra_manager')), true);
  assert.equal(isAllowed(twoHats, 'role_profile:assign', assignable('Y51', 'ra_manager')), false);
  assert.equal(isAllowed(twoHats, 'role_profile:assign', assignable('Y51', 'ra_staff')), true);
});

test('authorize throws auth.forbidden naming the statement, and passes silently when allowed', () => {
  const lsa = personWith({ jobRoles: ['R8010'], activities: ['B0264'], odsCodes: trustSubtree });
  assert.throws(
    () => authorize(lsa, 'person:create', { kind: 'national' }),
    (err) => err instanceof AppError && err.code === 'auth.forbidden',
  );
  authorize(lsa, 'card:unlock', { kind: 'person', person: other });
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
