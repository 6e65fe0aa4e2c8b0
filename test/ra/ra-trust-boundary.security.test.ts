import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { cardConfigFrom } from '../../src/http/deps.ts';
import { endRoleProfile, roleProfilesOf } from '../../src/services/access.ts';
import { startCardIssue } from '../../src/services/cards.ts';
import { registerClient } from '../../src/services/clients.ts';
import { getPerson } from '../../src/services/people.ts';
import { markLeaver, submitApplication } from '../../src/services/ra.ts';
import { backend } from '../support/db.ts';
import { tinyPng } from '../support/images.ts';
import { type RaWorld, startRaWorld } from '../support/ra-world.ts';

/*
 * The trust-boundary findings of issue 15, each as the attacker ran it over HTTP on the running server: a door that
 * checks the caller's power over the door but not what the action confers on the target. Every refusal is checked for
 * its status, its code and that nothing changed.
 */
let w: RaWorld;
before(async () => {
  w = await startRaWorld();
});
after(() => w.close());

const rows = async (userId: string) =>
  (await roleProfilesOf(w.op(), userId)).map((p) => `${p.personRoleId}:${p.status}:${p.startDate}:${p.endDate}`);

async function application(odsCode: string): Promise<string> {
  return (
    await submitApplication(
      { ...w.op(), actor: { kind: 'system', id: 'web:apply-for-care-id' } },
      {
        applicant: {
          givenName: 'Remote',
          familyName: `Applicant${odsCode}`,
          dateOfBirth: '1991-02-03',
          niNumber: `QQ${String(Date.now() % 1_000_000).padStart(6, '0')}D`,
          email: `applicant.${odsCode.toLowerCase()}@example.nhs.uk`,
        },
        odsCode,
        selfie: { data: tinyPng().toString('base64') },
        photoIdImage: { data: tinyPng().toString('base64') },
      },
      { ip: '192.0.2.9' },
    )
  ).applicationId;
}

test(`[${backend}] finding 1: an API client of RR8 lists only RR8's applications and reports, never another organisation's`, async () => {
  const mine = await application('RR813');
  const theirs = await application('RX1');
  const client = await w.apiToken();
  const list = await w.call(client, 'GET', '/api/v1/applications');
  assert.equal(list.status, 200, JSON.stringify(list.body));
  const ids = (list.body.applications as { applicationId: string }[]).map((a) => a.applicationId);
  assert.ok(ids.includes(mine), 'its own subtree is listed');
  assert.ok(!ids.includes(theirs), 'another organisation’s application (NI number, date of birth, photo ID) is not');
  assert.equal((await w.call(client, 'GET', `/api/v1/applications/${theirs}`)).status, 403);
  // A leaver of RX1 is not in the client's leavers report.
  const leaverX = await w.personIn('nurseX');
  await markLeaver(w.op(), leaverX.userId, { reason: 'left RX1' });
  const report = await w.call(client, 'GET', '/api/v1/reports/leavers');
  assert.equal(report.status, 200, JSON.stringify(report.body));
  const users = (report.body.lines as { userId: string }[]).map((l) => l.userId);
  assert.ok(!users.includes(leaverX.userId), 'the leavers report covers the client’s subtree only');
});

test(`[${backend}] finding 2: the registrar's API client cannot give the registrar access (segregation of duties)`, async () => {
  const client = await w.apiToken();
  const before = await rows(w.people.registrar);
  const res = await w.call(client, 'POST', '/api/v1/access-requests', {
    userId: w.people.registrar,
    positionId: w.positions.nurse.positionId,
    startDate: '2026-12-01',
    reason: 'through my own client',
  });
  assert.equal(res.status, 403, JSON.stringify(res.body));
  assert.equal(res.body.error.code, 'auth.forbidden');
  assert.deepEqual(await rows(w.people.registrar), before, 'no position was given');
  // Nor can the registrar approve what their client asked for someone else (an LSA appointment, which the client —
  // an RA Agent's powers — may ask for but not give).
  const other = await w.newPerson('Asked');
  const asked = await w.call(client, 'POST', '/api/v1/access-requests', {
    userId: other,
    positionId: w.positions.lsa.positionId,
    startDate: '2026-12-01',
    reason: 'pending for an RA',
  });
  assert.equal(asked.status, 201, JSON.stringify(asked.body));
  assert.equal(asked.body.request.status, 'pending');
  const registrar = await w.signIn(w.people.registrar);
  const approve = await w.call(
    registrar,
    'POST',
    `/api/v1/access-requests/${asked.body.request.requestId}/approve`,
    {},
  );
  assert.equal(approve.status, 403, JSON.stringify(approve.body));
  assert.deepEqual(await rows(other), []);
});

test(`[${backend}] finding 2: an API client stops working when its registrar loses the RA Manager role`, async () => {
  const registrar = await w.personIn('manager');
  const ctx = await w.as(registrar.userId);
  const api = await registerClient(ctx, {
    name: 'Short-lived scripts',
    tokenEndpointAuthMethod: 'client_secret_basic',
    apiAccess: { odsCode: 'RR8', activities: ['B0274'] },
  });
  const client = await w.apiToken(api.client.clientId, api.clientSecret!);
  const search = () => w.call(client, 'POST', '/api/v1/people/search', { userId: w.people.nonRa });
  assert.equal((await search()).status, 200);
  await endRoleProfile(w.op(), registrar.personRoleId, 'no longer an RA Manager');
  const res = await search();
  assert.equal(res.status, 403, JSON.stringify(res.body));
  assert.equal(res.body.error.code, 'auth.forbidden');
});

test(`[${backend}] finding 3: a Sponsor cannot move, widen or end an RA Manager appointment; an expired one cannot be revived`, async () => {
  const sponsor = await w.signIn(w.people.sponsor);
  const future = await w.personIn('manager', { startDate: '2026-12-10', endDate: '2027-01-10' });
  const before = await rows(future.userId);
  const widen = await w.call(sponsor, 'POST', `/api/v1/role-profiles/${future.personRoleId}/dates`, {
    startDate: '2026-11-26',
    endDate: null,
    reason: 'from today, no end',
  });
  assert.equal(widen.status, 403, JSON.stringify(widen.body));
  assert.equal(widen.body.error.code, 'auth.forbidden');
  const end = await w.call(sponsor, 'POST', `/api/v1/role-profiles/${future.personRoleId}/end`, { reason: 'ended' });
  assert.equal(end.status, 403, JSON.stringify(end.body));
  assert.deepEqual(await rows(future.userId), before);
  // An appointment whose end date has passed stays ended: moving the end date into the future would revive it.
  const expired = await w.personIn('manager', { startDate: '2026-01-01', endDate: '2026-06-30' });
  const manager = await w.signIn(w.people.manager);
  const expiredBefore = await rows(expired.userId);
  const revive = await w.call(manager, 'POST', `/api/v1/role-profiles/${expired.personRoleId}/dates`, {
    endDate: '2027-06-30',
    reason: 'revive',
  });
  assert.equal(revive.status, 409, JSON.stringify(revive.body));
  assert.equal(revive.body.error.code, 'role_profile.already_ended');
  assert.deepEqual(await rows(expired.userId), expiredBefore);
});

test(`[${backend}] finding 3: an RA Agent cannot suspend or mark a leaver an RA Manager of their organisation`, async () => {
  const agent = await w.signIn(w.people.agent);
  const manager = await w.personIn('manager');
  for (const action of ['suspend', 'leaver']) {
    const res = await w.call(agent, 'POST', `/api/v1/people/${manager.userId}/${action}`, { reason: 'coup' });
    assert.equal(res.status, 403, `${action}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error.code, 'auth.forbidden');
  }
  assert.equal((await getPerson(w.op(), manager.userId)).status, 'active');
  assert.deepEqual(
    (await roleProfilesOf(w.op(), manager.userId)).map((p) => p.status),
    ['active'],
  );
});

test(`[${backend}] finding 4: a leaver in one organisation keeps their access, cards and status in the others`, async () => {
  const locum = await w.personIn('nurse');
  const elsewhere = await w.give(locum.userId, 'nurseX');
  const { card } = await startCardIssue(w.op(), cardConfigFrom(w.server.config), {
    userId: locum.userId,
    kind: 'physical',
  });
  const agent = await w.signIn(w.people.agent);
  const suspend = await w.call(agent, 'POST', `/api/v1/people/${locum.userId}/suspend`, { reason: 'one trust' });
  assert.equal(suspend.status, 403, `suspend reaches RX1: ${JSON.stringify(suspend.body)}`);
  assert.equal((await getPerson(w.op(), locum.userId)).status, 'active');
  const res = await w.call(agent, 'POST', `/api/v1/people/${locum.userId}/leaver`, { reason: 'left RR8' });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body.roleProfilesEnded, [locum.personRoleId]);
  assert.deepEqual(res.body.cardsCancelled, []);
  const profiles = await roleProfilesOf(w.op(), locum.userId);
  assert.equal(profiles.find((p) => p.personRoleId === elsewhere)?.status, 'active', 'RX1 keeps the locum');
  assert.equal(profiles.find((p) => p.personRoleId === locum.personRoleId)?.status, 'ended');
  assert.equal((await getPerson(w.op(), locum.userId)).status, 'active');
  const cards = await w.call(await w.signIn(w.people.manager), 'GET', `/api/v1/cards/${card.cardId}`);
  assert.notEqual(cards.body.status, 'cancelled', JSON.stringify(cards.body));
});

test(`[${backend}] finding 5: an RA Manager cannot disable or re-enable another organisation's or the operator's relying party`, async () => {
  const national = await registerClient(w.op(), {
    name: 'National EPR (operator)',
    redirectUris: ['https://epr.example.nhs.uk/cb'],
    tokenEndpointAuthMethod: 'client_secret_basic',
  });
  const manager = await w.signIn(w.people.manager);
  const off = await w.call(manager, 'POST', `/api/v1/clients/${national.client.clientId}/disable`);
  assert.equal(off.status, 403, JSON.stringify(off.body));
  const managerX = await w.signIn((await w.personIn('managerX')).userId);
  const mine = await w.call(manager, 'POST', '/api/v1/clients', {
    name: 'RR8 ward app',
    odsCode: 'RR8',
    redirectUris: ['https://ward.example.nhs.uk/cb'],
    tokenEndpointAuthMethod: 'client_secret_post',
  });
  assert.equal(mine.status, 201, JSON.stringify(mine.body));
  const theirs = await w.call(managerX, 'POST', `/api/v1/clients/${mine.body.client.clientId}/disable`);
  assert.equal(theirs.status, 403, JSON.stringify(theirs.body));
  // The operator disables RR8's client; its RA Manager may not switch it back on.
  const { setClientStatus } = await import('../../src/services/clients.ts');
  await setClientStatus(w.op(), mine.body.client.clientId, 'disabled');
  const back = await w.call(manager, 'POST', `/api/v1/clients/${mine.body.client.clientId}/enable`);
  assert.equal(back.status, 403, JSON.stringify(back.body));
});

test(`[${backend}] finding 5: registering an API client over the API answers 201 with its secret, once`, async () => {
  const manager = await w.signIn(w.people.manager);
  const res = await w.call(manager, 'POST', '/api/v1/clients', {
    name: 'RR8 scripts 2',
    tokenEndpointAuthMethod: 'client_secret_basic',
    apiAccess: { odsCode: 'RR8', activities: ['B0274'] },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  assert.equal(typeof res.body.clientSecret, 'string');
  assert.ok(res.body.clientSecret.length >= 32);
  const token = await w.apiToken(res.body.client.clientId, res.body.clientSecret);
  assert.equal((await w.call(token, 'POST', '/api/v1/people/search', { userId: w.people.nonRa })).status, 200);
});
