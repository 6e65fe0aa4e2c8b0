import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { backend } from '../support/db.ts';
import { type Caller, type RaWorld, startRaWorld } from '../support/ra-world.ts';

/*
 * Route validation on the REST API (issue 16 acceptance 4), attacked: who is calling is decided before what they sent
 * — no credentials, a bad token or a cookie without its CSRF header is refused as before whatever the body — and a
 * body the route refuses gets the service's own code and changes nothing, not even an audit row of an action.
 */
let w: RaWorld;
let manager: Caller;
let api: Caller;

before(async () => {
  w = await startRaWorld();
  manager = await w.signIn(w.people.manager);
  api = await w.apiToken();
});
after(() => w.close());

async function rows(): Promise<string> {
  const q = async (sql: string) => JSON.stringify((await w.server.t.db.query(sql)).rows);
  return [
    await q('SELECT count(*) AS n FROM access_requests'),
    await q('SELECT count(*) AS n FROM role_profiles'),
    await q('SELECT count(*) AS n FROM people'),
    await q("SELECT count(*) AS n FROM audit_events WHERE action <> 'session.started'"),
  ].join('\n');
}

const malformed = { userId: 12, positionId: [], startDate: 'tomorrow', reason: '' };

test(`[${backend}] who is calling comes before what they sent: 401 without credentials or with a bad token, 403 without the CSRF header`, async () => {
  const before = await rows();
  const anonymous = await w.call(null, 'POST', '/api/v1/access-requests', malformed);
  assert.equal(anonymous.status, 401, JSON.stringify(anonymous.body));
  assert.equal(anonymous.body.error.code, 'auth.required');
  const badToken = await w.call(
    { headers: { authorization: 'Bearer not-a-token-we-issued' }, csrf: null },
    'POST',
    '/api/v1/people/search',
    { limit: 'all' },
  );
  assert.equal(badToken.status, 401, JSON.stringify(badToken.body));
  assert.equal(badToken.body.error.code, 'auth.required');
  const { 'csrf-token': _dropped, ...cookieOnly } = manager.headers;
  const forged = await w.call({ headers: cookieOnly, csrf: null }, 'POST', '/api/v1/access-requests', malformed);
  assert.equal(forged.status, 403, JSON.stringify(forged.body));
  assert.equal(forged.body.error.code, 'auth.csrf_invalid');
  // A read with a bad query, without credentials.
  const read = await w.call(null, 'GET', '/api/v1/audit?limit=-1');
  assert.equal(read.status, 401);
  assert.equal(await rows(), before, 'nothing changed');
});

test(`[${backend}] a body the route refuses answers the service's own code, for a person and an API client alike, and changes nothing`, async () => {
  const before = await rows();
  for (const caller of [manager, api]) {
    const res = await w.call(caller, 'POST', '/api/v1/access-requests', malformed);
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'request.invalid');
    const fields = res.body.error.details.problems.map((p: { field: string }) => p.field);
    for (const f of ['userId', 'positionId', 'startDate', 'reason']) assert.ok(fields.includes(f), `${f} named`);

    // The code the service gives a bad end date, from the route.
    const dates = await w.call(caller, 'POST', '/api/v1/access-requests', {
      userId: w.people.nonRa,
      positionId: w.positions.nurse.positionId,
      startDate: '2027-01-04',
      endDate: '2027-02-31',
      reason: 'Bank shifts',
    });
    assert.equal(dates.status, 400, JSON.stringify(dates.body));
    assert.equal(dates.body.error.code, 'role_profile.invalid_dates');

    // Query strings: a report's page size out of range.
    const report = await w.call(caller, 'GET', '/api/v1/reports/leavers?limit=100000');
    assert.equal(report.status, 400, JSON.stringify(report.body));
    assert.equal(report.body.error.code, 'request.invalid');
  }
  assert.equal(await rows(), before, 'refused, and nothing changed');
});

test(`[${backend}] what a service audits as a refused attempt still reaches it: a card agent's empty grant is card.grant_invalid, not a shape error`, async () => {
  const res = await w.call(null, 'POST', '/api/v1/card-agent/redeem', {});
  assert.equal(res.status, 403, JSON.stringify(res.body));
  assert.equal(res.body.error.code, 'card.grant_invalid');
  const renew = await w.call(manager, 'POST', '/api/v1/cards/1234567890123456/renew', { holderSeen: 'yes' });
  assert.notEqual(renew.status, 500);
  assert.notEqual(renew.body.error.code, undefined);
});
