import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { markLeaver } from '../../src/services/ra.ts';
import { personActorWithPowers } from '../../src/services/ra-powers.ts';
import { type ConsoleHarness, consoleHarness } from '../support/console.ts';
import { testContext } from '../support/context.ts';
import { backend } from '../support/db.ts';

/*
 * Attacks on the audit view's scope: every way of asking for another organisation's events (by person, by actor, by
 * organisation, by page cursor, over the API and the CSV export) gets nothing of them; readers without `audit:read`
 * get 403; nobody unauthenticated reads anything.
 */
let h: ConsoleHarness;
const who = {} as Record<'manager' | 'otherManager' | 'agent' | 'sponsor' | 'outside', string>;

before(async () => {
  h = await consoleHarness();
  who.manager = await h.person({}, await h.position('RR8', { name: 'RA Manager', jobRoles: ['R5080'] }));
  who.otherManager = await h.person({}, await h.position('RX1', { name: 'RA Manager', jobRoles: ['R5080'] }));
  who.agent = await h.person({}, await h.position('RR8', { name: 'RA Agent', jobRoles: ['R5090'] }));
  who.sponsor = await h.person(
    {},
    await h.position('RR8', { name: 'Sponsor', jobRoles: ['R8000'], activities: ['B1300'] }),
  );
  who.outside = await h.person(
    { givenName: 'Secret', familyName: 'Elsewhere' },
    await h.position('RX1', { name: 'Clerk', jobRoles: ['R8010'] }),
  );
  // The other trust's RA Manager marks their person as a leaver, with a reason only RX1 may read.
  const ctx = testContext(h.t.db, {
    clock: h.clock,
    actor: await personActorWithPowers(h.t.repos, who.otherManager, h.clock.now()),
  });
  await markLeaver(ctx, who.outside, { reason: 'confidential RX1 reason' });
});

after(async () => h?.close());

test(`[${backend}] no filter, page cursor or export shows an RA Manager another organisation's events`, async () => {
  const b = await h.signedIn(who.manager);
  const asks = [
    '/ra/audit',
    `/ra/audit?person=${who.outside}`,
    `/ra/audit?actor=${who.otherManager}`,
    '/ra/audit?action=person.left',
    '/ra/audit?before=999999999',
    '/ra/audit?after=0',
    `/ra/audit/export.csv?person=${who.outside}`,
    `/ra/audit/export.csv?actor=${who.otherManager}`,
    '/ra/audit/export.csv',
    `/api/v1/audit?person=${who.outside}`,
    '/api/v1/audit?after=0&limit=200',
    `/api/v1/audit/export?actor=${who.otherManager}`,
  ];
  for (const url of asks) {
    const res = await h.get(b, url);
    assert.equal(res.statusCode, 200, url);
    // (The filter form and the export link show back what was asked: the answer is the events.)
    const answer =
      url.startsWith('/ra/audit?') || url === '/ra/audit'
        ? (/<tbody[\s\S]*<\/tbody>/.exec(res.body)?.[0] ?? '')
        : res.body;
    assert.doesNotMatch(answer, /confidential RX1 reason|Secret Elsewhere/, url);
    assert.ok(!answer.includes(who.outside), `${url} names nobody of RX1`);
  }
  for (const url of ['/ra/audit?organisation=RX1', '/ra/audit?organisation=Y51', '/api/v1/audit?organisation=RX1']) {
    const res = await h.get(b, url);
    assert.equal(res.statusCode, 400, url);
    assert.doesNotMatch(res.body, /confidential RX1 reason/, url);
  }
  // The other RA Manager does see it.
  const other = await h.get(await h.signedIn(who.otherManager), `/ra/audit?person=${who.outside}`);
  assert.match(other.body, /confidential RX1 reason/);
});

test(`[${backend}] RA staff without audit:read, AAL2 sessions and callers with no session read nothing`, async () => {
  for (const userId of [who.agent, who.sponsor]) {
    const b = await h.signedIn(userId);
    for (const url of ['/ra/audit', '/ra/audit/export.csv']) {
      const res = await h.get(b, url);
      assert.equal(res.statusCode, 403, `${url} for ${userId}`);
      assert.doesNotMatch(res.body, /confidential RX1 reason/);
    }
    const api = await h.app.inject({ method: 'GET', url: '/api/v1/audit', headers: { cookie: b.cookie } });
    assert.equal(api.statusCode, 403);
    assert.equal((api.json() as { error: { code: string } }).error.code, 'auth.forbidden');
  }
  const nav = await h.get(await h.signedIn(who.agent), '/ra');
  assert.doesNotMatch(nav.body, /href="\/ra\/audit"/, 'no menu item either');
  const aal2 = await h.signedIn(who.manager, 2);
  assert.equal((await h.get(aal2, '/ra/audit')).statusCode, 303);
  const api2 = await h.app.inject({ method: 'GET', url: '/api/v1/audit', headers: { cookie: aal2.cookie } });
  assert.equal(api2.statusCode, 403);
  assert.equal((await h.get(null, '/ra/audit')).statusCode, 303);
  const anonymous = await h.app.inject({ method: 'GET', url: '/api/v1/audit' });
  assert.equal(anonymous.statusCode, 401);
  const anonymousCsv = await h.app.inject({ method: 'GET', url: '/api/v1/audit/export' });
  assert.equal(anonymousCsv.statusCode, 401);
});
