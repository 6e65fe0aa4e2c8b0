import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { createPosition } from '../../src/services/access.ts';
import { registerClient } from '../../src/services/clients.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { backend } from '../support/db.ts';
import { type Caller, type RaWorld, startRaWorld } from '../support/ra-world.ts';

/*
 * Organisations and positions over the REST API (issue 18): what works, and the attacks — another organisation's
 * hierarchy, a Sponsor managing positions, an API client scoped to one subtree, moving an organisation under a parent
 * one has no power over (or taking another RA's subtree), changing a position one holds, making a position appoint
 * an RA Manager without that power. Every refusal answers its status and code and changes no row.
 *
 *   QWO (ICB) ─ RR8 (trust) ─ RR813 (site)        Y51 (another ICB) ─ RX1 (trust)
 */

let w: RaWorld;
let manager: Caller;
let advanced: Caller;
let sponsor: Caller;
let agent: Caller;
let api: Caller;
let api813: Caller;

before(async () => {
  w = await startRaWorld();
  manager = await w.signIn(w.people.manager);
  advanced = await w.signIn(w.people.advanced);
  sponsor = await w.signIn(w.people.sponsor);
  agent = await w.signIn(w.people.agent);
  api = await w.apiToken();
  // An API client of the site RR813 alone (an RA Agent's and a Sponsor's activities: API clients never manage positions).
  const site = await registerClient(await w.as(w.people.registrar), {
    name: 'RR813 scripts',
    tokenEndpointAuthMethod: 'client_secret_basic',
    apiAccess: { odsCode: 'RR813', activities: ['B0274', 'B1300'] },
  });
  api813 = await w.apiToken(site.client.clientId, site.clientSecret!);
});
after(() => w.close());

const code = () =>
  `Z${randomBytes(2)
    .toString('hex')
    .toUpperCase()
    .replace(/[^A-Z0-9]/g, '0')}`.slice(0, 5);

/** Every row the hierarchy and the positions are made of (what a refusal must leave as it was). */
async function snapshot(): Promise<string> {
  const q = async (sql: string) => JSON.stringify((await w.server.t.db.query(sql)).rows);
  return [
    await q('SELECT ods_code, name, type, parent_ods_code, status FROM organisations ORDER BY 1'),
    await q('SELECT position_id, ods_code, name, assignable, status FROM positions ORDER BY 1'),
    await q('SELECT position_id, job_role_code FROM position_job_roles ORDER BY 1, 2'),
    await q('SELECT position_id, activity_code FROM position_activities ORDER BY 1, 2'),
  ].join('\n');
}

async function refused(caller: Caller, method: string, path: string, body: unknown, status: number, error: string) {
  const beforeState = await snapshot();
  const res = await w.call(caller, method, path, body);
  assert.equal(res.status, status, `${method} ${path}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.error.code, error, `${method} ${path}`);
  assert.equal(await snapshot(), beforeState, `${method} ${path}: refused but something changed`);
}

async function organisationIn(parentOdsCode: string): Promise<string> {
  const odsCode = code();
  await saveOrganisation(w.op(), { odsCode, name: `Ward ${odsCode}`, type: 'site', parentOdsCode });
  return odsCode;
}

test(`[${backend}] an RA Manager reads, adds, changes and moves organisations in their subtree, and manages its positions`, async () => {
  const tree = await w.call(manager, 'GET', '/api/v1/organisations/RR8/tree');
  assert.equal(tree.status, 200, JSON.stringify(tree.body));
  assert.equal(tree.body.root, 'RR8');
  assert.deepEqual(
    tree.body.organisations.map((o: { odsCode: string; parentOdsCode: string | null }) => [o.odsCode, o.parentOdsCode]),
    [
      ['RR8', null], // QWO is above their reach: not shown
      ['RR813', 'RR8'],
    ],
  );

  const odsCode = code();
  const created = await w.call(manager, 'POST', '/api/v1/organisations', {
    odsCode,
    name: 'Ward 9',
    type: 'site',
    parentOdsCode: 'RR8',
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.organisation.parentOdsCode, 'RR8');
  const renamed = await w.call(manager, 'PATCH', `/api/v1/organisations/${odsCode}`, { name: 'Ward 9 (east)' });
  assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
  assert.equal(renamed.body.organisation.name, 'Ward 9 (east)');
  assert.equal(renamed.body.outcome, 'updated');
  const moved = await w.call(manager, 'POST', `/api/v1/organisations/${odsCode}/move`, { parentOdsCode: 'RR813' });
  assert.equal(moved.status, 200, JSON.stringify(moved.body));
  assert.equal(moved.body.organisation.parentOdsCode, 'RR813');
  const again = await w.call(manager, 'POST', '/api/v1/organisations', {
    odsCode,
    name: 'Again',
    parentOdsCode: 'RR8',
  });
  assert.equal(again.status, 409);
  assert.equal(again.body.error.code, 'organisation.exists');

  const position = await w.call(manager, 'POST', `/api/v1/organisations/${odsCode}/positions`, {
    name: 'Porter',
    jobRoles: ['R8008'],
  });
  assert.equal(position.status, 201, JSON.stringify(position.body));
  assert.equal(position.body.position.assignable, false);
  const id = position.body.position.positionId;
  const marked = await w.call(manager, 'PUT', `/api/v1/positions/${id}/assignable`, { assignable: true });
  assert.equal(marked.status, 200, JSON.stringify(marked.body));
  assert.equal(marked.body.position.assignable, true);
  const changed = await w.call(manager, 'PATCH', `/api/v1/positions/${id}`, {
    name: 'Senior porter',
    jobRoles: ['R8008', 'R8010'],
  });
  assert.equal(changed.status, 200, JSON.stringify(changed.body));
  assert.deepEqual(changed.body.position.jobRoles, ['R8008', 'R8010']);
  const listed = await w.call(sponsor, 'GET', `/api/v1/organisations/${odsCode}/positions`);
  assert.equal(listed.status, 200);
  assert.deepEqual(
    listed.body.positions.map((p: { name: string; assignable: boolean }) => [p.name, p.assignable]),
    [['Senior porter', true]],
  );
  const audit = await w.server.t.db.query<{ action: string }>(
    'SELECT action FROM audit_events WHERE target_id IN ($1, $2) ORDER BY seq',
    [odsCode, id],
  );
  assert.deepEqual(
    audit.rows.map((r) => r.action),
    [
      'organisation.created',
      'organisation.updated',
      'organisation.updated',
      'position.created',
      'position.updated',
      'position.updated',
    ],
  );
});

test(`[${backend}] another organisation's hierarchy and positions are out of reach`, async () => {
  const outside = await organisationIn('RX1');
  await refused(manager, 'GET', '/api/v1/organisations/RX1/tree', undefined, 403, 'auth.forbidden');
  await refused(
    manager,
    'POST',
    '/api/v1/organisations',
    { odsCode: code(), name: 'Mine', parentOdsCode: 'RX1' },
    403,
    'auth.forbidden',
  );
  await refused(manager, 'PATCH', `/api/v1/organisations/${outside}`, { name: 'Taken' }, 403, 'auth.forbidden');
  await refused(
    manager,
    'POST',
    `/api/v1/organisations/RX1/positions`,
    { name: 'Spy', jobRoles: ['R8008'] },
    403,
    'auth.forbidden',
  );
  await refused(
    manager,
    'PATCH',
    `/api/v1/positions/${w.positions.nurseX.positionId}`,
    { name: 'Renamed' },
    403,
    'auth.forbidden',
  );
  await refused(
    manager,
    'PUT',
    `/api/v1/positions/${w.positions.agentX.positionId}/assignable`,
    { assignable: true },
    403,
    'auth.forbidden',
  );
  await refused(manager, 'GET', '/api/v1/organisations/RX1/positions', undefined, 403, 'auth.forbidden');
  // Top-level organisations are the operator's.
  await refused(
    manager,
    'POST',
    '/api/v1/organisations',
    { odsCode: code(), name: 'New ICB', type: 'icb' },
    403,
    'auth.forbidden',
  );
});

test(`[${backend}] moving an organisation needs power over it and over where it goes`, async () => {
  const mine = await organisationIn('RR8');
  const theirs = await organisationIn('RX1');
  // Handing a subtree (and its people) to another RA.
  await refused(manager, 'POST', `/api/v1/organisations/${mine}/move`, { parentOdsCode: 'RX1' }, 403, 'auth.forbidden');
  // Taking another RA's subtree.
  await refused(
    manager,
    'POST',
    `/api/v1/organisations/${theirs}/move`,
    { parentOdsCode: 'RR8' },
    403,
    'auth.forbidden',
  );
  // Lifting one's own organisation out of its parent (to the top, or above one's reach).
  await refused(manager, 'POST', '/api/v1/organisations/RR8/move', { parentOdsCode: 'Y51' }, 403, 'auth.forbidden');
  await refused(manager, 'POST', `/api/v1/organisations/${mine}/move`, { parentOdsCode: null }, 403, 'auth.forbidden');
  // A cycle is refused for what it is.
  const child = await organisationIn(mine);
  await refused(
    manager,
    'POST',
    `/api/v1/organisations/${mine}/move`,
    { parentOdsCode: child },
    400,
    'organisation.hierarchy_cycle',
  );
  // A parent nobody has is outside everyone's reach: refused as such, telling nothing of what exists elsewhere.
  await refused(
    manager,
    'POST',
    `/api/v1/organisations/${mine}/move`,
    { parentOdsCode: 'ZZZ99' },
    403,
    'auth.forbidden',
  );
});

test(`[${backend}] a Sponsor and an RA Agent read positions but do not manage them (DOMAIN §5)`, async () => {
  const id = w.positions.clerk.positionId;
  for (const caller of [sponsor, agent]) {
    const listed = await w.call(caller, 'GET', '/api/v1/organisations/RR8/positions');
    assert.equal(listed.status, 200);
    await refused(
      caller,
      'POST',
      '/api/v1/organisations/RR8/positions',
      { name: 'Mine', jobRoles: ['R8008'] },
      403,
      'auth.forbidden',
    );
    await refused(caller, 'PUT', `/api/v1/positions/${id}/assignable`, { assignable: true }, 403, 'auth.forbidden');
    await refused(caller, 'PATCH', `/api/v1/positions/${id}`, { name: 'Renamed' }, 403, 'auth.forbidden');
    await refused(
      caller,
      'POST',
      '/api/v1/organisations',
      { odsCode: code(), name: 'X', parentOdsCode: 'RR8' },
      403,
      'auth.forbidden',
    );
    await refused(caller, 'PATCH', '/api/v1/organisations/RR813', { name: 'Renamed' }, 403, 'auth.forbidden');
  }
});

test(`[${backend}] a position change is decided as a whole: not one's own, and not making RA Managers without that power`, async () => {
  const p = await createPosition(w.op(), 'RR8', { name: `Clerk ${code()}`, jobRoles: ['R8010'] });
  // An Advanced RA Agent appoints RA staff, never RA Managers.
  await refused(advanced, 'PATCH', `/api/v1/positions/${p.positionId}`, { jobRoles: ['R5080'] }, 403, 'auth.forbidden');
  const staff = await w.call(advanced, 'PATCH', `/api/v1/positions/${p.positionId}`, { activities: ['B0264'] });
  assert.equal(staff.status, 200, JSON.stringify(staff.body));
  // Nor may they take away what an RA Manager position appoints (that is ending those appointments).
  await refused(
    advanced,
    'PATCH',
    `/api/v1/positions/${w.positions.manager.positionId}`,
    { jobRoles: ['R8010'] },
    403,
    'auth.forbidden',
  );
  // Nobody changes a position they hold: it is their own access.
  await refused(
    manager,
    'PATCH',
    `/api/v1/positions/${w.positions.manager.positionId}`,
    { name: 'Boss' },
    403,
    'auth.forbidden',
  );
  await refused(
    advanced,
    'PUT',
    `/api/v1/positions/${w.positions.advanced.positionId}/assignable`,
    { assignable: true },
    403,
    'auth.forbidden',
  );
  await refused(manager, 'PATCH', '/api/v1/positions/999999999', { name: 'Nobody' }, 404, 'position.not_found');
  await refused(
    manager,
    'PATCH',
    `/api/v1/positions/${p.positionId}`,
    { jobRoles: ['R9999'] },
    400,
    'rbac.unknown_code',
  );
  await refused(manager, 'PATCH', `/api/v1/positions/${p.positionId}`, {}, 400, 'request.invalid');
});

test(`[${backend}] an API client acts only within its organisation's subtree, and never on the hierarchy`, async () => {
  // RR8's client (RA Agent, Sponsor, ID Checker, LSA activities): reads RR8's tree and positions, changes nothing.
  assert.equal((await w.call(api, 'GET', '/api/v1/organisations/RR8/tree')).status, 200);
  assert.equal((await w.call(api, 'GET', '/api/v1/organisations/RR813/positions')).status, 200);
  await refused(api, 'GET', '/api/v1/organisations/RX1/tree', undefined, 403, 'auth.forbidden');
  await refused(
    api,
    'POST',
    '/api/v1/organisations',
    { odsCode: code(), name: 'X', parentOdsCode: 'RR8' },
    403,
    'auth.forbidden',
  );
  await refused(
    api,
    'POST',
    '/api/v1/organisations/RR8/positions',
    { name: 'X', jobRoles: ['R8008'] },
    403,
    'auth.forbidden',
  );
  // RR813's client: its site, not the trust above it.
  assert.equal((await w.call(api813, 'GET', '/api/v1/organisations/RR813/tree')).status, 200);
  assert.equal((await w.call(api813, 'GET', '/api/v1/organisations/RR813/positions')).status, 200);
  await refused(api813, 'GET', '/api/v1/organisations/RR8/tree', undefined, 403, 'auth.forbidden');
  await refused(
    api813,
    'POST',
    '/api/v1/organisations/RR8/positions',
    { name: 'Up', jobRoles: ['R8008'] },
    403,
    'auth.forbidden',
  );
  await refused(
    api813,
    'PUT',
    `/api/v1/positions/${w.positions.clerk.positionId}/assignable`,
    { assignable: true },
    403,
    'auth.forbidden',
  );
  await refused(api813, 'POST', `/api/v1/organisations/RR813/move`, { parentOdsCode: 'RR8' }, 403, 'auth.forbidden');
  await refused(
    api813,
    'POST',
    '/api/v1/organisations',
    { odsCode: code(), name: 'X', parentOdsCode: 'RR813' },
    403,
    'auth.forbidden',
  );
  // Without credentials: told to authenticate; with the cookie but no CSRF header: told which header.
  await refused(
    null as unknown as Caller,
    'POST',
    '/api/v1/organisations/RR8/positions',
    { name: 'X', jobRoles: ['R8008'] },
    401,
    'auth.required',
  );
  const noCsrf = { headers: { cookie: manager.headers.cookie! }, csrf: null };
  await refused(noCsrf, 'PATCH', '/api/v1/organisations/RR813', { name: 'X' }, 403, 'auth.csrf_invalid');
});
