import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { suspend } from '../../src/services/ra.ts';
import { personActorWithPowers } from '../../src/services/ra-powers.ts';
import { type ConsoleBrowser, type ConsoleHarness, consoleHarness } from '../support/console.ts';
import { testContext } from '../support/context.ts';
import { backend } from '../support/db.ts';

/*
 * The audit view across targets (issue #14 acceptance 4): /ra/audit and GET /api/v1/audit, within the reader's scope
 * (the RA Manager's organisations, derived from each event's target), with filters, names, links, pages and CSV.
 */
let h: ConsoleHarness;
const who = {} as Record<'manager' | 'otherManager' | 'agent' | 'inside' | 'outside' | 'newStarter', string>;
let manager: ConsoleBrowser;

before(async () => {
  h = await consoleHarness();
  const managerAt = await h.position('RR8', { name: 'RA Manager', jobRoles: ['R5080'] });
  const managerElsewhere = await h.position('RX1', { name: 'RA Manager', jobRoles: ['R5080'] });
  const agentAt = await h.position('RR8', { name: 'RA Agent', jobRoles: ['R5090'] });
  const clerk = await h.position('RR813', { name: 'Ward clerk', jobRoles: ['R8010'] });
  const clerkElsewhere = await h.position('RX1', { name: 'Clerk', jobRoles: ['R8010'] });
  who.manager = await h.person({ givenName: 'Grace', familyName: 'Okafor' }, managerAt);
  who.otherManager = await h.person({ givenName: 'Olu', familyName: 'Other' }, managerElsewhere);
  who.agent = await h.person({ givenName: 'Aggie', familyName: 'Agent' }, agentAt);
  who.inside = await h.person({ givenName: 'Priya', familyName: 'Inside' }, clerk);
  who.outside = await h.person({ givenName: 'Oscar', familyName: 'Outside' }, clerkElsewhere);
  who.newStarter = await h.person({ givenName: 'Nina', familyName: 'Newstarter' });
  // The RA Manager suspends the person inside their trust, with a reason a spreadsheet would run as a formula.
  h.clock.set('2026-11-27T10:00:00Z');
  const ctx = testContext(h.t.db, {
    clock: h.clock,
    actor: await personActorWithPowers(h.t.repos, who.manager, h.clock.now()),
  });
  await suspend(ctx, who.inside, { reason: '=HYPERLINK("http://evil.example","click")' });
  await saveOrganisation(h.op(), { odsCode: 'RR814', name: 'Test Site Two', type: 'site', parentOdsCode: 'RR8' });
  manager = await h.signedIn(who.manager);
});

after(async () => h?.close());

function targetsOn(html: string): string[] {
  return [...html.matchAll(/href="\/ra\/people\/(\d{12})"/g)].map((m) => m[1]!);
}

test(`[${backend}] an RA Manager sees the events of their organisations and of new starters, nothing else`, async () => {
  const res = await h.get(manager, '/ra/audit');
  assert.equal(res.statusCode, 200, res.body.slice(0, 300));
  const ids = targetsOn(res.body);
  assert.ok(ids.includes(who.inside), 'a person at RR813 (in the RR8 subtree)');
  assert.ok(ids.includes(who.newStarter), 'a person with no organisation yet');
  assert.ok(!ids.includes(who.outside), 'not a person at RX1');
  assert.doesNotMatch(res.body, /Oscar Outside/);
  // Organisation events: RR814 (created within RR8), not Y51 or RX1.
  assert.match(res.body, /href="\/ra\/organisations\/RR814"/);
  assert.doesNotMatch(res.body, /href="\/ra\/organisations\/RX1"/);
  // Names beside IDs: the actor and the target, and links to the target.
  assert.match(res.body, /Grace Okafor<\/a> <span class="nhsuk-body-s ra-id">\(\d{12}\)/);
  assert.match(res.body, new RegExp(`<a href="/ra/people/${who.inside}">Priya Inside</a>`));
  assert.match(res.body, /Operator \(command line\)/);
  // The reason is text, escaped.
  assert.match(res.body, /=HYPERLINK\(&quot;http:\/\/evil\.example&quot;,&quot;click&quot;\)/);

  // The other trust's RA Manager sees the other side.
  const other = await h.get(await h.signedIn(who.otherManager), '/ra/audit');
  assert.ok(targetsOn(other.body).includes(who.outside));
  assert.ok(!targetsOn(other.body).includes(who.inside));
});

test(`[${backend}] filters: person, actor, action, organisation and dates`, async () => {
  // The events table only (the action filter's list names every action too).
  const only = async (q: string) => {
    const res = await h.get(manager, `/ra/audit?${q}`);
    assert.equal(res.statusCode, 200, `${q}: ${res.body.slice(0, 300)}`);
    return /<tbody class="nhsuk-table__body">([\s\S]*?)<\/tbody>/.exec(res.body)?.[1] ?? '';
  };
  const byPerson = await only(`person=${who.inside}`);
  assert.deepEqual(
    [...new Set(targetsOn(byPerson))].filter((id) => id !== who.manager),
    [who.inside],
  );
  assert.match(byPerson, /Status changed/);
  const byActor = await only(`actor=${who.manager}`);
  assert.match(byActor, /Status changed/);
  assert.doesNotMatch(byActor, /Record created/, 'the records were made by the operator');
  const byAction = await only('action=person.status_changed');
  assert.match(byAction, /Status changed/);
  assert.doesNotMatch(byAction, /Record created/);
  const byOrg = await only('organisation=RR813');
  assert.ok(targetsOn(byOrg).includes(who.inside));
  assert.ok(!targetsOn(byOrg).includes(who.newStarter));
  const onTheDay = await only('from-day=27&from-month=11&from-year=2026&to-day=27&to-month=11&to-year=2026');
  assert.match(onTheDay, /Status changed/);
  assert.doesNotMatch(onTheDay, /Record created/, 'registrations were the day before');
  const dayBefore = await only('to-day=26&to-month=11&to-year=2026');
  assert.doesNotMatch(dayBefore, /Status changed/);
});

test(`[${backend}] pages of 50, newest first, with newer and older links`, async () => {
  for (let i = 0; i < 60; i++) {
    await saveOrganisation(h.op(), {
      odsCode: `RR9${String(i).padStart(2, '0')}`,
      name: `Ward ${i}`,
      type: 'site',
      parentOdsCode: 'RR8',
    });
  }
  const first = await h.get(manager, '/ra/audit?action=organisation.created');
  const seqs = (html: string) =>
    [...html.matchAll(/<span class="nhsuk-body-s">#(\d+)<\/span>/g)].map((m) => Number(m[1]));
  const page1 = seqs(first.body);
  assert.equal(page1.length, 50);
  assert.deepEqual(
    page1,
    [...page1].sort((a, b) => b - a),
    'newest first',
  );
  assert.doesNotMatch(first.body, /id="newer-events"/);
  const older = /href="([^"]+)" id="older-events"/.exec(first.body)![1]!.replaceAll('&amp;', '&');
  assert.match(older, /action=organisation\.created/);
  const second = await h.get(manager, older);
  const page2 = seqs(second.body);
  assert.equal(page2.length, 13, 'RR8, RR813, RR814 and 60 wards: 63');
  assert.ok(Math.max(...page2) < Math.min(...page1));
  const newer = /href="([^"]+)" id="newer-events"/.exec(second.body)![1]!.replaceAll('&amp;', '&');
  assert.deepEqual(seqs((await h.get(manager, newer)).body), page1);
});

test(`[${backend}] CSV export: the filter's events, formula-safe, streamed, and the export itself is audited`, async () => {
  const res = await h.get(manager, `/ra/audit/export.csv?person=${who.inside}`);
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /^text\/csv/);
  assert.match(
    String(res.headers['content-disposition']),
    /^attachment; filename="opencis-audit-\d{4}-\d{2}-\d{2}\.csv"$/,
  );
  const lines = res.body
    .replace(/^\uFEFF/, '')
    .trim()
    .split('\r\n');
  assert.equal(lines[0], 'seq,time,actor,actor name,action,what,target type,target id,target name,reason,request id');
  const suspension = lines.find((l) => l.includes('person.status_changed'))!;
  assert.ok(suspension, res.body);
  assert.match(suspension, /,Grace Okafor,person\.status_changed,Status changed,person,\d{12},Priya Inside,/);
  // The formula is written with a leading apostrophe (and quoted, as it holds quotes and a comma).
  assert.match(suspension, /,"'=HYPERLINK\(""http:\/\/evil\.example"",""click""\)",/);
  assert.ok(!lines.some((l) => /(^|,)[=+\-@]/.test(l)), 'no cell starts with a formula character');
  const { rows } = await h.t.db.query<{ actor: string; after: { rows: number; cut: boolean } }>(
    "SELECT actor, after FROM audit_events WHERE action = 'audit.exported' ORDER BY seq DESC LIMIT 1",
  );
  assert.equal(rows[0]?.actor, `person:${who.manager}`);
  assert.deepEqual([rows[0]!.after.rows, rows[0]!.after.cut], [lines.length - 1, false]);
});

test(`[${backend}] the same over GET /api/v1/audit, in the same scope`, async () => {
  const res = await h.app.inject({
    method: 'GET',
    url: `/api/v1/audit?person=${who.inside}&limit=5`,
    headers: { cookie: manager.cookie },
  });
  assert.equal(res.statusCode, 200, res.body);
  const body = res.json() as {
    events: { action: string; targetId: string; reason: string | null }[];
    next: string | null;
  };
  assert.ok(body.events.length > 0 && body.events.every((e) => e.targetId === who.inside));
  assert.ok(body.events.some((e) => e.action === 'person.status_changed'));
  const all = (
    await h.app.inject({ method: 'GET', url: '/api/v1/audit?limit=200', headers: { cookie: manager.cookie } })
  ).json() as { events: { targetId: string }[] };
  assert.ok(!all.events.some((e) => e.targetId === who.outside));
  const csv = await h.app.inject({
    method: 'GET',
    url: `/api/v1/audit/export?person=${who.inside}`,
    headers: { cookie: manager.cookie },
  });
  assert.equal(csv.statusCode, 200);
  assert.match(csv.body, /person\.status_changed/);
  assert.match(JSON.stringify(h.app.swagger()), /\/api\/v1\/audit/);
});

test(`[${backend}] malformed filters and page cursors get a clear message (400), in the console and the API`, async () => {
  for (const [q, href] of [
    ['person=12345', '#person'],
    ['actor=%3Cscript%3E', '#actor'],
    ['action=DROP%20TABLE', '#action'],
    ['organisation=not-an-ods', '#organisation'],
    ['organisation=RX1', '#organisation'],
    ['organisation=ZZ999', '#organisation'],
    ['from-day=31&from-month=2&from-year=2026', '#from-day'],
    ['from-day=2&from-month=11&from-year=2026&to-day=1&to-month=11&to-year=2026', '#to-day'],
    ['from-day=1&from-month=1&from-year=1900', '#from-day'],
    ['before=abc', '#person'],
    ['before=1&after=2', '#person'],
    [`before=${'9'.repeat(30)}`, '#person'],
  ] as const) {
    const res = await h.get(manager, `/ra/audit?${q}`);
    assert.equal(res.statusCode, 400, q);
    assert.match(res.body, /nhsuk-error-summary/, q);
    assert.match(
      res.body,
      new RegExp(`href="${href}"`),
      `${q}: ${(/error-summary__list">([\s\S]*?)<\/ul>/.exec(res.body) ?? [])[1]}`,
    );
    if (!q.includes('before')) {
      const csv = await h.get(manager, `/ra/audit/export.csv?${q}`);
      assert.equal(csv.statusCode, 400, `export ${q}`);
    }
  }
  for (const q of ['person=12345', 'organisation=RX1', 'from=2026-02-31', 'before=abc', 'unknown=1', 'limit=0']) {
    const res = await h.app.inject({ method: 'GET', url: `/api/v1/audit?${q}`, headers: { cookie: manager.cookie } });
    assert.equal(res.statusCode, 400, q);
    assert.equal((res.json() as { error: { code: string } }).error.code, 'request.invalid', q);
  }
});
