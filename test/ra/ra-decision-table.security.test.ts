import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { ukDate } from '../../src/domain/dates.ts';
import { cardConfigFrom } from '../../src/http/deps.ts';
import { createPosition } from '../../src/services/access.ts';
import { startCardIssue } from '../../src/services/cards.ts';
import { registerClient } from '../../src/services/clients.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { markLeaver, submitApplication, suspend } from '../../src/services/ra.ts';
import { backend } from '../support/db.ts';
import { tinyPng } from '../support/images.ts';
import { type Answer, type Caller, type PositionKey, type RaWorld, startRaWorld } from '../support/ra-world.ts';

/*
 * The RA trust boundary as a decision table (issue 15, acceptance 3), over HTTP, written from DOMAIN §5 — not from the
 * code's answers. Every REST operation and console action that reads or changes a person, their access, their
 * credentials, a request, an application or a relying party is tried by every kind of actor on every kind of target:
 *
 *   actors   RA Manager (M), Advanced RA Agent (A), RA Agent (R), Sponsor (S), ID Checker (I), Local Smartcard
 *            Administrator (L) — each through one position at trust RR8 —, RR8's API client (registered with B0274,
 *            B0267, B1300 and B0264: R+S+I+L), the RA Manager who registered that client, a nurse with no RA role,
 *            and an RA Manager signed in at AAL2 only.
 *   targets  other   — a person at site RR813, below RR8, holding no RA powers (in scope)
 *            staff   — a person holding RA staff powers at RR8 (an LSA position), or the request/profile that gives them
 *            manager — a person holding an RA Manager position at RR8, or the request/profile that gives it
 *            outside — a person (or position, application, client) of trust RX1 in another ICB (out of scope)
 *            self    — the actor themself (for the API client: its registrar)
 *            client  — a request the API client made (for approvals: its registrar deciding it is deciding their own)
 *
 * The expected answer comes from the rules of DOMAIN §5 alone: the roles that may do the operation to a person with no
 * RA powers in their subtree; an RA action that confers what the target holds or would hold (access, credentials,
 * status) needs the power to appoint it — RA Managers for RA Managers, Advanced RA Agents and Managers for other RA
 * staff; nobody acts on their own record but to read it, or approves their own request; nobody reaches outside their
 * subtree but to search the national directory; AAL2 is not enough for RA work; an API client is its activities
 * (R, S, I, L), never an appointer, never its registrar. A refused cell must change nothing.
 */

type Role = 'M' | 'A' | 'R' | 'S' | 'I' | 'L';
type ActorKey =
  | 'manager'
  | 'advanced'
  | 'agent'
  | 'sponsor'
  | 'idChecker'
  | 'lsa'
  | 'apiClient'
  | 'registrar'
  | 'nonRa'
  | 'aal2';
type TargetKind = 'other' | 'staff' | 'manager' | 'outside' | 'self' | 'client';

const ROLES: Record<ActorKey, readonly Role[] | 'aal2'> = {
  manager: ['M'],
  advanced: ['A'],
  agent: ['R'],
  sponsor: ['S'],
  idChecker: ['I'],
  lsa: ['L'],
  apiClient: ['R', 'S', 'I', 'L'],
  registrar: ['M'],
  nonRa: [],
  aal2: 'aal2',
};
const ACTORS = Object.keys(ROLES) as ActorKey[];

/** What a cell's answer should be: refused, or allowed — for access requests, given at once or left pending. */
type Expected = 'refused' | 'allowed' | 'approved' | 'pending';

interface Subject {
  userId: string;
  personRoleId?: string;
  cardId?: string;
  requestId?: string;
  applicationId?: string;
  clientId?: string;
  totpId?: string;
  odsCode?: string;
  positionId?: string;
}

interface Operation {
  door: 'api' | 'console';
  name: string;
  /** The roles that may do it to a person with no RA powers in their subtree (DOMAIN §5). */
  may: readonly Role[];
  /** It gives, changes, ends or suspends what the target holds (or would hold): appointment rules apply. */
  confers?: boolean;
  /** Every signed-in person may read their own record (RA API only: the console is for RA staff). */
  selfRead?: boolean;
  /** Not about any one organisation's people: the national directory. */
  national?: boolean;
  targets: readonly TargetKind[];
  /** The requester may withdraw their request: the API client that made it, and its registrar on whose behalf. */
  requesterMay?: boolean;
  /** For access requests: the roles that give it at once (the others among `may` leave it pending). */
  direct?: readonly Role[];
  prepare(kind: TargetKind, self: string): Promise<Subject>;
  request(s: Subject): { method: string; path: string; body?: unknown; form?: Record<string, string | string[]> };
}

let w: RaWorld;
const callers = {} as Record<ActorKey, Caller>;
const selfOf = {} as Record<ActorKey, string>;
/** Who asked for the fixture requests: a third person, so no actor of the table is their requester. */
let requester: string;
const dayFrom = (days: number) => ukDate(new Date(Date.now() + days * 86_400_000));

before(async () => {
  w = await startRaWorld();
  requester = await w.newPerson('Requester');
  for (const a of ACTORS) {
    if (a === 'apiClient') {
      callers[a] = await w.apiToken();
      selfOf[a] = w.people.registrar;
    } else if (a === 'aal2') {
      callers[a] = await w.signIn(w.people.manager, 2);
      selfOf[a] = w.people.manager;
    } else {
      const userId = w.people[a as keyof RaWorld['people']];
      callers[a] = await w.signIn(userId);
      selfOf[a] = userId;
    }
  }
});
after(() => w.close());

// -------------------------------------------------------------------------------------------------------------------
// Fixtures: a fresh target for each cell that may change it (a refused cell leaves it as it was, so it is reused).

const POSITION_OF: Record<'other' | 'staff' | 'manager' | 'outside', PositionKey> = {
  other: 'siteNurse',
  staff: 'lsa',
  manager: 'manager',
  outside: 'nurseX',
};

async function profileOf(userId: string): Promise<string> {
  const { rows } = await w.server.t.db.query<{ person_roleid: string }>(
    "SELECT person_roleid FROM role_profiles WHERE user_id = $1 AND status = 'active' ORDER BY person_roleid LIMIT 1",
    [userId],
  );
  return rows[0]!.person_roleid;
}

/** The target person of a kind, holding the position of that kind; for `self`, the actor. */
async function personOf(kind: TargetKind, self: string, dates?: { endDate?: string | null }): Promise<Subject> {
  if (kind === 'self') return { userId: self, personRoleId: await profileOf(self) };
  const position = POSITION_OF[kind === 'client' ? 'other' : kind];
  const p = await w.personIn(position, dates);
  return { userId: p.userId, personRoleId: p.personRoleId };
}

async function withCard(s: Subject, status: 'active' | 'awaiting_passcode' | 'issuing' = 'active'): Promise<Subject> {
  const { card } = await startCardIssue(w.op(), cardConfigFrom(w.server.config), {
    userId: s.userId,
    kind: 'physical',
  });
  await w.server.t.db.query('UPDATE cards SET status = $2 WHERE card_id = $1', [card.cardId, status]);
  return { ...s, cardId: card.cardId };
}

async function withTotp(s: Subject): Promise<Subject> {
  const totpId = randomBytes(8).toString('hex');
  await w.server.t.db.query(
    `INSERT INTO totp_authenticators (totp_id, user_id, secret_sealed, status, nickname, created_at)
     VALUES ($1, $2, 'sealed', 'active', 'Phone', now())`,
    [totpId, s.userId],
  );
  return { ...s, totpId };
}

/** A pending access request about the target, for the position of its kind, made by a third person. */
async function pendingRequest(kind: TargetKind, self: string): Promise<Subject> {
  const forSelf = kind === 'self';
  const subject = forSelf ? { userId: self } : await personOf(kind === 'outside' ? 'outside' : 'other', self);
  const position = kind === 'staff' ? 'lsa' : kind === 'manager' ? 'manager' : kind === 'outside' ? 'nurseX' : 'clerk';
  const p = w.positions[position];
  const requestedBy = kind === 'client' ? `client:${w.apiClient.clientId}` : requester;
  // One pending request per person and position: an actor's own is made once and reused (it is never decided).
  const mine = await w.server.t.db.query<{ request_id: string }>(
    "SELECT request_id::text FROM access_requests WHERE user_id = $1 AND position_id = $2 AND status = 'pending'",
    [subject.userId, p.positionId],
  );
  if (mine.rows[0]) return { ...subject, requestId: mine.rows[0].request_id };
  const { rows } = await w.server.t.db.query<{ request_id: string }>(
    `INSERT INTO access_requests (user_id, position_id, ods_code, start_date, status, requested_by, reason, expires_at,
       created_at, updated_at)
     VALUES ($1, $2, $3, $4, 'pending', $5, 'fixture', now() + interval '30 days', now(), now()) RETURNING request_id::text`,
    [subject.userId, p.positionId, p.odsCode, dayFrom(1), requestedBy],
  );
  return { ...subject, requestId: rows[0]!.request_id };
}

async function application(kind: TargetKind): Promise<Subject> {
  const odsCode = kind === 'outside' ? 'RX1' : 'RR813';
  const n = randomBytes(3).readUIntBE(0, 3) % 1_000_000;
  const res = await submitApplication(
    { ...w.op(), actor: { kind: 'system', id: 'web:apply-for-care-id' } },
    {
      applicant: {
        givenName: 'Applicant',
        familyName: `Table${n}`,
        dateOfBirth: '1990-05-05',
        niNumber: `QQ${String(n).padStart(6, '0')}A`,
        email: `applicant${n}@example.nhs.uk`,
      },
      odsCode,
      selfie: { data: tinyPng().toString('base64') },
      photoIdImage: { data: tinyPng().toString('base64') },
    },
    // Apply for Care ID is limited per address: each fixture comes from one of its own.
    { ip: `198.18.${n % 250}.${(n >> 8) % 250}` },
  );
  return { userId: '', applicationId: res.applicationId, odsCode };
}

async function relyingParty(kind: TargetKind): Promise<Subject> {
  const odsCode = kind === 'outside' ? 'RX1' : 'RR8';
  const res = await registerClient(w.op(), {
    name: `EPR ${odsCode}`,
    odsCode,
    redirectUris: ['https://epr.example.nhs.uk/cb'],
    tokenEndpointAuthMethod: 'client_secret_basic',
  });
  return { userId: '', clientId: res.client.clientId, odsCode };
}

let odsSerial = 0;
const newOdsCode = () => `W${String(++odsSerial).padStart(4, '0')}`;

/** A fresh organisation below RR8 (in scope) or RX1 (outside). */
async function organisationFor(kind: TargetKind): Promise<Subject> {
  const odsCode = newOdsCode();
  await saveOrganisation(w.op(), {
    odsCode,
    name: `Ward ${odsCode}`,
    type: 'site',
    parentOdsCode: kind === 'outside' ? 'RX1' : 'RR8',
  });
  return { userId: '', odsCode };
}

/**
 * A fresh position of a kind, held by nobody: one that appoints no RA powers at site RR813 (other), an LSA's at RR8
 * (staff), an RA Manager's at RR8 (manager), a nurse's at RX1 (outside); for `self`, the position the actor holds.
 */
async function positionFor(kind: TargetKind, self: string): Promise<Subject> {
  if (kind === 'self') {
    const { rows } = await w.server.t.db.query<{ position_id: string }>(
      "SELECT position_id::text FROM role_profiles WHERE user_id = $1 AND status = 'active' ORDER BY person_roleid LIMIT 1",
      [self],
    );
    return { userId: '', positionId: rows[0]!.position_id };
  }
  const spec = {
    other: { ods: 'RR813', jobRoles: ['R8001'], activities: [] },
    staff: { ods: 'RR8', jobRoles: ['R8010'], activities: ['B0264'] },
    manager: { ods: 'RR8', jobRoles: ['R5080'], activities: [] },
    outside: { ods: 'RX1', jobRoles: ['R8001'], activities: [] },
    client: { ods: 'RR813', jobRoles: ['R8001'], activities: [] },
  }[kind];
  const p = await createPosition(w.op(), spec.ods, { name: `Table ${kind}`, ...spec });
  return { userId: '', positionId: p.positionId, odsCode: spec.ods };
}

const documents = () => [
  { category: 'photo_id', type: 'passport', lastChars: '123A', issuedOn: '2020-01-01', expiresOn: dayFrom(3650) },
  { category: 'address', type: 'utility_bill', issuedOn: dayFrom(-20) },
  { category: 'other', type: 'birth_certificate' },
];

const dateForm = (id: string, day: string) => {
  const [y, m, d] = day.split('-');
  return { [`${id}-day`]: d!, [`${id}-month`]: m!, [`${id}-year`]: y! };
};

// -------------------------------------------------------------------------------------------------------------------
// The operations. `may` is DOMAIN §5's table; the rest is how to call the door.

const PEOPLE: readonly TargetKind[] = ['other', 'staff', 'manager', 'outside', 'self'];
const PERSON_ROLES_READ: readonly Role[] = ['M', 'A', 'R', 'S', 'I', 'L'];

const ops: Operation[] = [
  {
    door: 'api',
    name: 'search the national directory',
    may: PERSON_ROLES_READ,
    national: true,
    targets: ['other', 'outside'],
    prepare: (k, self) => personOf(k, self),
    request: (s) => ({ method: 'POST', path: '/api/v1/people/search', body: { userId: s.userId } }),
  },
  {
    door: 'api',
    name: "read a person's identity checks",
    may: PERSON_ROLES_READ,
    selfRead: true,
    targets: PEOPLE,
    prepare: (k, self) => personOf(k, self),
    request: (s) => ({ method: 'GET', path: `/api/v1/people/${s.userId}/identity-checks` }),
  },
  {
    door: 'api',
    name: "read a person's authenticators",
    may: PERSON_ROLES_READ,
    selfRead: true,
    targets: PEOPLE,
    prepare: (k, self) => personOf(k, self),
    request: (s) => ({ method: 'GET', path: `/api/v1/people/${s.userId}/authenticators` }),
  },
  {
    door: 'api',
    name: 'read a smartcard',
    may: PERSON_ROLES_READ,
    selfRead: true,
    targets: PEOPLE,
    prepare: async (k, self) => withCard(await personOf(k, self)),
    request: (s) => ({ method: 'GET', path: `/api/v1/cards/${s.cardId}` }),
  },
  {
    door: 'api',
    name: 'record an identity check',
    may: ['M', 'A', 'R', 'I'],
    targets: PEOPLE,
    prepare: (k, self) => personOf(k, self),
    request: (s) => ({
      method: 'POST',
      path: `/api/v1/people/${s.userId}/identity-checks`,
      body: {
        method: 'face_to_face',
        place: 'RA office',
        documents: documents(),
        photo: { data: tinyPng().toString('base64') },
      },
    }),
  },
  {
    door: 'api',
    name: 'change a name',
    may: ['M', 'A', 'R'],
    targets: PEOPLE,
    prepare: (k, self) => personOf(k, self),
    request: (s) => ({
      method: 'POST',
      path: `/api/v1/people/${s.userId}/name`,
      body: { familyName: 'Renamed', evidence: { type: 'marriage_certificate' } },
    }),
  },
  ...(['suspend', 'leaver'] as const).map(
    (action): Operation => ({
      door: 'api',
      name: action === 'suspend' ? 'suspend a person' : 'mark a leaver',
      may: ['M', 'A', 'R'],
      confers: true,
      targets: PEOPLE,
      prepare: (k, self) => personOf(k, self),
      request: (s) => ({ method: 'POST', path: `/api/v1/people/${s.userId}/${action}`, body: { reason: 'table' } }),
    }),
  ),
  {
    door: 'api',
    name: 'restore a suspended person',
    may: ['M', 'A', 'R'],
    confers: true,
    targets: ['other', 'staff', 'manager', 'outside'],
    prepare: async (k, self) => {
      const s = await personOf(k, self);
      await suspend(w.op(), s.userId, { reason: 'fixture' });
      return s;
    },
    request: (s) => ({ method: 'POST', path: `/api/v1/people/${s.userId}/restore`, body: { reason: 'table' } }),
  },
  {
    door: 'api',
    name: 'take back a leaver',
    may: ['M', 'A', 'R'],
    targets: ['other', 'outside'],
    prepare: async (k, self) => {
      const s = await personOf(k, self);
      await markLeaver(w.op(), s.userId, { reason: 'fixture' });
      return s;
    },
    request: (s) => ({ method: 'POST', path: `/api/v1/people/${s.userId}/rejoin`, body: { reason: 'table' } }),
  },
  ...(
    [
      ['nurse', 'an assignable position', ['M', 'A', 'R', 'S']],
      ['clerk', 'a position that is not assignable', ['M', 'A', 'R']],
      ['lsa', 'an RA staff position', ['M', 'A']],
      ['manager', 'an RA Manager position', ['M']],
    ] as const
  ).map(
    ([position, what, direct]): Operation => ({
      door: 'api',
      name: `ask for ${what}`,
      may: ['M', 'A', 'R', 'S'],
      direct,
      targets: ['other', 'staff', 'outside', 'self'],
      prepare: async (k, self) => ({
        ...(await personOf(k, self)),
        positionId: w.positions[k === 'outside' ? 'nurseX' : position].positionId,
      }),
      request: (s) => ({
        method: 'POST',
        path: '/api/v1/access-requests',
        body: { userId: s.userId, positionId: s.positionId, startDate: dayFrom(1), reason: 'table' },
      }),
    }),
  ),
  {
    door: 'api',
    name: 'read an access request',
    may: ['M', 'A', 'R', 'S'],
    selfRead: true,
    targets: ['other', 'outside', 'self'],
    prepare: (k, self) => pendingRequest(k, self),
    request: (s) => ({ method: 'GET', path: `/api/v1/access-requests/${s.requestId}` }),
  },
  ...(['approve', 'reject', 'withdraw'] as const).map(
    (decision): Operation => ({
      door: 'api',
      name: `${decision} an access request`,
      may: ['M', 'A', 'R'],
      confers: true,
      requesterMay: decision === 'withdraw',
      targets: ['other', 'staff', 'manager', 'outside', 'self', 'client'],
      prepare: (k, self) => pendingRequest(k, self),
      request: (s) => ({
        method: 'POST',
        path: `/api/v1/access-requests/${s.requestId}/${decision}`,
        body: { reason: 'table' },
      }),
    }),
  ),
  {
    door: 'api',
    name: 'end a role profile',
    may: ['M', 'A', 'R', 'S'],
    confers: true,
    targets: PEOPLE,
    prepare: (k, self) => personOf(k, self),
    request: (s) => ({ method: 'POST', path: `/api/v1/role-profiles/${s.personRoleId}/end`, body: { reason: 'x' } }),
  },
  {
    door: 'api',
    name: "shorten a role profile's dates",
    may: ['M', 'A', 'R', 'S'],
    confers: true,
    targets: ['other', 'staff', 'manager', 'outside'],
    prepare: (k, self) => personOf(k, self, { endDate: dayFrom(300) }),
    request: (s) => ({
      method: 'POST',
      path: `/api/v1/role-profiles/${s.personRoleId}/dates`,
      body: { endDate: dayFrom(100), reason: 'table' },
    }),
  },
  {
    door: 'api',
    name: 'lengthen an assignable role profile',
    // Sponsors assign assignable positions, so may lengthen them; RA positions are not assignable here.
    may: ['M', 'A', 'R', 'S'],
    confers: true,
    targets: ['other', 'staff', 'manager', 'outside'],
    prepare: (k, self) => personOf(k, self, { endDate: dayFrom(100) }),
    request: (s) => ({
      method: 'POST',
      path: `/api/v1/role-profiles/${s.personRoleId}/dates`,
      body: { endDate: null, reason: 'table' },
    }),
  },
  {
    door: 'api',
    name: 'lengthen a role profile that is not assignable',
    may: ['M', 'A', 'R'],
    targets: ['other'],
    prepare: async () => {
      const p = await w.personIn('clerk', { endDate: dayFrom(100) });
      return { userId: p.userId, personRoleId: p.personRoleId };
    },
    request: (s) => ({
      method: 'POST',
      path: `/api/v1/role-profiles/${s.personRoleId}/dates`,
      body: { endDate: null, reason: 'table' },
    }),
  },
  {
    door: 'api',
    name: 'issue a smartcard',
    may: ['M', 'A', 'R'],
    confers: true,
    targets: PEOPLE,
    prepare: (k, self) => personOf(k, self),
    request: (s) => ({ method: 'POST', path: `/api/v1/people/${s.userId}/cards`, body: { kind: 'physical' } }),
  },
  {
    door: 'api',
    name: 'grant the first passcode of a card',
    may: ['M', 'A', 'R'],
    confers: true,
    targets: PEOPLE,
    prepare: async (k, self) => withCard(await personOf(k, self), 'awaiting_passcode'),
    request: (s) => ({ method: 'POST', path: `/api/v1/cards/${s.cardId}/passcode-grant` }),
  },
  {
    door: 'api',
    name: 'unlock a card',
    may: ['M', 'A', 'R', 'L'],
    confers: true,
    targets: PEOPLE,
    prepare: async (k, self) => withCard(await personOf(k, self)),
    request: (s) => ({ method: 'POST', path: `/api/v1/cards/${s.cardId}/unlock-grant`, body: { reason: 'table' } }),
  },
  {
    door: 'api',
    name: "renew a card's certificate at the desk",
    may: ['M', 'A', 'R', 'L'],
    confers: true,
    targets: PEOPLE,
    prepare: async (k, self) => withCard(await personOf(k, self)),
    request: (s) => ({ method: 'POST', path: `/api/v1/cards/${s.cardId}/renewal-challenge` }),
  },
  {
    door: 'api',
    name: 'cancel a card',
    may: ['M', 'A', 'R'],
    confers: true,
    targets: PEOPLE,
    prepare: async (k, self) => withCard(await personOf(k, self)),
    request: (s) => ({ method: 'POST', path: `/api/v1/cards/${s.cardId}/cancel`, body: { reason: 'lost' } }),
  },
  {
    door: 'api',
    name: 'send an enrolment link',
    may: ['M', 'A', 'R'],
    confers: true,
    targets: PEOPLE,
    prepare: (k, self) => personOf(k, self),
    request: (s) => ({ method: 'POST', path: `/api/v1/people/${s.userId}/enrolment-invitations`, body: {} }),
  },
  {
    door: 'api',
    name: 'remove an authenticator',
    may: ['M', 'A', 'R'],
    confers: true,
    targets: PEOPLE,
    prepare: async (k, self) => withTotp(await personOf(k, self)),
    request: (s) => ({ method: 'DELETE', path: `/api/v1/people/${s.userId}/authenticators/totp:${s.totpId}` }),
  },
  {
    door: 'api',
    name: 'read an Apply for Care ID application',
    may: ['M', 'A', 'R', 'I'],
    targets: ['other', 'outside'],
    prepare: (k) => application(k),
    request: (s) => ({ method: 'GET', path: `/api/v1/applications/${s.applicationId}` }),
  },
  {
    door: 'api',
    name: 'reject an application',
    may: ['M', 'A', 'R', 'I'],
    targets: ['other', 'outside'],
    prepare: (k) => application(k),
    request: (s) => ({
      method: 'POST',
      path: `/api/v1/applications/${s.applicationId}/reject`,
      body: { reason: 'table' },
    }),
  },
  {
    door: 'api',
    name: 'register a relying party',
    may: ['M'],
    targets: ['other', 'outside'],
    prepare: async (k) => ({ userId: '', odsCode: k === 'outside' ? 'RX1' : 'RR8' }),
    request: (s) => ({
      method: 'POST',
      path: '/api/v1/clients',
      body: {
        name: 'Table EPR',
        odsCode: s.odsCode,
        redirectUris: ['https://table.example.nhs.uk/cb'],
        tokenEndpointAuthMethod: 'client_secret_post',
      },
    }),
  },
  {
    door: 'api',
    name: 'disable a relying party',
    may: ['M'],
    targets: ['other', 'outside'],
    prepare: (k) => relyingParty(k),
    request: (s) => ({ method: 'POST', path: `/api/v1/clients/${s.clientId}/disable` }),
  },
  // ------------------------------------------------------------------------------------ organisations and positions
  // DOMAIN §3: an RA's powers reach their organisation's subtree, so every RA role reads the organisations and
  // positions there. The hierarchy is what every RA's reach is made of: changing it is setting RA policy (§5, RA
  // Managers only; an API client is never one). Managing positions and which are assignable is the RA Manager's and the
  // Advanced RA Agent's (§5; the RA Agent "may not change positions"), and a change to a position confers what it
  // appoints on its holders: appointment rules apply, and nobody changes a position they hold.
  {
    door: 'api',
    name: 'read an organisation tree',
    may: PERSON_ROLES_READ,
    targets: ['other', 'outside'],
    prepare: async (k) => ({ userId: '', odsCode: k === 'outside' ? 'RX1' : 'RR813' }),
    request: (s) => ({ method: 'GET', path: `/api/v1/organisations/${s.odsCode}/tree` }),
  },
  {
    door: 'api',
    name: "list an organisation's positions",
    may: PERSON_ROLES_READ,
    targets: ['other', 'outside'],
    prepare: async (k) => ({ userId: '', odsCode: k === 'outside' ? 'RX1' : 'RR813' }),
    request: (s) => ({ method: 'GET', path: `/api/v1/organisations/${s.odsCode}/positions` }),
  },
  {
    door: 'api',
    name: 'add an organisation',
    may: ['M'],
    targets: ['other', 'outside'],
    prepare: async (k) => ({ userId: '', odsCode: k === 'outside' ? 'RX1' : 'RR813' }),
    request: (s) => ({
      method: 'POST',
      path: '/api/v1/organisations',
      body: { odsCode: newOdsCode(), name: 'Table ward', type: 'site', parentOdsCode: s.odsCode },
    }),
  },
  {
    door: 'api',
    name: 'rename an organisation',
    may: ['M'],
    targets: ['other', 'outside'],
    prepare: (k) => organisationFor(k),
    request: (s) => ({ method: 'PATCH', path: `/api/v1/organisations/${s.odsCode}`, body: { name: 'Renamed ward' } }),
  },
  {
    door: 'api',
    name: 'move an organisation in the hierarchy',
    may: ['M'],
    targets: ['other', 'outside'],
    prepare: (k) => organisationFor(k),
    request: (s) => ({
      method: 'POST',
      path: `/api/v1/organisations/${s.odsCode}/move`,
      body: { parentOdsCode: 'RR813' },
    }),
  },
  {
    door: 'api',
    name: 'create a position',
    may: ['M', 'A'],
    targets: ['other', 'outside'],
    prepare: async (k) => ({ userId: '', odsCode: k === 'outside' ? 'RX1' : 'RR813' }),
    request: (s) => ({
      method: 'POST',
      path: `/api/v1/organisations/${s.odsCode}/positions`,
      body: { name: `Porter ${randomBytes(3).toString('hex')}`, jobRoles: ['R8008'], assignable: true },
    }),
  },
  {
    door: 'api',
    name: 'change a position',
    may: ['M', 'A'],
    confers: true,
    targets: ['other', 'staff', 'manager', 'outside', 'self'],
    prepare: (k, self) => positionFor(k, self),
    request: (s) => ({
      method: 'PATCH',
      path: `/api/v1/positions/${s.positionId}`,
      body: { name: 'Renamed position' },
    }),
  },
  {
    door: 'api',
    name: 'mark a position assignable',
    may: ['M', 'A'],
    confers: true,
    targets: ['other', 'staff', 'manager', 'outside', 'self'],
    prepare: (k, self) => positionFor(k, self),
    request: (s) => ({
      method: 'PUT',
      path: `/api/v1/positions/${s.positionId}/assignable`,
      body: { assignable: true },
    }),
  },
  // ---------------------------------------------------------------------------------------------------- console
  {
    door: 'console',
    name: "open a person's page",
    may: PERSON_ROLES_READ,
    selfRead: true,
    targets: PEOPLE,
    prepare: (k, self) => personOf(k, self),
    request: (s) => ({ method: 'GET', path: `/ra/people/${s.userId}` }),
  },
  ...(['suspend', 'leaver'] as const).map(
    (action): Operation => ({
      door: 'console',
      name: action === 'suspend' ? 'suspend a person' : 'mark a leaver',
      may: ['M', 'A', 'R'],
      confers: true,
      targets: PEOPLE,
      prepare: (k, self) => personOf(k, self),
      request: (s) => ({ method: 'POST', path: `/ra/people/${s.userId}/${action}`, form: { reason: 'table' } }),
    }),
  ),
  {
    door: 'console',
    name: 'change a name',
    may: ['M', 'A', 'R'],
    targets: PEOPLE,
    prepare: (k, self) => personOf(k, self),
    request: (s) => ({
      method: 'POST',
      path: `/ra/people/${s.userId}/name`,
      form: { givenName: 'Given', familyName: 'Renamed', evidenceType: 'marriage_certificate' },
    }),
  },
  {
    door: 'console',
    name: 'ask for a position that is not assignable',
    may: ['M', 'A', 'R', 'S'],
    direct: ['M', 'A', 'R'],
    targets: ['other', 'staff', 'self'],
    prepare: (k, self) => personOf(k, self),
    request: (s) => ({
      method: 'POST',
      path: `/ra/people/${s.userId}/access`,
      form: {
        odsCode: 'RR8',
        positionId: w.positions.clerk.positionId,
        ...dateForm('startDate', dayFrom(1)),
        reason: 'x',
      },
    }),
  },
  {
    door: 'console',
    name: 'end a role profile',
    may: ['M', 'A', 'R', 'S'],
    confers: true,
    targets: PEOPLE,
    prepare: (k, self) => personOf(k, self),
    request: (s) => ({
      method: 'POST',
      path: `/ra/people/${s.userId}/roles/${s.personRoleId}/end`,
      form: { reason: 'table' },
    }),
  },
  {
    door: 'console',
    name: "change a role profile's dates (from open-ended to a date)",
    may: ['M', 'A', 'R', 'S'],
    confers: true,
    targets: ['other', 'staff', 'manager', 'outside'],
    prepare: (k, self) => personOf(k, self),
    request: (s) => ({
      method: 'POST',
      path: `/ra/people/${s.userId}/roles/${s.personRoleId}/dates`,
      form: { ...dateForm('startDate', '2026-01-01'), ...dateForm('endDate', dayFrom(200)), reason: 'table' },
    }),
  },
  ...(['approve', 'reject'] as const).map(
    (decision): Operation => ({
      door: 'console',
      name: `${decision} an access request`,
      may: ['M', 'A', 'R'],
      confers: true,
      targets: ['other', 'staff', 'manager', 'outside', 'self', 'client'],
      prepare: (k, self) => pendingRequest(k, self),
      request: (s) => ({
        method: 'POST',
        path: `/ra/requests/${s.requestId}/decide`,
        form: { decision, reason: 'table' },
      }),
    }),
  ),
  {
    door: 'console',
    name: 'issue a smartcard (the desk page’s script)',
    may: ['M', 'A', 'R'],
    confers: true,
    targets: PEOPLE,
    prepare: (k, self) => personOf(k, self),
    request: (s) => ({ method: 'POST', path: `/ra/people/${s.userId}/cards`, body: { kind: 'physical' } }),
  },
  {
    door: 'console',
    name: 'unlock a card (the desk page’s script)',
    may: ['M', 'A', 'R', 'L'],
    confers: true,
    targets: PEOPLE,
    prepare: async (k, self) => withCard(await personOf(k, self)),
    request: (s) => ({ method: 'POST', path: `/ra/cards/${s.cardId}/unlock-grant`, body: { reason: 'table' } }),
  },
  {
    door: 'console',
    name: 'cancel a card',
    may: ['M', 'A', 'R'],
    confers: true,
    targets: PEOPLE,
    prepare: async (k, self) => withCard(await personOf(k, self)),
    request: (s) => ({
      method: 'POST',
      path: `/ra/people/${s.userId}/cards/${s.cardId}/cancel`,
      form: { choice: 'lost', reason: 'reported lost at the desk' },
    }),
  },
  {
    door: 'console',
    name: 'remove an authenticator',
    may: ['M', 'A', 'R'],
    confers: true,
    targets: PEOPLE,
    prepare: async (k, self) => withTotp(await personOf(k, self)),
    request: (s) => ({
      method: 'POST',
      path: `/ra/people/${s.userId}/authenticators/totp:${s.totpId}/remove`,
      form: { reason: 'phone lost' },
    }),
  },
  {
    door: 'console',
    name: 'add an organisation within one',
    may: ['M'],
    targets: ['other', 'outside'],
    prepare: async (k) => ({ userId: '', odsCode: k === 'outside' ? 'RX1' : 'RR813' }),
    request: (s) => ({
      method: 'POST',
      path: `/ra/organisations/${s.odsCode}/organisations`,
      form: { childOdsCode: newOdsCode(), childName: 'Table ward', childType: 'site' },
    }),
  },
  {
    door: 'console',
    name: 'create a position',
    may: ['M', 'A'],
    targets: ['other', 'outside'],
    prepare: async (k) => ({ userId: '', odsCode: k === 'outside' ? 'RX1' : 'RR8' }),
    request: (s) => ({
      method: 'POST',
      path: `/ra/organisations/${s.odsCode}/positions`,
      form: { positionName: `Porter ${randomBytes(3).toString('hex')}`, jobRoles: ['R8008'], assignable: 'yes' },
    }),
  },
  {
    door: 'console',
    name: 'reject an application',
    may: ['M', 'A', 'R', 'I'],
    targets: ['other', 'outside'],
    prepare: (k) => application(k),
    request: (s) => ({
      method: 'POST',
      path: `/ra/applications/${s.applicationId}/reject`,
      form: { rejectReason: 'table' },
    }),
  },
];

// -------------------------------------------------------------------------------------------------------------------
// The rule (DOMAIN §5) and the runner.

function expected(op: Operation, actor: ActorKey, kind: TargetKind): Expected {
  const roles = ROLES[actor];
  if (roles === 'aal2') return 'refused';
  if (op.door === 'console' && actor === 'apiClient') return 'refused';
  if (kind === 'self' && op.selfRead && (op.door === 'api' || roles.length > 0)) return 'allowed';
  const able = op.may.filter((r) => roles.includes(r));
  if (able.length === 0) return 'refused';
  if (kind === 'outside' && !op.national) return 'refused';
  if (kind === 'self') return 'refused';
  // A request the API client made is its registrar's own (and the client's own): neither decides it; they may withdraw it.
  if (kind === 'client' && (actor === 'registrar' || actor === 'apiClient'))
    return op.requesterMay ? 'allowed' : 'refused';
  if (op.confers && kind === 'staff' && !able.some((r) => r === 'M' || r === 'A')) return 'refused';
  if (op.confers && kind === 'manager' && !able.includes('M')) return 'refused';
  if (op.direct) return op.direct.some((r) => roles.includes(r)) ? 'approved' : 'pending';
  return 'allowed';
}

/** Everything about a person, their access and credentials that an RA action could change. */
async function stateOf(s: Subject): Promise<string> {
  const q = (sql: string, params: unknown[]) => w.server.t.db.query(sql, params).then((r) => JSON.stringify(r.rows));
  return [
    await q('SELECT status, version, family_name, identity_assurance_level FROM people WHERE user_id = $1', [s.userId]),
    await q(
      "SELECT person_roleid, status, to_char(start_date, 'YYYY-MM-DD') AS s, to_char(end_date, 'YYYY-MM-DD') AS e FROM role_profiles WHERE user_id = $1 ORDER BY 1",
      [s.userId],
    ),
    await q('SELECT card_id, status, version FROM cards WHERE user_id = $1 ORDER BY 1', [s.userId]),
    await q('SELECT count(*)::int AS n FROM card_grants g JOIN cards c ON c.card_id = g.card_id WHERE c.user_id = $1', [
      s.userId,
    ]),
    await q('SELECT request_id, status, version FROM access_requests WHERE user_id = $1 ORDER BY 1', [s.userId]),
    await q('SELECT count(*)::int AS n FROM enrolment_invitations WHERE user_id = $1', [s.userId]),
    await q('SELECT totp_id, status FROM totp_authenticators WHERE user_id = $1 ORDER BY 1', [s.userId]),
    await q('SELECT count(*)::int AS n FROM identity_checks WHERE user_id = $1', [s.userId]),
    await q('SELECT status FROM remote_applications WHERE application_id = $1', [s.applicationId ?? '0']),
    await q('SELECT status, count(*) OVER () FROM oidc_clients WHERE client_id = $1 OR ods_code = $2 ORDER BY 1', [
      s.clientId ?? '',
      s.odsCode ?? '',
    ]),
    await q('SELECT count(*)::int AS n FROM positions WHERE ods_code = $1', [s.odsCode ?? '']),
    await q(
      'SELECT ods_code, name, type, parent_ods_code FROM organisations WHERE ods_code = $1 OR parent_ods_code = $1 ORDER BY 1',
      [s.odsCode ?? ''],
    ),
    await q('SELECT name, assignable FROM positions WHERE position_id = $1', [s.positionId ?? '0']),
  ].join('\n');
}

async function run(op: Operation, caller: Caller, s: Subject) {
  const r = op.request(s);
  if (op.door === 'api' || r.body !== undefined) return w.call(caller, r.method, r.path, r.body);
  // Console pages and forms as a browser sends them; a redirect is the answer, not followed.
  let body: string | undefined;
  if (r.form) {
    const form = new URLSearchParams({ _csrf: caller.csrf ?? '' });
    for (const [k, v] of Object.entries(r.form)) for (const x of [v].flat()) form.append(k, x);
    body = form.toString();
  }
  const res = await fetch(`${w.url}${r.path}`, {
    method: r.method,
    redirect: 'manual',
    headers: {
      accept: 'text/html',
      ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      cookie: caller.headers.cookie ?? '',
    },
    ...(body ? { body } : {}),
  });
  return {
    status: res.status,
    body: { location: res.headers.get('location'), text: (await res.text()).slice(0, 300) },
  };
}

function isAllowedAnswer(op: Operation, res: { status: number; body: Answer }): boolean {
  if (op.door === 'console' && op.request({ userId: '' }).form) {
    return res.status === 303 && !String(res.body.location ?? '').startsWith('/signin');
  }
  return res.status >= 200 && res.status < 300;
}

function isRefusal(res: { status: number; body: Answer }): boolean {
  if ([401, 403, 404].includes(res.status)) return true;
  // The console sends a browser below AAL3 to sign in again.
  return res.status === 303 && String(res.body?.location ?? '').startsWith('/signin');
}

test(`[${backend}] the RA decision table: every door × actor × target answers as DOMAIN §5 says, and a refusal changes nothing`, async (t) => {
  const failures: string[] = [];
  let cells = 0;
  for (const op of ops) {
    for (const kind of op.targets) {
      let fresh: Subject | null = null;
      for (const actor of ACTORS) {
        if (op.door === 'console' && actor === 'apiClient') continue;
        const self = selfOf[actor];
        // A self target belongs to each actor; others are reused until a cell changes them.
        let subject: Subject;
        try {
          if (kind !== 'self' && fresh === null) fresh = await op.prepare(kind, self);
          subject = kind === 'self' ? await op.prepare(kind, self) : fresh!;
        } catch (err) {
          // Only an earlier cell that wrongly changed an actor (suspended them, ended their profile) gets here.
          failures.push(`${op.door} · ${op.name} · ${actor} · ${kind}: cannot prepare the target: ${String(err)}`);
          continue;
        }
        const want = expected(op, actor, kind);
        const beforeState = await stateOf(subject);
        const res = await run(op, callers[actor], subject);
        cells++;
        const label = `${op.door} · ${op.name} · ${actor} · ${kind}: expected ${want}, got ${res.status}`;
        if (want === 'refused') {
          if (!isRefusal(res)) failures.push(`${label} ${JSON.stringify(res.body).slice(0, 200)}`);
          else if ((await stateOf(subject)) !== beforeState) failures.push(`${label}: refused but something changed`);
          continue;
        }
        if (!isAllowedAnswer(op, res)) {
          failures.push(`${label} ${JSON.stringify(res.body).slice(0, 200)}`);
        } else if (want === 'approved' || want === 'pending') {
          const status =
            op.door === 'api'
              ? res.body?.request?.status
              : (
                  await w.server.t.db.query<{ status: string }>(
                    'SELECT status FROM access_requests WHERE user_id = $1 ORDER BY request_id DESC LIMIT 1',
                    [subject.userId],
                  )
                ).rows[0]?.status;
          if (status !== want) failures.push(`${label}: the request is ${status}`);
        }
        // An allowed read changes nothing either; a change means the next actor needs a fresh target.
        if (kind !== 'self' && (await stateOf(subject)) !== beforeState) fresh = null;
        // Undo what an allowed change did to a self target so the actor keeps their powers (never expected).
      }
    }
  }
  t.diagnostic(
    `${cells} cells: ${ops.length} operations (${ops.filter((o) => o.door === 'api').length} REST, ${ops.filter((o) => o.door === 'console').length} console) × actors × targets`,
  );
  console.log(`# RA decision table: ${cells} cells checked`);
  assert.deepEqual(failures, [], `${failures.length} of ${cells} cells disagree with DOMAIN §5`);
});

test(`[${backend}] the other doors: no dynamic client registration, the card agent takes only the server's grants, the CLI acts as the operator`, async () => {
  const clients = async () =>
    (await w.server.t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM oidc_clients')).rows[0]!.n;
  const before = await clients();
  for (const actor of ACTORS) {
    // OpenID Connect dynamic registration (RFC 7591) is not a door: relying parties are registered by RA Managers.
    const reg = await w.call(callers[actor], 'POST', '/oidc/reg', {
      redirect_uris: ['https://evil.example/cb'],
      client_name: 'self-registered',
    });
    assert.ok(reg.status >= 400 && reg.status < 500, `${actor}: /oidc/reg answered ${reg.status}`);
    // A card agent is trusted with a card only through a one-time grant the server issued: nobody's session opens it.
    const redeem = await w.call(callers[actor], 'POST', '/api/v1/card-agent/redeem', {
      grant: randomBytes(32).toString('base64url'),
      tokenSerial: 'TOKEN1',
    });
    assert.ok(redeem.status >= 400 && redeem.status < 500, `${actor}: redeem answered ${redeem.status}`);
  }
  assert.equal(await clients(), before, 'no client was registered');
  if (backend !== 'postgres') return; // the CLI runs in a process of its own: it needs a database it can share
  const rp = await relyingParty('other');
  const { cliEnvFor, runOpencis } = await import('../support/cli.ts');
  const res = await runOpencis(['client', 'disable', rp.clientId!], cliEnvFor(w.server.t));
  assert.equal(res.code, 0, res.stderr);
  const again = await w.call(callers.manager, 'POST', `/api/v1/clients/${rp.clientId}/enable`);
  assert.equal(again.status, 403, 'the operator disabled it: not an RA Manager’s to switch back on');
});
