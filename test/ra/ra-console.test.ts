import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { cardConfigFrom, relyingPartyFrom, type WebDeps } from '../../src/http/deps.ts';
import { registerRaConsole } from '../../src/ra/console/index.ts';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { getCard, startCardIssue } from '../../src/services/cards.ts';
import { ensureCertificateAuthority } from '../../src/services/certificates.ts';
import { getPerson, registerPerson } from '../../src/services/people.ts';
import { getRequest, requestAccess, submitApplication } from '../../src/services/ra.ts';
import { personActorWithPowers } from '../../src/services/ra-powers.ts';
import { startSession } from '../../src/services/sessions.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { TestClock, testContext, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';
import { tinyPng } from '../support/images.ts';
import { saveTestOrganisations } from '../support/organisations.ts';

let t: TestDatabase;
let app: FastifyInstance;
const clock = new TestClock(new Date('2026-11-26T09:00:00Z'));
const TODAY = '2026-11-26';
const op = () => testContext(t.db, { clock });

const pos = {} as Record<'manager' | 'agent' | 'sponsor' | 'otherAgent' | 'clerk' | 'nurse', string>;
const who = {} as Record<'manager' | 'agent' | 'sponsor' | 'otherAgent' | 'nonRa' | 'subject' | 'hostile', string>;
let requestId: string;
let applicationId: string;
let cardId: string;
let subjectRoleId: string;

let n = 0;
async function newPerson(extra: Record<string, unknown> = {}) {
  n++;
  return registerPerson(op(), {
    givenName: `Given${n}`,
    familyName: `Console${n}`,
    dateOfBirth: '1981-04-12',
    niNumber: `RC${String(100000 + n)}C`,
    email: `console${n}@example.nhs.uk`,
    identityAssuranceLevel: 3,
    ...extra,
  });
}

before(async () => {
  t = await createTestDatabase();
  await saveTestOrganisations(op());
  await ensureCertificateAuthority(op());
  const position = async (odsCode: string, p: Record<string, unknown>) =>
    (await createPosition(op(), odsCode, p)).positionId;
  pos.manager = await position('RR8', { name: 'RA Manager', jobRoles: ['R5080'] });
  pos.agent = await position('RR8', { name: 'RA Agent', jobRoles: ['R5090'] });
  pos.sponsor = await position('RR8', { name: 'Ward manager (sponsor)', jobRoles: ['R8000'], activities: ['B1300'] });
  pos.otherAgent = await position('RX1', { name: 'RA Agent', jobRoles: ['R5090'] });
  pos.clerk = await position('RR813', { name: 'Ward clerk', jobRoles: ['R8010'] });
  pos.nurse = await position('RR813', { name: 'Ward nurse', jobRoles: ['R8001'], assignable: true });
  const hire = async (positionId: string, extra: Record<string, unknown> = {}) => {
    const p = await newPerson(extra);
    const rp = await assignRoleProfile(op(), { userId: p.userId, positionId, startDate: TODAY });
    return { userId: p.userId, personRoleId: rp.personRoleId };
  };
  who.manager = (await hire(pos.manager)).userId;
  who.agent = (await hire(pos.agent)).userId;
  who.sponsor = (await hire(pos.sponsor)).userId;
  who.otherAgent = (await hire(pos.otherAgent)).userId;
  who.nonRa = (await hire(pos.clerk)).userId;
  const subject = await hire(pos.clerk, { givenName: 'Priya', familyName: 'Raman' });
  who.subject = subject.userId;
  subjectRoleId = subject.personRoleId;
  who.hostile = (
    await hire(pos.clerk, {
      givenName: '<script>alert("given")</script>',
      familyName: '<img src=x onerror=alert(1)>',
      niNumber: null,
    })
  ).userId;

  // A pending request (a sponsor asks for a non-assignable position), an application, a card being issued.
  const sponsorCtx = testContext(t.db, {
    clock,
    actor: await personActorWithPowers(t.repos, who.sponsor, clock.now()),
  });
  requestId = (
    await requestAccess(sponsorCtx, {
      userId: who.subject,
      positionId: pos.clerk,
      startDate: TODAY,
      reason: 'Cover on ward 7 <b>bold</b> & "quoted"',
    })
  ).request.requestId;
  applicationId = (
    await submitApplication(
      testContext(t.db, { clock, actor: { kind: 'system', id: 'web:apply-for-care-id' } }),
      {
        applicant: {
          givenName: 'Applicant',
          familyName: 'Remote<script>x()</script>',
          dateOfBirth: '1994-07-01',
          niNumber: 'RH100001C',
          email: 'applicant@example.nhs.uk',
        },
        odsCode: 'RR813',
        selfie: { data: tinyPng().toString('base64') },
        photoIdImage: { data: tinyPng().toString('base64') },
      },
      { ip: '192.0.2.44' },
    )
  ).applicationId;

  const config = loadConfig({
    PORT: '0',
    LOG_LEVEL: 'silent',
    ALLOW_EXAMPLE_NI_PREFIX: 'true',
    PUBLIC_URL: 'http://localhost:3000',
    CARD_TRANSPORT_SO_PIN: '87654321',
  });
  cardId = (await startCardIssue(op(), cardConfigFrom(config), { userId: who.subject, kind: 'physical' })).card.cardId;
  app = await buildApp({
    config,
    db: t.db,
    sealer: testSealer,
    clock,
    logger: false,
    transport: { send: async () => {} },
  });
  const deps: WebDeps = {
    config,
    db: t.db,
    repos: t.repos,
    clock,
    sealer: testSealer,
    rp: relyingPartyFrom(config),
    card: cardConfigFrom(config),
    outbox: app.outbox,
  };
  // Until app.ts registers them itself.
  if (!app.hasRoute({ method: 'GET', url: '/ra' })) registerRaConsole(app, deps);
});

after(async () => {
  await app?.close();
  await t.close();
});

interface Browser {
  cookie: string;
  csrf: string;
}

/** A browser signed in as `userId` at `aal`, holding the CSRF cookie and a token from a page. */
async function signedIn(userId: string, aal: 1 | 2 | 3 = 3): Promise<Browser> {
  const page = await app.inject({ method: 'GET', url: '/signin' });
  const csrfCookie = page.cookies.find((c) => c.name === 'opencis_csrf')!;
  const csrf = /data-csrf="([^"]+)"/.exec(page.body)![1]!;
  const { token } = await unitOfWork(t.db)((tx) =>
    startSession(
      tx,
      op(),
      { userId, aal, amr: [aal === 3 ? 'SMARTCARD' : 'TOTP'], authenticatorId: aal === 3 ? 'card:test' : 'totp:test' },
      null,
      { ip: null, userAgent: null },
    ),
  );
  return { cookie: `opencis_csrf=${csrfCookie.value}; opencis_session=${token}`, csrf };
}

function get(b: Browser | null, url: string) {
  return app.inject({ method: 'GET', url, headers: { accept: 'text/html', ...(b ? { cookie: b.cookie } : {}) } });
}

function postForm(b: Browser | null, url: string, fields: Record<string, string | string[]>, csrf?: string | null) {
  const body = new URLSearchParams();
  const token = csrf === undefined ? b?.csrf : csrf;
  if (token !== null && token !== undefined) body.append('_csrf', token);
  for (const [k, v] of Object.entries(fields)) for (const x of [v].flat()) body.append(k, x);
  return app.inject({
    method: 'POST',
    url,
    headers: {
      accept: 'text/html',
      'content-type': 'application/x-www-form-urlencoded',
      ...(b ? { cookie: b.cookie } : {}),
    },
    payload: body.toString(),
  });
}

function postJson(b: Browser, url: string, body: unknown) {
  return app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/json', cookie: b.cookie, 'csrf-token': b.csrf },
    payload: JSON.stringify(body),
  });
}

function raPages(): string[] {
  return [
    '/ra',
    '/ra/people/search',
    '/ra/people/new',
    `/ra/people/${who.subject}`,
    `/ra/people/${who.subject}/name`,
    `/ra/people/${who.subject}/suspend`,
    `/ra/people/${who.subject}/leaver`,
    `/ra/people/${who.subject}/access`,
    `/ra/people/${who.subject}/access?org=RR813`,
    `/ra/people/${who.subject}/identity-check`,
    `/ra/people/${who.subject}/roles/${subjectRoleId}/dates`,
    `/ra/people/${who.subject}/roles/${subjectRoleId}/end`,
    `/ra/people/${who.subject}/cards/new`,
    `/ra/people/${who.subject}/cards/${cardId}/cancel`,
    `/ra/cards/${cardId}/face`,
    '/ra/requests',
    `/ra/requests/${requestId}`,
    '/ra/applications',
    '/ra/applications?status=rejected',
    `/ra/applications/${applicationId}`,
    '/ra/organisations/RR8',
    '/ra/reports',
  ];
}

function h1Count(html: string): number {
  return (html.match(/<h1[\s>]/g) ?? []).length;
}

test(`[${backend}] every RA console page renders for an RA Manager at AAL3, with one h1 and a strict CSP`, async () => {
  const b = await signedIn(who.manager);
  for (const url of raPages()) {
    const res = await get(b, url);
    assert.equal(res.statusCode, 200, `${url}: ${res.body.slice(0, 300)}`);
    assert.match(String(res.headers['content-type']), /text\/html/, url);
    assert.equal(h1Count(res.body), 1, `${url} has one h1`);
    assert.match(String(res.headers['content-security-policy']), /script-src 'self'/, url);
    assert.doesNotMatch(res.body, /<script>|on(click|error|load)=/i, `${url} has no inline script`);
  }
  const apply = await get(null, '/apply');
  assert.equal(apply.statusCode, 200);
  assert.equal(h1Count(apply.body), 1);
});

test(`[${backend}] an RA Agent sees the pages of their powers; the home page lists roles and links`, async () => {
  const res = await get(await signedIn(who.agent), '/ra');
  assert.equal(res.statusCode, 200);
  assert.match(res.body, /id="ra-roles">RA Agent</);
  assert.match(res.body, /href="\/ra\/reports"/);
  // A sponsor has no reports and no applications to review: no link, and the page itself is refused.
  const sponsor = await signedIn(who.sponsor);
  const home = await get(sponsor, '/ra');
  assert.equal(home.statusCode, 200);
  assert.match(home.body, /id="ra-roles">Sponsor</);
  assert.doesNotMatch(home.body, /href="\/ra\/reports"/);
  assert.doesNotMatch(home.body, /href="\/ra\/applications"/);
  assert.equal((await get(sponsor, '/ra/reports')).statusCode, 403);
});

test(`[${backend}] a person with no RA role gets a 403 page on every RA page`, async () => {
  const b = await signedIn(who.nonRa);
  for (const url of raPages()) {
    const res = await get(b, url);
    assert.equal(res.statusCode, 403, url);
    assert.match(res.body, /You do not have Registration Authority access/, url);
    assert.doesNotMatch(res.body, /Priya|Raman/, `${url} shows nothing about the person`);
  }
  const post = await postForm(b, `/ra/people/${who.subject}/suspend`, { reason: 'no' });
  assert.equal(post.statusCode, 403);
  assert.equal((await getPerson(op(), who.subject)).status, 'active');
});

test(`[${backend}] without a session, or at AAL2, RA pages send the browser to sign in at AAL3`, async () => {
  const aal2 = await signedIn(who.manager, 2);
  for (const b of [null, aal2]) {
    for (const url of ['/ra', `/ra/people/${who.subject}`, '/ra/reports']) {
      const res = await get(b, url);
      assert.equal(res.statusCode, 303, url);
      assert.equal(res.headers.location, `/signin?return=${encodeURIComponent(url)}&aal=3`);
    }
  }
  const res = await get(aal2, '/ra/people/search?familyName=Raman');
  assert.equal(res.statusCode, 303);
  assert.match(String(res.headers.location), /^\/signin\?return=.*&aal=3$/);
});

test(`[${backend}] forms need the CSRF token: missing or forged tokens get 403`, async () => {
  const b = await signedIn(who.manager);
  const missing = await postForm(b, `/ra/people/${who.subject}/suspend`, { reason: 'no token' }, null);
  assert.equal(missing.statusCode, 403);
  const forged = await postForm(b, `/ra/people/${who.subject}/suspend`, { reason: 'forged' }, 'forged-token-value');
  assert.equal(forged.statusCode, 403);
  const suspend = await postForm(b, `/ra/people/${who.subject}/suspend`, { reason: 'forged' }, 'x');
  assert.equal(suspend.statusCode, 403);
  assert.equal((await getPerson(op(), who.subject)).status, 'active');
  const json = await app.inject({
    method: 'POST',
    url: `/ra/people/${who.subject}/cards`,
    headers: { 'content-type': 'application/json', cookie: b.cookie },
    payload: '{"kind":"physical"}',
  });
  assert.equal(json.statusCode, 403);
  const ok = await postForm(b, `/ra/people/${who.subject}/name`, { givenName: 'Priya', familyName: 'Raman' });
  assert.equal(ok.statusCode, 400, 'with the token the form is read (and asks for the evidence)');
  assert.equal((await getPerson(op(), who.subject)).status, 'active');
});

test(`[${backend}] search: a GET whose address holds the terms; total, previous and next pages, sorting`, async () => {
  const b = await signedIn(who.manager);
  const search = (q: Record<string, string>) => get(b, `/ra/people/search?${new URLSearchParams(q).toString()}`);
  const found = await search({ familyName: 'ram' });
  assert.equal(found.statusCode, 200);
  assert.match(found.body, new RegExp(`href="/ra/people/${who.subject}"`));
  assert.match(found.body, /id="search-results"/);
  assert.match(found.body, /id="search-total"[^>]*>\s*1 person matches/);
  // Results come before the form, and the form is a GET (no CSRF token, nothing posted).
  assert.ok(found.body.indexOf('id="search-results"') < found.body.indexOf('id="search-form"'));
  assert.match(found.body, /<form method="get" action="\/ra\/people\/search"/);
  // Organisation and status columns.
  assert.match(found.body, /St James&#39;s University Hospital|RR813/);
  assert.match(found.body, /nhsuk-tag--green">active/);
  const empty = await get(b, '/ra/people/search');
  assert.equal(empty.statusCode, 200);
  assert.doesNotMatch(empty.body, /id="search-results"/);
  const none = await search({ status: 'active' });
  assert.equal(none.statusCode, 400);
  assert.match(none.body, /nhsuk-error-summary/);
  assert.match(none.body, /href="#userId"/);
  const short = await search({ familyName: 'r' });
  assert.equal(short.statusCode, 400);
  assert.match(short.body, /href="#familyName"/);
  // Paging: 20 a page, with the total; next and previous follow keyset cursors in the address.
  for (let i = 0; i < 21; i++) {
    await registerPerson(op(), {
      givenName: `Page${String(i).padStart(2, '0')}`,
      familyName: 'Pager',
      dateOfBirth: `19${String(60 + i)}-01-01`,
    });
  }
  const rowsOf = (html: string) => [...html.matchAll(/<a href="\/ra\/people\/(\d{12})">/g)].map((m) => m[1]);
  const first = await search({ familyName: 'Pager' });
  assert.equal(first.statusCode, 200);
  assert.equal(rowsOf(first.body).length, 20);
  assert.match(first.body, /21 people match\. This page shows 20\./);
  assert.doesNotMatch(first.body, /id="previous-page"/);
  const nextHref = /href="([^"]+)" id="next-page"/.exec(first.body)?.[1] ?? '';
  assert.ok(nextHref.includes('familyName=Pager') && nextHref.includes('after='), nextHref);
  const second = await get(b, nextHref.replaceAll('&amp;', '&'));
  assert.equal(second.statusCode, 200);
  assert.equal(rowsOf(second.body).length, 1);
  assert.doesNotMatch(second.body, /id="next-page"/);
  const prevHref = /href="([^"]+)" id="previous-page"/.exec(second.body)![1]!;
  const back = await get(b, prevHref.replaceAll('&amp;', '&'));
  assert.deepEqual(rowsOf(back.body), rowsOf(first.body), 'previous leads back to the first page');
  // Sorting: by name Z to A, and by date of birth (oldest first); the column header says which.
  const za = await search({ familyName: 'Pager', sort: 'name_desc' });
  assert.deepEqual(rowsOf(za.body), [...rowsOf(first.body), ...rowsOf(second.body)].reverse().slice(0, 20));
  assert.match(za.body, /aria-sort="descending"><a href="[^"]*sort=name"/);
  const byAge = await search({ familyName: 'Pager', sort: 'dob' });
  assert.match(byAge.body, /Page00[\s\S]*Page01/);
  const byAgeNext = /href="([^"]+)" id="next-page"/.exec(byAge.body)![1]!.replaceAll('&amp;', '&');
  assert.match((await get(b, byAgeNext)).body, /Page20/);
  // A cursor from another order is refused, not misread.
  const mixed = await get(b, byAgeNext.replace('sort=dob', 'sort=name'));
  assert.equal(mixed.statusCode, 400);
  // Filters: organisation (with the organisations within it) and status; an organisation alone lists who works there.
  const atSite = await search({ org: 'RR813' });
  assert.equal(atSite.statusCode, 200);
  assert.match(atSite.body, new RegExp(`href="/ra/people/${who.subject}"`));
  const atTrust = await search({ familyName: 'Raman', org: 'rr8' });
  assert.match(atTrust.body, new RegExp(`href="/ra/people/${who.subject}"`), 'RR8 includes its site RR813');
  const elsewhere = await search({ familyName: 'Raman', org: 'RX1' });
  assert.match(elsewhere.body, /Nobody matches/);
  const suspendedOnly = await search({ familyName: 'Raman', status: 'suspended' });
  assert.match(suspendedOnly.body, /Nobody matches/);
  const byDob = await search({ familyName: 'Raman', 'dob-day': '12', 'dob-month': '4', 'dob-year': '1981' });
  assert.match(byDob.body, new RegExp(who.subject));
  // Bad filters and cursors: a clear message on the page, a 400.
  for (const [q, href] of [
    [{ familyName: 'Raman', 'dob-day': '31', 'dob-month': '2', 'dob-year': '1981' }, '#dob-day'],
    [{ familyName: 'Raman', org: 'NOWHERE1' }, '#org'],
    [{ familyName: 'Raman', org: 'ZZZ99' }, '#org'],
    [{ familyName: 'Raman', status: 'asleep' }, '#status'],
    [{ familyName: 'Raman', sort: 'shoe_size' }, '#sort'],
    [{ familyName: 'Console', after: 'not-a-cursor' }, '#familyName'],
    [{ familyName: 'Console', after: 'x'.repeat(5000) }, '#familyName'],
    [{ familyName: 'Console', after: Buffer.from('["a","b"]').toString('base64url') }, '#familyName'],
  ] as const) {
    const res = await search(q);
    assert.equal(res.statusCode, 400, JSON.stringify(q));
    assert.match(res.body, new RegExp(`href="${href}"`), JSON.stringify(q));
  }
});

test(`[${backend}] script in free text is rendered escaped, never as markup`, async () => {
  const b = await signedIn(who.manager);
  const person = await get(b, `/ra/people/${who.hostile}`);
  assert.equal(person.statusCode, 200);
  assert.doesNotMatch(person.body, /<script>alert/);
  assert.doesNotMatch(person.body, /<img src=x/);
  assert.match(person.body, /&lt;script&gt;alert\(&quot;given&quot;\)&lt;\/script&gt;/);
  const request = await get(b, `/ra/requests/${requestId}`);
  assert.doesNotMatch(request.body, /<b>bold<\/b>/);
  assert.match(request.body, /Cover on ward 7 &lt;b&gt;bold&lt;\/b&gt; &amp; &quot;quoted&quot;/);
  const application = await get(b, `/ra/applications/${applicationId}`);
  assert.doesNotMatch(application.body, /<script>x\(\)/);
  const echoed = await get(b, `/ra/people/search?familyName=${encodeURIComponent('"><script>alert(1)</script>')}`);
  assert.doesNotMatch(echoed.body, /"><script>alert/);
  assert.match(echoed.body, /value="&quot;&gt;&lt;script&gt;alert\(1\)&lt;\/script&gt;"/);
  const reason = await postForm(b, `/ra/people/${who.subject}/suspend`, { reason: '' });
  assert.equal(reason.statusCode, 400);
  assert.match(reason.body, /href="#reason"/);
});

test(`[${backend}] an RA Agent outside the person's organisation gets 403 on the person page and its actions`, async () => {
  const other = await signedIn(who.otherAgent);
  assert.equal((await get(other, `/ra/people/${who.subject}`)).statusCode, 403);
  for (const [url, fields] of [
    [`/ra/people/${who.subject}/suspend`, { reason: 'outside' }],
    [`/ra/people/${who.subject}/leaver`, { reason: 'outside' }],
    [`/ra/people/${who.subject}/name`, { givenName: 'X', familyName: 'Y', evidenceType: 'deed_poll' }],
    [`/ra/people/${who.subject}/roles/${subjectRoleId}/end`, { reason: 'outside' }],
    [`/ra/people/${who.subject}/cards/${cardId}/cancel`, { choice: 'lost' }],
    [`/ra/people/${who.subject}/authenticators/totp:1/remove`, { reason: 'outside' }],
  ] as const) {
    const res = await postForm(other, url, fields);
    assert.equal(res.statusCode, 403, `${url}: ${res.body.slice(0, 200)}`);
  }
  const start = await postJson(other, `/ra/people/${who.subject}/cards`, { kind: 'physical' });
  assert.equal(start.statusCode, 403);
  assert.equal((await getPerson(op(), who.subject)).status, 'active');
  assert.equal((await getCard(t.repos, cardId)).status, 'issuing');
  // and the request in RR8's subtree shows no decision buttons to them (they cannot even see it)
  assert.equal((await get(other, `/ra/requests/${requestId}`)).statusCode, 403);
});

test(`[${backend}] the request page shows only the decisions the policy allows; approving through the form gives the position`, async () => {
  const sponsor = await signedIn(who.sponsor);
  const own = await get(sponsor, `/ra/requests/${requestId}`);
  assert.equal(own.statusCode, 200);
  assert.doesNotMatch(own.body, /value="approve"/);
  assert.match(own.body, /value="withdraw"/);
  const manager = await signedIn(who.manager);
  const page = await get(manager, `/ra/requests/${requestId}`);
  // One decision form: a radio for each decision the policy allows, one reason box, one button.
  assert.equal((page.body.match(/<form method="post" action="\/ra\/requests\/\d+\/decide"/g) ?? []).length, 1);
  assert.match(page.body, /value="approve"/);
  assert.match(page.body, /value="reject"/);
  assert.equal((page.body.match(/<textarea/g) ?? []).length, 1);
  const queue = await get(manager, '/ra/requests');
  assert.match(queue.body, new RegExp(`href="/ra/requests/${requestId}"`));
  const reject = await postForm(manager, `/ra/requests/${requestId}/decide`, { decision: 'reject', reason: '' });
  assert.equal(reject.statusCode, 400);
  assert.match(reject.body, /href="#reason"/);
  const none = await postForm(manager, `/ra/requests/${requestId}/decide`, { decision: 'approve-all' });
  assert.equal(none.statusCode, 400);
  assert.match(none.body, /href="#decision-0"/);
  const approve = await postForm(manager, `/ra/requests/${requestId}/decide`, {
    decision: 'approve',
    reason: 'ok',
    version: '1',
  });
  assert.equal(approve.statusCode, 303, approve.body.slice(0, 300));
  assert.equal(approve.headers.location, `/ra/requests/${requestId}?done=request_approved`);
  assert.equal((await getRequest(op(), requestId)).status, 'approved');
  const banner = await get(manager, String(approve.headers.location));
  assert.match(banner.body, /nhsuk-notification-banner--success/);
  assert.match(banner.body, /Request approved/);
  const again = await postForm(manager, `/ra/requests/${requestId}/decide`, { decision: 'approve', version: '1' });
  assert.equal(again.statusCode, 400);
  assert.match(again.body, /already been approved/);
});

test(`[${backend}] suspend and restore through the forms; the history shows a summary, not the record`, async () => {
  const b = await signedIn(who.manager);
  const person = await newPerson();
  await assignRoleProfile(op(), { userId: person.userId, positionId: pos.clerk, startDate: TODAY });
  const suspended = await postForm(b, `/ra/people/${person.userId}/suspend`, { reason: 'Investigation' });
  assert.equal(suspended.statusCode, 303);
  assert.equal(suspended.headers.location, `/ra/people/${person.userId}?done=suspended`);
  assert.equal((await getPerson(op(), person.userId)).status, 'suspended');
  const page = await get(b, `/ra/people/${person.userId}`);
  assert.match(page.body, /href="\/ra\/people\/\d+\/restore"/);
  assert.doesNotMatch(page.body, /href="\/ra\/people\/\d+\/suspend"/);
  assert.match(page.body, /Status changed/);
  assert.match(page.body, /active → suspended/);
  assert.doesNotMatch(page.body, /"familyKey"|\{&quot;/);
  const restored = await postForm(b, `/ra/people/${person.userId}/restore`, { reason: 'Cleared' });
  assert.equal(restored.statusCode, 303);
  assert.equal((await getPerson(op(), person.userId)).status, 'active');
  // Name change with evidence.
  const renamed = await postForm(b, `/ra/people/${person.userId}/name`, {
    givenName: person.givenName,
    familyName: 'Married',
    evidenceType: 'marriage_certificate',
    evidenceLastChars: '12AB',
  });
  assert.equal(renamed.statusCode, 303, renamed.body.slice(0, 500));
  assert.equal((await getPerson(op(), person.userId)).familyName, 'Married');
  const noEvidence = await postForm(b, `/ra/people/${person.userId}/name`, { givenName: 'A', familyName: 'B' });
  assert.equal(noEvidence.statusCode, 400);
  assert.match(noEvidence.body, /href="#evidenceType"/);
});

test(`[${backend}] register with an identity check: details and documents, duplicates, then the photo as JSON`, async () => {
  const b = await signedIn(who.manager);
  const fields = {
    givenName: 'Tomasz',
    familyName: 'Nowak',
    'dob-day': '3',
    'dob-month': '2',
    'dob-year': '1990',
    niNumber: 'RE 10 00 01 A',
    email: 'tomasz.nowak@example.nhs.uk',
    place: 'RA office, RR8',
    'doc0-type': 'passport',
    'doc0-lastChars': '123A',
    'doc0-expiresOn-day': '1',
    'doc0-expiresOn-month': '1',
    'doc0-expiresOn-year': '2030',
    'doc1-type': 'utility_bill',
    'doc1-issuedOn-day': '1',
    'doc1-issuedOn-month': '10',
    'doc1-issuedOn-year': '2026',
    'doc2-type': 'birth_certificate',
  };
  // The standard is checked before anything is stored: each problem links to its row.
  const missing = await postForm(b, '/ra/people/new', {
    ...fields,
    'doc1-type': '',
    'doc1-issuedOn-day': '',
    'doc1-issuedOn-month': '',
    'doc1-issuedOn-year': '',
  });
  assert.equal(missing.statusCode, 400);
  assert.match(missing.body, /proof of address/);
  const tooLong = await postForm(b, '/ra/people/new', { ...fields, 'doc0-lastChars': '123456789' });
  assert.equal(tooLong.statusCode, 400);
  assert.match(tooLong.body, /href="#doc0-lastChars"/);

  const step = await postForm(b, '/ra/people/new', fields);
  assert.equal(step.statusCode, 200, step.body.slice(0, 500));
  assert.match(step.body, /data-photo-form/);
  const draft = /name="draft" value="([^"]+)"/.exec(step.body)![1]!.replaceAll('&quot;', '"').replaceAll('&amp;', '&');
  const created = await postJson(b, '/ra/people/new/complete', {
    _csrf: b.csrf,
    draft,
    photo: { data: tinyPng().toString('base64') },
  });
  assert.equal(created.statusCode, 201, created.body);
  const { userId } = created.json() as { userId: string };
  const person = await getPerson(op(), userId);
  assert.equal(person.identityAssuranceLevel, 3);
  assert.ok(person.photoRef);
  const photo = await get(b, `/ra/people/${userId}/photo`);
  assert.equal(photo.statusCode, 200);
  assert.equal(photo.headers['content-type'], 'image/png');
  assert.equal(photo.headers['cache-control'], 'no-store');
  const page = await get(b, `/ra/people/${userId}`);
  assert.match(page.body, /Passport/);
  assert.match(page.body, /123A/);

  // The same person again: the duplicate check finds them; "use existing" / "different person" are offered.
  // "Change details" on the photo step brings the form back, filled in.
  const edit = await postForm(b, '/ra/people/new', { draft, edit: '1' });
  assert.equal(edit.statusCode, 200);
  assert.match(edit.body, /id="givenName" name="givenName" type="text" value="Tomasz"/);

  const dup = await postForm(b, '/ra/people/new', { ...fields, niNumber: '' });
  assert.equal(dup.statusCode, 200);
  assert.match(dup.body, /Is this someone already registered/);
  assert.match(dup.body, new RegExp(`value="existing:${userId}"`));
  assert.match(dup.body, /value="new_person"/);
  const dupDraft = /name="draft" value="([^"]+)"/
    .exec(dup.body)![1]!
    .replaceAll('&quot;', '"')
    .replaceAll('&amp;', '&');
  const unresolved = await postForm(b, '/ra/people/new', { draft: dupDraft, resolution: 'nonsense' });
  assert.equal(unresolved.statusCode, 400);
  const different = await postForm(b, '/ra/people/new', { draft: dupDraft, resolution: 'new_person' });
  assert.equal(different.statusCode, 200);
  assert.match(different.body, new RegExp(`name="confirmedDifferentFrom" value="${userId}"`));
  // Without a photo (no JavaScript): an unverified record, created with the duplicate confirmed different.
  const plain = await postForm(b, '/ra/people/new/complete', {
    draft: dupDraft,
    duplicateResolution: 'new_person',
    confirmedDifferentFrom: userId,
    withoutPhoto: '1',
  });
  assert.equal(plain.statusCode, 303, plain.body.slice(0, 500));
  assert.match(String(plain.headers.location), /\?done=registered_unverified$/);
  const second = await getPerson(op(), String(plain.headers.location).split('?')[0]!.split('/').at(-1)!);
  assert.notEqual(second.userId, userId);
  assert.equal(second.identityAssuranceLevel, 1);
  // Their identity check is recorded later from their page (the photo comes as JSON from the page's script).
  const docFields = Object.fromEntries(Object.entries(fields).filter(([k]) => k.startsWith('doc') || k === 'place'));
  const noPhoto = await postForm(b, `/ra/people/${second.userId}/identity-check`, docFields);
  assert.equal(noPhoto.statusCode, 400);
  assert.match(noPhoto.body, /href="#photo"/);
  const badDocs = await postJson(b, `/ra/people/${second.userId}/identity-check`, {
    ...docFields,
    'doc0-type': '',
    photo: { data: tinyPng().toString('base64') },
  });
  assert.equal(badDocs.statusCode, 400);
  assert.ok((badDocs.json() as { error: { problems: { href: string }[] } }).error.problems.length > 0);
  const checked = await postJson(b, `/ra/people/${second.userId}/identity-check`, {
    ...docFields,
    photo: { data: tinyPng().toString('base64') },
  });
  assert.equal(checked.statusCode, 200, checked.body);
  assert.equal((await getPerson(op(), second.userId)).identityAssuranceLevel, 3);
  // The same NI number can only be the existing record.
  const sameNi = await postForm(b, '/ra/people/new', { ...fields, givenName: 'Tom' });
  assert.match(sameNi.body, /same National Insurance number/);
  assert.doesNotMatch(sameNi.body, /value="new_person"/);
});

test(`[${backend}] applications: the queue, the images, verify after the video call (level 2) and reject with a reason`, async () => {
  const b = await signedIn(who.manager);
  const queue = await get(b, '/ra/applications');
  assert.match(queue.body, new RegExp(`href="/ra/applications/${applicationId}"`));
  const page = await get(b, `/ra/applications/${applicationId}`);
  const imageId = /\/images\/([0-9a-f-]{36})"/.exec(page.body)![1]!;
  const image = await get(b, `/ra/applications/${applicationId}/images/${imageId}`);
  assert.equal(image.statusCode, 200);
  assert.equal(image.headers['cache-control'], 'no-store');
  const verify = await postForm(b, `/ra/applications/${applicationId}/verify`, {
    'videoDate-day': '26',
    'videoDate-month': '11',
    'videoDate-year': '2026',
    videoTime: '08:30',
    'doc0-type': 'passport',
    'doc0-lastChars': '9XYZ',
    'doc1-type': 'bank_statement',
    'doc1-issuedOn-day': '2',
    'doc1-issuedOn-month': '11',
    'doc1-issuedOn-year': '2026',
    'doc2-type': 'p60',
  });
  assert.equal(verify.statusCode, 303, verify.body.slice(0, 800));
  const done = await get(b, `/ra/applications/${applicationId}`);
  assert.match(done.body, /verified/);
  const userId = /href="\/ra\/people\/(\d{12})"/.exec(done.body)![1]!;
  assert.equal((await getPerson(op(), userId)).identityAssuranceLevel, 2);

  const second = await submitApplication(
    testContext(t.db, { clock, actor: { kind: 'system', id: 'web:apply-for-care-id' } }),
    {
      applicant: {
        givenName: 'Second',
        familyName: 'Applicant',
        dateOfBirth: '1990-01-01',
        email: 'second@example.nhs.uk',
      },
      odsCode: 'RR813',
      selfie: { data: tinyPng().toString('base64') },
      photoIdImage: { data: tinyPng().toString('base64') },
    },
    { ip: '192.0.2.45' },
  );
  const future = await postForm(b, `/ra/applications/${second.applicationId}/verify`, {
    'videoDate-day': '27',
    'videoDate-month': '11',
    'videoDate-year': '2026',
    videoTime: '08:30',
  });
  assert.equal(future.statusCode, 400);
  assert.match(future.body, /href="#videoTime"/);
  const reject = await postForm(b, `/ra/applications/${second.applicationId}/reject`, {
    rejectReason: 'The selfie does not match the photo ID',
  });
  assert.equal(reject.statusCode, 303);
  const rejected = await get(b, `/ra/applications/${second.applicationId}`);
  assert.match(rejected.body, /The selfie does not match the photo ID/);
  // The public form: its script posts to the API; without JavaScript the page says why the photos cannot be attached.
  const form = await app.inject({ method: 'GET', url: '/apply' });
  const visitor = {
    cookie: `opencis_csrf=${form.cookies.find((c) => c.name === 'opencis_csrf')!.value}`,
    csrf: /name="_csrf" value="([^"]+)"/.exec(form.body)![1]!,
  };
  assert.match(form.body, /data-api="\/api\/v1\/applications"/);
  const noJs = await postForm(visitor, '/apply', { givenName: '<i>A</i>' });
  assert.equal(noJs.statusCode, 400);
  assert.match(noJs.body, /href="#selfie"/);
  assert.match(noJs.body, /value="&lt;i&gt;A&lt;\/i&gt;"/);
});

test(`[${backend}] organisations, positions, access requests and card issue from the console`, async () => {
  const b = await signedIn(who.manager);
  const org = await get(b, '/ra/organisations/RR8');
  assert.match(org.body, /Test Site/);
  assert.match(org.body, /id="new-position"/);
  const noRole = await postForm(b, '/ra/organisations/RR813/positions', { positionName: 'Porter' });
  assert.equal(noRole.statusCode, 400);
  assert.match(noRole.body, /href="#jobRoles-0"/);
  const created = await postForm(b, '/ra/organisations/RR813/positions', {
    positionName: 'Healthcare assistant',
    jobRoles: ['R8001'],
    activities: [],
    assignable: 'yes',
  });
  assert.equal(created.statusCode, 303, created.body.slice(0, 500));
  const site = await get(b, '/ra/organisations/RR813');
  assert.match(site.body, /Healthcare assistant/);
  // An RA Agent may not create positions: no form.
  const agentView = await get(await signedIn(who.agent), '/ra/organisations/RR8');
  assert.doesNotMatch(agentView.body, /id="new-position"/);

  // Request access: organisation → position → dates. The manager may give it directly.
  const person = await newPerson();
  const choose = await get(b, `/ra/people/${person.userId}/access?org=RR813`);
  assert.match(choose.body, /Ward nurse/);
  const positionId = pos.nurse;
  const sent = await postForm(b, `/ra/people/${person.userId}/access`, {
    odsCode: 'RR813',
    positionId,
    'startDate-day': '26',
    'startDate-month': '11',
    'startDate-year': '2026',
    reason: 'New starter',
  });
  assert.equal(sent.statusCode, 303, sent.body.slice(0, 500));
  // Given at once: back to the person, whose record has the role profile, with a success banner.
  assert.equal(sent.headers.location, `/ra/people/${person.userId}?done=position_given`);
  const given = await get(b, String(sent.headers.location));
  assert.match(given.body, /Position given/);
  assert.match(given.body, /Ward nurse/);

  // Card issue at the desk: the page's script gets a grant as JSON (the card agent does the rest).
  const issue = await postJson(b, `/ra/people/${who.subject}/cards`, { kind: 'virtual' });
  assert.equal(issue.statusCode, 200, issue.body);
  const started = issue.json() as { cardId: string; grant: string };
  assert.match(started.grant, /^[A-Za-z0-9_-]{43}$/);
  assert.equal((await getCard(t.repos, started.cardId)).kind, 'virtual');
  const early = await postJson(b, `/ra/cards/${started.cardId}/passcode-grant`, {});
  assert.equal(early.statusCode, 409);
  const face = await get(b, `/ra/cards/${started.cardId}/face`);
  assert.match(face.body, new RegExp(who.subject));
  const reports = await get(b, '/ra/reports');
  assert.match(reports.body, /Locked cards/);
});
