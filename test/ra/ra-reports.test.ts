import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { requestAccess } from '../../src/services/ra.ts';
import { personActorWithPowers } from '../../src/services/ra-powers.ts';
import { type ConsoleBrowser, type ConsoleHarness, consoleHarness } from '../support/console.ts';
import { testContext } from '../support/context.ts';
import { backend } from '../support/db.ts';

/*
 * Reports filtered by organisation and date range, with CSV export (issue #14 acceptance 5): formula-safe cells, the
 * export audited, bad filters answered on the page with a 400.
 */
let h: ConsoleHarness;
let manager: ConsoleBrowser;
const who = {} as Record<'manager' | 'agent' | 'siteStarter' | 'trustStarter', string>;

before(async () => {
  h = await consoleHarness();
  who.manager = await h.person({}, await h.position('RR8', { name: 'RA Manager', jobRoles: ['R5080'] }));
  who.agent = await h.person({}, await h.position('RR8', { name: 'RA Agent', jobRoles: ['R5090'] }));
  const sponsorPosition = await h.position('RR8', { name: 'Sponsor', jobRoles: ['R8000'], activities: ['B1300'] });
  const sponsor = await h.person({}, sponsorPosition);
  // A position whose name a spreadsheet would run as a formula.
  const atSite = await h.position('RR813', { name: '=HYPERLINK("http://evil.example","x")', jobRoles: ['R8010'] });
  const atTrust = await h.position('RR8', { name: '@SUM(1+1)', jobRoles: ['R8010'] });
  who.siteStarter = await h.person({ givenName: 'Sita', familyName: 'Site' });
  who.trustStarter = await h.person({ givenName: 'Trudy', familyName: 'Trust' });
  const sponsorCtx = async () =>
    testContext(h.t.db, { clock: h.clock, actor: await personActorWithPowers(h.t.repos, sponsor, h.clock.now()) });
  h.clock.set('2026-11-26T10:00:00Z');
  await requestAccess(await sponsorCtx(), {
    userId: who.siteStarter,
    positionId: atSite,
    startDate: '2026-12-01',
    reason: 'New at the site',
  });
  h.clock.set('2026-11-28T10:00:00Z');
  await requestAccess(await sponsorCtx(), {
    userId: who.trustStarter,
    positionId: atTrust,
    startDate: '2026-12-01',
    reason: 'New at the trust',
  });
  h.clock.set('2026-11-30T09:00:00Z');
  manager = await h.signedIn(who.manager);
});

after(async () => h?.close());

function pendingNames(html: string): string[] {
  const table = /<table class="nhsuk-table" id="pending">([\s\S]*?)<\/table>/.exec(html)?.[1] ?? '';
  return [...table.matchAll(/<a href="\/ra\/people\/\d{12}">([^<]+)<\/a>/g)].map((m) => m[1]!);
}

test(`[${backend}] reports narrow to an organisation (and those within it) and a date range`, async () => {
  const all = await h.get(manager, '/ra/reports');
  assert.equal(all.statusCode, 200, all.body.slice(0, 300));
  assert.deepEqual(pendingNames(all.body).sort(), ['Sita Site', 'Trudy Trust']);
  // The organisation list offers the caller's organisations only.
  assert.match(all.body, /<option value="RR813">/);
  assert.doesNotMatch(all.body, /<option value="RX1">/);
  const site = await h.get(manager, '/ra/reports?org=RR813');
  assert.deepEqual(pendingNames(site.body), ['Sita Site']);
  const trust = await h.get(manager, '/ra/reports?org=RR8');
  assert.deepEqual(pendingNames(trust.body).sort(), ['Sita Site', 'Trudy Trust'], 'RR8 and its site');
  const later = await h.get(manager, '/ra/reports?from-day=27&from-month=11&from-year=2026');
  assert.deepEqual(pendingNames(later.body), ['Trudy Trust'], 'requested from 27 November');
  const earlier = await h.get(manager, '/ra/reports?to-day=27&to-month=11&to-year=2026');
  assert.deepEqual(pendingNames(earlier.body), ['Sita Site']);
  assert.match(earlier.body, /href="\/ra\/reports\/pending_requests\.csv\?to-day=27&amp;to-month=11&amp;to-year=2026"/);
});

test(`[${backend}] CSV export of a report: the same filter, formula-safe cells, and the export is audited`, async () => {
  const res = await h.get(manager, '/ra/reports/pending_requests.csv?org=RR8');
  assert.equal(res.statusCode, 200, res.body.slice(0, 300));
  assert.match(String(res.headers['content-type']), /^text\/csv/);
  assert.match(String(res.headers['content-disposition']), /filename="opencis-pending-requests-2026-11-30\.csv"/);
  const lines = res.body
    .replace(/^\uFEFF/, '')
    .trim()
    .split('\r\n');
  assert.equal(lines[0], 'request,user ID,name,position,ODS code,starts,requested by,requested,expires');
  assert.equal(lines.length, 3);
  assert.ok(
    lines.some((l) => l.includes(`,"'=HYPERLINK(""http://evil.example"",""x"")",RR813,`)),
    res.body,
  );
  assert.ok(
    lines.some((l) => l.includes(",'@SUM(1+1),RR8,")),
    res.body,
  );
  assert.ok(!lines.some((l) => /(^|,)[=+\-@]/.test(l)), 'no cell starts with a formula character');
  const site = await h.get(manager, '/ra/reports/pending_requests.csv?org=RR813');
  assert.equal(
    site.body
      .replace(/^\uFEFF/, '')
      .trim()
      .split('\r\n').length,
    2,
  );
  for (const report of ['cards_expiring', 'locked_cards', 'people_without_roles', 'roles_ending', 'leavers']) {
    const r = await h.get(manager, `/ra/reports/${report}.csv`);
    assert.equal(r.statusCode, 200, report);
    assert.match(r.body, /^\uFEFF[a-z]/, report);
  }
  const { rows } = await h.t.db.query<{ target_id: string; after: { rows: number; cut: boolean; filter: unknown } }>(
    "SELECT target_id, after FROM audit_events WHERE action = 'report.exported' ORDER BY seq LIMIT 1",
  );
  assert.equal(rows[0]?.target_id, 'pending_requests');
  assert.deepEqual(rows[0]!.after, { filter: { odsCode: 'RR8' }, rows: 2, cut: false });
});

test(`[${backend}] bad report filters: a clear message on the page, 400, and no file`, async () => {
  for (const [q, href] of [
    ['org=RX1', '#org'],
    ['org=NOPE!', '#org'],
    ['org=ZZ999', '#org'],
    ['from-day=30&from-month=2&from-year=2026', '#from-day'],
    ['from-day=2&from-month=11&from-year=2026&to-day=1&to-month=11&to-year=2026', '#to-day'],
  ] as const) {
    for (const url of [`/ra/reports?${q}`, `/ra/reports/leavers.csv?${q}`]) {
      const res = await h.get(manager, url);
      assert.equal(res.statusCode, 400, url);
      assert.match(String(res.headers['content-type']), /text\/html/, url);
      assert.match(res.body, new RegExp(`href="${href}"`), url);
    }
  }
  assert.equal((await h.get(manager, '/ra/reports/secrets.csv')).statusCode, 404);
  assert.equal((await h.get(manager, '/ra/reports/leavers.csv?within=lots')).statusCode, 400);
  // Reports are for RA staff with report:view; a sponsor has none.
  const agent = await h.signedIn(who.agent);
  assert.equal((await h.get(agent, '/ra/reports/leavers.csv')).statusCode, 200);
});
