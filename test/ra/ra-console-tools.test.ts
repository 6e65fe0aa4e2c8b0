import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { cardConfigFrom } from '../../src/http/deps.ts';
import { getCard, startCardIssue } from '../../src/services/cards.ts';
import { requestAccess } from '../../src/services/ra.ts';
import { personActorWithPowers } from '../../src/services/ra-powers.ts';
import { bannerOf, type ConsoleBrowser, type ConsoleHarness, consoleHarness, TODAY } from '../support/console.ts';
import { testContext } from '../support/context.ts';
import { backend } from '../support/db.ts';

/*
 * The everyday tools and messages of issue #14: enrolment links from the console, the card-issuing set-up page,
 * removing an authenticator through a confirmation with a reason, success banners, names beside IDs, and the messages
 * that misled (history on a new starter, "Send the request" for a position given at once, documents).
 */
let h: ConsoleHarness;
let manager: ConsoleBrowser;
const who = {} as Record<'manager' | 'agent' | 'otherAgent' | 'nurse' | 'noEmail' | 'newStarter' | 'sponsor', string>;
const pos = {} as Record<'nurse' | 'clerk', string>;

before(async () => {
  h = await consoleHarness();
  who.manager = await h.person(
    { givenName: 'Grace', familyName: 'Okafor' },
    await h.position('RR8', { name: 'Registration Authority Manager', jobRoles: ['R5080'] }),
  );
  who.agent = await h.person({}, await h.position('RR8', { name: 'RA Agent', jobRoles: ['R5090'] }));
  who.otherAgent = await h.person({}, await h.position('RX1', { name: 'RA Agent', jobRoles: ['R5090'] }));
  pos.nurse = await h.position('RR813', { name: 'Ward nurse', jobRoles: ['R8001'], assignable: true });
  pos.clerk = await h.position('RR813', { name: 'Ward clerk', jobRoles: ['R8010'] });
  who.nurse = await h.person(
    { givenName: 'Priya', familyName: 'Raman', email: 'priya.raman@example.nhs.uk' },
    pos.nurse,
  );
  who.noEmail = await h.person({ givenName: 'Noel', familyName: 'Nomail', email: null }, pos.nurse);
  who.newStarter = await h.person({ givenName: 'Nina', familyName: 'Newstarter' });
  who.sponsor = await h.person(
    { givenName: 'Sam', familyName: 'Sponsor' },
    await h.position('RR8', { name: 'Ward manager', jobRoles: ['R8000'], activities: ['B1300'] }),
  );
  manager = await h.signedIn(who.manager);
});

after(async () => h?.close());

test(`[${backend}] the header says who is signed in and in which role and organisation`, async () => {
  const res = await h.get(manager, '/ra');
  assert.match(res.body, /id="signed-in-name">Grace Okafor</);
  assert.match(res.body, /RA Manager, Test Trust \(RR8\)/);
  // The service link's accessible name is its visible text (axe label-content-name-mismatch, WCAG 2.5.3).
  assert.match(res.body, /<a class="nhsuk-header__service-name" href="\/ra">OpenCIS Registration Authority<\/a>/);
  assert.doesNotMatch(res.body, /aria-label="OpenCIS homepage"/);
  const account = await h.get(await h.signedIn(who.nurse), '/account');
  assert.match(account.body, /id="signed-in-name">Priya Raman</);
  for (const path of [
    '/favicon.ico',
    '/assets/images/nhsuk-icon-cross.svg',
    '/assets/nhsuk-frontend.js',
    '/assets/opencis.js',
  ]) {
    const asset = await h.get(null, path);
    assert.equal(asset.statusCode, 200, path);
  }
});

test(`[${backend}] send an enrolment link: by email to the address on the record, or shown once`, async () => {
  const form = await h.get(manager, `/ra/people/${who.nurse}/invite`);
  assert.equal(form.statusCode, 200);
  assert.match(form.body, /Email it to p••••@example\.nhs\.uk/);
  const sent = await h.postForm(manager, `/ra/people/${who.nurse}/invite`, { aal: '3', delivery: 'email' });
  assert.equal(sent.statusCode, 303);
  assert.equal(sent.headers.location, `/ra/people/${who.nurse}?done=invitation_sent`);
  assert.equal(bannerOf((await h.get(manager, String(sent.headers.location))).body), 'Enrolment link sent.');
  await h.app.outbox.drain(); // the message goes through the outbox, after the change commits
  const message = h.messages.at(-1)!;
  assert.equal(message.to, 'priya.raman@example.nhs.uk');
  assert.equal(message.template, 'enrolment.invitation');
  const link = /(http:\/\/localhost:3000\/enrol\/invite\?t=[A-Za-z0-9_-]{43})/.exec(message.text)![1]!;
  const opened = await h.get(null, link.replace('http://localhost:3000', ''));
  assert.equal(opened.statusCode, 200);
  assert.match(opened.body, /Set up your security key/);
  const { rows } = await h.t.db.query<{ actor: string; after: { maxAal: number } }>(
    "SELECT actor, after FROM audit_events WHERE action = 'enrolment.invitation_created' AND target_id = $1",
    [who.nurse],
  );
  assert.deepEqual([rows[0]?.actor, rows[0]?.after.maxAal], [`person:${who.manager}`, 3]);

  // No email on the record: shown once, on the page (never in a URL), for an in-person hand-over.
  const noEmail = await h.get(manager, `/ra/people/${who.noEmail}/invite`);
  assert.match(noEmail.body, /they have no email address on their record/);
  const refused = await h.postForm(manager, `/ra/people/${who.noEmail}/invite`, { aal: '3', delivery: 'email' });
  assert.equal(refused.statusCode, 400);
  assert.match(refused.body, /href="#delivery-0"/);
  const shown = await h.postForm(manager, `/ra/people/${who.noEmail}/invite`, { aal: '2', delivery: 'show' });
  assert.equal(shown.statusCode, 200);
  assert.match(shown.body, /id="invite-link">http:\/\/localhost:3000\/enrol\/invite\?t=[A-Za-z0-9_-]{43}</);
  assert.match(shown.body, /not shown again/);
  const bad = await h.postForm(manager, `/ra/people/${who.nurse}/invite`, { aal: '4', delivery: 'fax' });
  assert.equal(bad.statusCode, 400);
  // Outside the RA's organisations, and without the power: refused, nothing sent.
  const count = h.messages.length;
  const other = await h.signedIn(who.otherAgent);
  assert.equal((await h.get(other, `/ra/people/${who.nurse}/invite`)).statusCode, 403);
  assert.equal(
    (await h.postForm(other, `/ra/people/${who.nurse}/invite`, { aal: '3', delivery: 'email' })).statusCode,
    403,
  );
  const sponsor = await h.signedIn(who.sponsor);
  assert.equal(
    (await h.postForm(sponsor, `/ra/people/${who.nurse}/invite`, { aal: '3', delivery: 'email' })).statusCode,
    403,
  );
  assert.equal(h.messages.length, count);
});

test(`[${backend}] the card-issuing page explains the set-up when card issuing is not configured`, async () => {
  const res = await h.get(manager, `/ra/people/${who.nurse}/cards/new`);
  assert.equal(res.statusCode, 200);
  assert.match(res.body, /Card issuing is not set up on this server yet/);
  assert.match(res.body, /<code>CARD_TRANSPORT_SO_PIN<\/code>/);
  assert.match(
    res.body,
    /npx opencis-card-agent --allowed-origin http:\/\/localhost:3000 --server http:\/\/localhost:3000/,
  );
  assert.match(res.body, new RegExp(`href="/ra/people/${who.nurse}/invite"`));
  assert.doesNotMatch(res.body, /ra-card\.js/);
});

test(`[${backend}] removing an authenticator asks for confirmation and a reason; a tampered form changes nothing`, async () => {
  const add = async (userId: string, id: string) =>
    h.t.db.query(
      `INSERT INTO webauthn_credentials (credential_id, user_id, public_key, sign_count, aaguid, attestation_format,
         backup_eligible, backed_up, kind, aal, nickname, status, created_at)
       VALUES ($1, $2, '\\x00', 0, '00000000-0000-0000-0000-000000000000', 'none', false, false, 'security_key', 2, 'Blue key', 'active', now())`,
      [id, userId],
    );
  await add(who.nurse, 'credential-of-the-nurse-0001');
  await add(who.noEmail, 'credential-of-someone-else-01');
  const person = await h.get(manager, `/ra/people/${who.nurse}`);
  const href = `/ra/people/${who.nurse}/authenticators/webauthn%3Acredential-of-the-nurse-0001/remove`;
  assert.match(person.body, new RegExp(`href="${href}"`), 'a link to a confirmation page, not a one-click button');
  assert.doesNotMatch(person.body, /authenticators\/remove"/);
  const confirm = await h.get(manager, href);
  assert.equal(confirm.statusCode, 200);
  assert.match(confirm.body, /&quot;Blue key&quot; stops working at once/);
  const status = async (id: string) =>
    (await h.t.db.query<{ status: string }>('SELECT status FROM webauthn_credentials WHERE credential_id = $1', [id]))
      .rows[0]!.status;
  const noReason = await h.postForm(manager, href, { reason: '  ' });
  assert.equal(noReason.statusCode, 400);
  assert.match(noReason.body, /href="#reason"/);
  assert.equal(await status('credential-of-the-nurse-0001'), 'active');
  // Someone else's credential under this person's address: not found, and nobody's key is touched.
  const tampered = await h.postForm(
    manager,
    `/ra/people/${who.nurse}/authenticators/webauthn%3Acredential-of-someone-else-01/remove`,
    {
      reason: 'tampered',
    },
  );
  assert.equal(tampered.statusCode, 404);
  assert.equal(await status('credential-of-someone-else-01'), 'active');
  const other = await h.signedIn(who.otherAgent);
  assert.equal((await h.postForm(other, href, { reason: 'outside' })).statusCode, 403);
  assert.equal((await h.postForm(manager, href, { reason: 'lost' }, null)).statusCode, 403, 'no CSRF token');
  assert.equal(await status('credential-of-the-nurse-0001'), 'active');
  const removed = await h.postForm(manager, href, { reason: 'Reported lost on the ward' });
  assert.equal(removed.statusCode, 303);
  assert.equal(removed.headers.location, `/ra/people/${who.nurse}?done=authenticator_removed`);
  assert.equal(await status('credential-of-the-nurse-0001'), 'removed');
  const { rows } = await h.t.db.query<{ reason: string }>(
    "SELECT reason FROM audit_events WHERE action = 'authenticator.webauthn_removed' AND target_id = $1",
    [who.nurse],
  );
  assert.equal(rows[0]?.reason, 'Reported lost on the ward');
});

test(`[${backend}] the person page: status changes look like what they do; names beside IDs; a new starter's history`, async () => {
  const page = await h.get(manager, `/ra/people/${who.nurse}`);
  assert.match(
    page.body,
    /<a class="nhsuk-button nhsuk-button--warning" href="\/ra\/people\/\d+\/suspend" role="button"/,
  );
  assert.match(
    page.body,
    /<a class="nhsuk-button nhsuk-button--warning" href="\/ra\/people\/\d+\/leaver" role="button"/,
  );
  assert.match(
    page.body,
    /id="person-organisations"><a href="\/ra\/organisations\/RR813">Test Site<\/a> <span class="nhsuk-body-s ra-id">\(RR813\)/,
  );
  assert.match(page.body, /Operator \(command line\)/, 'the history names who acted');
  // A person with no organisation yet: an RA Manager sees their history (it was a misleading refusal).
  const starter = await h.get(manager, `/ra/people/${who.newStarter}`);
  assert.match(starter.body, /id="history-table"/);
  assert.doesNotMatch(starter.body, /needs the audit permission/);
  assert.match(starter.body, /Record created/);
  // An RA Agent has no audit permission: the page says so truthfully.
  const agentView = await h.get(await h.signedIn(who.agent), `/ra/people/${who.newStarter}`);
  assert.match(agentView.body, /needs the audit permission, which RA Managers hold/);
  // A pending request names who asked.
  const sponsorCtx = testContext(h.t.db, {
    clock: h.clock,
    actor: await personActorWithPowers(h.t.repos, who.sponsor, h.clock.now()),
  });
  const { request } = await requestAccess(sponsorCtx, {
    userId: who.newStarter,
    positionId: pos.clerk,
    startDate: TODAY,
    reason: 'Starts Monday',
  });
  const withRequest = await h.get(manager, `/ra/people/${who.newStarter}`);
  assert.match(withRequest.body, /<a href="\/ra\/people\/\d{12}">Sam Sponsor<\/a>/);
  const requestPage = await h.get(manager, `/ra/requests/${request.requestId}`);
  assert.match(
    requestPage.body,
    /Requested by<\/dt><dd class="nhsuk-summary-list__value"><a href="\/ra\/people\/\d{12}">Sam Sponsor<\/a>/,
  );
});

test(`[${backend}] giving a position says what happens: "Give the position" when it is given at once, then a banner`, async () => {
  const person = await h.person({ givenName: 'Asha', familyName: 'Assignable' });
  const page = await h.get(manager, `/ra/people/${person}/access?org=RR813`);
  assert.match(page.body, /Given at once/);
  assert.match(page.body, /id="access-submit">Give the position</);
  assert.doesNotMatch(page.body, /Send the request/);
  const given = await h.postForm(manager, `/ra/people/${person}/access`, {
    odsCode: 'RR813',
    positionId: pos.nurse,
    'startDate-day': '26',
    'startDate-month': '11',
    'startDate-year': '2026',
    reason: 'New starter',
  });
  assert.equal(given.headers.location, `/ra/people/${person}?done=position_given`);
  // A sponsor for a non-assignable position: the request is sent, and the page says so.
  const sponsorView = await h.get(await h.signedIn(who.sponsor), `/ra/people/${person}/access?org=RR813`);
  assert.match(sponsorView.body, /Needs an RA&#39;s approval|Needs an RA's approval/);
  assert.match(sponsorView.body, /id="access-submit">Continue</);
});

test(`[${backend}] documents: a problem with one document is not also reported as "at least 3 are needed"`, async () => {
  const recent = '2026-11-10';
  const [y, mo, d] = recent.split('-');
  const res = await h.postForm(manager, '/ra/people/new', {
    givenName: 'Dora',
    familyName: 'Documents',
    'dob-day': '1',
    'dob-month': '2',
    'dob-year': '1990',
    'doc0-type': 'passport',
    'doc0-lastChars': '1234',
    'doc1-type': 'council_tax_statement',
    'doc1-issuedOn-day': String(Number(d)),
    'doc1-issuedOn-month': String(Number(mo)),
    'doc1-issuedOn-year': y!,
    // A second photo ID in row 3 without its number: that row's problem only.
    'doc2-type': 'photocard_driving_licence',
    place: 'RA office',
  });
  assert.equal(res.statusCode, 400);
  assert.match(res.body, /Document 3: record the last 4 characters of the photo ID number/);
  assert.doesNotMatch(res.body, /at least 3/);
  assert.match(res.body, /Needed for a photo ID\. Never the whole number\./);
  const two = await h.postForm(manager, '/ra/people/new', {
    givenName: 'Dora',
    familyName: 'Documents',
    'dob-day': '1',
    'dob-month': '2',
    'dob-year': '1990',
    'doc0-type': 'passport',
    'doc0-lastChars': '1234',
    place: 'RA office',
  });
  assert.match(two.body, /at least 3 documents are needed/);
  // The required field says so.
  assert.match(two.body, /Where the check took place <span class="ra-required">\(required\)<\/span>/);
  assert.match(two.body, /id="place" name="place" type="text" value="RA office" aria-required="true"/);
});

test(`[${backend}] an RA Manager adds an organisation within theirs; nobody else, and nowhere else`, async () => {
  const page = await h.get(manager, '/ra/organisations/RR8');
  assert.match(page.body, /Add an organisation within Test Trust/);
  const missing = await h.postForm(manager, '/ra/organisations/RR8/organisations', { childOdsCode: 'RR815' });
  assert.equal(missing.statusCode, 400);
  assert.match(missing.body, /href="#childName"/);
  const added = await h.postForm(manager, '/ra/organisations/RR8/organisations', {
    childOdsCode: 'rr815',
    childName: 'Test Site Three',
    childType: 'site',
  });
  assert.equal(added.statusCode, 303, added.body.slice(0, 300));
  assert.equal(added.headers.location, '/ra/organisations/RR815?done=organisation_created');
  const site = await h.get(manager, String(added.headers.location));
  assert.equal(bannerOf(site.body), 'Organisation created.');
  assert.match(site.body, /href="\/ra\/organisations\/RR8">RR8</);
  const twice = await h.postForm(manager, '/ra/organisations/RR8/organisations', {
    childOdsCode: 'RR815',
    childName: 'Again',
    childType: 'site',
  });
  assert.equal(twice.statusCode, 400);
  assert.match(twice.body, /already exists/);
  // An RA Agent may not; nor may the RA Manager outside their subtree, or at the top of the tree.
  const agent = await h.signedIn(who.agent);
  assert.doesNotMatch((await h.get(agent, '/ra/organisations/RR8')).body, /Add an organisation within/);
  const byAgent = await h.postForm(agent, '/ra/organisations/RR8/organisations', {
    childOdsCode: 'RR816',
    childName: 'Agent site',
    childType: 'site',
  });
  assert.equal(byAgent.statusCode, 403);
  const elsewhere = await h.postForm(manager, '/ra/organisations/RX1/organisations', {
    childOdsCode: 'RX101',
    childName: 'Other site',
    childType: 'site',
  });
  assert.equal(elsewhere.statusCode, 403);
  const { rows } = await h.t.db.query("SELECT ods_code FROM organisations WHERE ods_code IN ('RR816', 'RX101')");
  assert.equal(rows.length, 0);
});

test(`[${backend}] cancelling a card asks why and what happened; both are kept in the audit trail`, async () => {
  const { card } = await startCardIssue(
    h.op(),
    { ...cardConfigFrom(h.config), transportSoPin: '12345678' },
    { userId: who.nurse, kind: 'physical' },
  );
  const href = `/ra/people/${who.nurse}/cards/${card.cardId}/cancel`;
  const confirm = await h.get(manager, href);
  assert.match(confirm.body, /Why is the card being cancelled\?/);
  assert.match(confirm.body, /id="reason"/);
  const noNote = await h.postForm(manager, href, { choice: 'lost', reason: '' });
  assert.equal(noNote.statusCode, 400);
  assert.match(noNote.body, /href="#reason"/);
  const noChoice = await h.postForm(manager, href, { choice: 'eaten', reason: 'x' });
  assert.equal(noChoice.statusCode, 400);
  assert.equal((await getCard(h.t.repos, card.cardId)).status, 'issuing');
  const done = await h.postForm(manager, href, { choice: 'lost', reason: 'Left on the bus, reported by phone' });
  assert.equal(done.headers.location, `/ra/people/${who.nurse}?done=card_cancelled`);
  assert.equal((await getCard(h.t.repos, card.cardId)).status, 'cancelled');
  const { rows } = await h.t.db.query<{ reason: string; after: { reason: string } }>(
    "SELECT reason, after FROM audit_events WHERE action = 'card.cancelled' AND target_id = $1",
    [who.nurse],
  );
  assert.deepEqual([rows[0]?.reason, rows[0]?.after.reason], ['Left on the bus, reported by phone', 'lost']);
});
