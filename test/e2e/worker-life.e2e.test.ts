/**
 * A worker's whole life in OpenCIS, end to end through the browser (issue 5, acceptance 9): they apply for a Care ID
 * online; an RA verifies the application after a video call and then checks their identity face to face; a Sponsor asks
 * for a position for them; an RA Manager (not the Sponsor) approves it; the RA Manager issues them a physical smartcard
 * at the desk through the real card agent (a SoftHSM2 token) and they set its passcode; they sign in with the card;
 * finally they leave: the card is cancelled, its certificate revoked (OCSP says so), the card no longer signs in and
 * their open session is gone. Every page visited is checked with axe-core; the main ones are photographed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { decodeAttestationObject, isoBase64URL } from '@simplewebauthn/server/helpers';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { type RunningCardAgent, startCardAgent } from '../../src/card-agent/main.ts';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { bootstrapRaManager } from '../../src/services/bootstrap.ts';
import { createEnrolmentInvitation } from '../../src/services/enrolment.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { addVirtualAuthenticator, assertAccessible, expectUrl, launchBrowser, screenshot } from '../support/browser.ts';
import { tinyPng } from '../support/images.ts';
import { freePort, startTestServer, type TestServer } from '../support/server.ts';
import { initBlankToken, SOFTHSM2_MODULE, useThrowawaySoftHsm } from '../support/softhsm.ts';

/** Chromium's virtual authenticator model (see webauthn.e2e.test.ts): trusted for AAL3 once its root is configured. */
const CHROMIUM_VIRTUAL_AAGUID = '01020304-0506-0708-0102-030405060708';
const rootsFile = join(mkdtempSync(join(tmpdir(), 'opencis-life-roots-')), 'attestation-roots.pem');

// The blank card in the RA desk's reader: a SoftHSM2 token (SOFTHSM2_CONF is read when PKCS#11 is first initialised).
useThrowawaySoftHsm('opencis-life-card-');
const MODULE = SOFTHSM2_MODULE;
const TRANSPORT_SO_PIN = '31415926';
const PASSCODE = '5829163';

const WORKER = { givenName: 'Zainab', familyName: 'Adebayo', email: 'zainab.adebayo@example.nhs.uk' };
const WORKER_NAME = `${WORKER.givenName} ${WORKER.familyName}`;
const POSITION = 'Ward clerk, ward 9';

let server: TestServer;
let url: string;
let agent: RunningCardAgent;
let browser: Browser;
let managerLink: string;
let sponsorLink: string;
let sponsorId: string;
let managerId: string;

// What the journey learns as it goes.
let applicationId: string;
let workerId: string;
let requestId: string;
let cardId: string;
let manager: Page;
let workerSession: Page;
const contexts: BrowserContext[] = [];

/** A small real JPEG, as a phone's camera would give it: drawn on a canvas and encoded by Chromium. */
async function selfieJpeg(page: Page): Promise<Buffer> {
  // (The test's TypeScript has no DOM library: browser-side code is passed as a string.)
  const dataUrl = await page.evaluate(`(() => {
    const c = document.createElement('canvas');
    c.width = 24;
    c.height = 32;
    const g = c.getContext('2d');
    g.fillStyle = '#c8a080';
    g.fillRect(0, 0, 24, 32);
    g.fillStyle = '#302010';
    g.fillRect(6, 10, 12, 4);
    return c.toDataURL('image/jpeg', 0.85);
  })()`);
  assert.equal(typeof dataUrl, 'string');
  const [head, data] = String(dataUrl).split(',');
  assert.equal(head, 'data:image/jpeg;base64');
  return Buffer.from(data!, 'base64');
}

/** Every page visited is checked with axe-core; the main ones are photographed. */
async function visit(page: Page, label: string, shot?: string): Promise<void> {
  await assertAccessible(page, label);
  if (shot) await screenshot(page, `life-${shot}`);
}

async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  context.setDefaultTimeout(15_000);
  contexts.push(context);
  return { context, page: await context.newPage() };
}

/** The journey's steps build on each other: a step whose predecessor failed stops at once, saying which. */
function needs(value: unknown, what: string): void {
  if (!value) assert.fail(`${what} is missing: an earlier step failed`);
}

async function textOf(page: Page, selector: string): Promise<string> {
  return ((await page.textContent(selector)) ?? '').replace(/\s+/g, ' ').trim();
}

/** Fills the identity documents rows: a passport, a council tax statement from last week and a birth certificate. */
async function fillDocuments(page: Page, passportLastChars: string): Promise<void> {
  const now = new Date();
  const recent = new Date(now.getTime() - 7 * 86_400_000);
  await page.selectOption('#doc0-type', 'passport');
  await page.fill('#doc0-lastChars', passportLastChars);
  await page.fill('#doc0-expiresOn-day', '14');
  await page.fill('#doc0-expiresOn-month', '6');
  await page.fill('#doc0-expiresOn-year', String(now.getUTCFullYear() + 6));
  await page.selectOption('#doc1-type', 'council_tax_statement');
  await page.fill('#doc1-issuedOn-day', String(recent.getUTCDate()));
  await page.fill('#doc1-issuedOn-month', String(recent.getUTCMonth() + 1));
  await page.fill('#doc1-issuedOn-year', String(recent.getUTCFullYear()));
  await page.selectOption('#doc2-type', 'birth_certificate');
}

/** Opens a one-time enrolment link and registers the context's virtual security key; lands on /account. */
async function enrolSecurityKey(page: Page, link: string, label: string): Promise<void> {
  await page.goto(link);
  await visit(page, `${label}: invitation page`);
  await page.click('[data-invite-kind=security_key]');
  await expectUrl(page, `${url}/account`);
}

async function signInWithCard(page: Page, passcode: string): Promise<void> {
  await page.goto(`${url}/signin`);
  await page.fill('#card-passcode', passcode);
  await page.click('#card-signin');
}

before(async () => {
  initBlankToken(TRANSPORT_SO_PIN);
  const port = await freePort();
  url = `http://localhost:${port}`;
  agent = await startCardAgent({ modulePath: MODULE, port: 0, allowedOrigins: [url], serverUrl: url, log: () => {} });
  server = await startTestServer(
    {
      WEBAUTHN_AAL3_AAGUIDS: CHROMIUM_VIRTUAL_AAGUID,
      WEBAUTHN_ATTESTATION_ROOTS: rootsFile,
      CARD_TRANSPORT_SO_PIN: TRANSPORT_SO_PIN,
      CARD_AGENT_URL: agent.url,
    },
    port,
  );
  const op = () => server.operator();

  // The first RA Manager, as `opencis bootstrap` makes them, at the trust; a hospital site under it.
  const bootstrap = await bootstrapRaManager(
    op(),
    {
      odsCode: 'RR8',
      orgName: 'Leeds Teaching Hospitals',
      orgType: 'trust',
      givenName: 'Grace',
      familyName: 'Okafor',
      dateOfBirth: '1975-06-30',
      email: 'grace.okafor@example.nhs.uk',
    },
    url,
  );
  managerLink = bootstrap.link;
  await saveOrganisation(op(), {
    odsCode: 'RR813',
    name: 'St James’s University Hospital',
    type: 'site',
    parentOdsCode: 'RR8',
  });
  // The worker's future position: not assignable, so a Sponsor may only ask for it.
  const clerk = await createPosition(op(), 'RR813', { name: POSITION, jobRoles: ['R8010'] });
  assert.equal(clerk.assignable, false);

  // A ward manager who sponsors new starters (B1300) — a separate person from the RA Manager, with their own key.
  const sponsorPosition = await createPosition(op(), 'RR8', {
    name: 'Ward manager',
    jobRoles: ['R8000'],
    activities: ['B1300'],
  });
  const sponsor = await registerPerson(op(), {
    givenName: 'Samir',
    familyName: 'Haddad',
    dateOfBirth: '1972-04-18',
    email: 'samir.haddad@example.nhs.uk',
    identityAssuranceLevel: 3,
  });
  sponsorId = sponsor.userId;
  await assignRoleProfile(op(), {
    userId: sponsorId,
    positionId: sponsorPosition.positionId,
    startDate: new Date().toISOString().slice(0, 10),
  });
  sponsorLink = `${url}/enrol/invite?t=${await createEnrolmentInvitation(op(), { userId: sponsorId, maxAal: 3 })}`;

  browser = await launchBrowser();

  // Trust the virtual authenticator's attestation (an organisation's configured manufacturer roots), learnt from a
  // throwaway registration, so that the RA staff's security keys are AAL3.
  const probe = await registerPerson(op(), {
    givenName: 'Key',
    familyName: 'Probe',
    dateOfBirth: '1990-01-01',
    identityAssuranceLevel: 3,
  });
  const { context, page } = await newPage();
  await page.goto(url);
  await addVirtualAuthenticator(context, page, { transport: 'usb', backupEligible: false });
  let attestation: Buffer | undefined;
  page.on('request', (r) => {
    if (!r.url().endsWith('/enrol/invite/verify') || attestation) return;
    const body = JSON.parse(r.postData() ?? '{}') as { response: { response: { attestationObject: string } } };
    const decoded = decodeAttestationObject(isoBase64URL.toBuffer(body.response.response.attestationObject));
    attestation = Buffer.from(decoded.get('attStmt').get('x5c')![0]!);
  });
  await enrolSecurityKey(
    page,
    `${url}/enrol/invite?t=${await createEnrolmentInvitation(op(), { userId: probe.userId, maxAal: 3 })}`,
    'probe',
  );
  await visit(page, 'probe account');
  assert.ok(attestation, 'the virtual key sent an attestation certificate');
  writeFileSync(rootsFile, new X509Certificate(attestation).toString());
  await context.close();
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await agent?.close();
  await server?.close();
});

test('1. remote application: a new worker applies for a Care ID at /apply with their photo ID and a selfie', async () => {
  const { page } = await newPage();
  const selfie = await selfieJpeg(page);
  await page.goto(`${url}/apply`);
  await visit(page, 'Apply for Care ID', 'apply');
  await page.fill('#givenName', WORKER.givenName);
  await page.fill('#familyName', WORKER.familyName);
  await page.fill('#dob-day', '23');
  await page.fill('#dob-month', '7');
  await page.fill('#dob-year', '1994');
  await page.fill('#email', WORKER.email);
  await page.fill('#odsCode', 'RR813');
  await page.setInputFiles('#selfie', { name: 'selfie.jpg', mimeType: 'image/jpeg', buffer: selfie });
  await page.setInputFiles('#photoIdImage', { name: 'passport.png', mimeType: 'image/png', buffer: tinyPng() });
  await visit(page, 'Apply for Care ID, filled in');
  await page.click('#apply-submit');
  await page.waitForURL(/\/apply\/done\?ref=[0-9a-f-]{36}$/, { timeout: 20_000 });
  applicationId = await textOf(page, '#application-reference');
  assert.equal(new URL(page.url()).searchParams.get('ref'), applicationId);
  await visit(page, 'application sent', 'apply-done');
  const { rows } = await server.t.db.query<{ status: string; ods_code: string }>(
    'SELECT status, ods_code FROM remote_applications WHERE application_id = $1',
    [applicationId],
  );
  assert.deepEqual(rows[0], { status: 'submitted', ods_code: 'RR813' });
});

test('2. ID check: the RA Manager verifies the application after the video call (level 2), then face to face (level 3)', async () => {
  needs(applicationId, 'the application (step 1)');
  const { context, page } = await newPage();
  manager = page;
  await page.goto(url);
  await addVirtualAuthenticator(context, page, { transport: 'usb', backupEligible: false });
  await enrolSecurityKey(page, managerLink, 'RA Manager');
  assert.equal(await page.textContent('#session-aal'), 'AAL3');
  await visit(page, 'RA Manager account');
  managerId = await textOf(page, '#user-id');

  await page.goto(`${url}/ra`);
  await expectUrl(page, `${url}/ra`);
  assert.equal(await page.textContent('#ra-roles'), 'RA Manager');
  await visit(page, 'RA home (RA Manager)');
  await page.click('a[href="/ra/applications"]');
  await expectUrl(page, `${url}/ra/applications`);
  assert.match(await textOf(page, '#applications'), new RegExp(WORKER_NAME));
  await visit(page, 'application queue', 'ra-applications');
  await page.click(`#applications a[href="/ra/applications/${applicationId}"]`);
  await expectUrl(page, `${url}/ra/applications/${applicationId}`);
  assert.equal(await page.locator('img.ra-photo').count(), 2, 'the selfie and the photo ID are shown');
  await visit(page, 'application page', 'ra-application');

  // On the video call: the documents seen; the date and time of the call are filled in with now.
  await fillDocuments(page, '7731');
  await page.fill('#notes', 'Video call; face matches the selfie and the passport photo.');
  await page.click('#verify-submit');
  await expectUrl(page, `${url}/ra/applications/${applicationId}?done=application_verified`);
  assert.match(await textOf(page, '#application-status'), /verified/);
  await visit(page, 'verified application', 'ra-application-verified');
  const personHref = await page.getAttribute('.nhsuk-summary-list a[href^="/ra/people/"]', 'href');
  assert.match(personHref ?? '', /^\/ra\/people\/\d{12}$/);
  workerId = personHref!.split('/')[3]!;

  await page.click(`.nhsuk-summary-list a[href="/ra/people/${workerId}"]`);
  await expectUrl(page, `${url}/ra/people/${workerId}`);
  assert.equal(await textOf(page, '#person-name'), WORKER_NAME);
  assert.match(await textOf(page, '#person-level'), /Level 2/);
  assert.match(await textOf(page, '#identity-checks + p'), /Remote \(video\) check.*identity level 2/);
  // Level 2 is not enough for a card yet.
  assert.equal(await page.locator(`a[href="/ra/people/${workerId}/cards/new"]`).count(), 0);
  await visit(page, 'person at level 2', 'ra-person-level2');

  // They come to the RA office with their documents: a face-to-face check with a photo taken there.
  await page.click(`a[href="/ra/people/${workerId}/identity-check"]`);
  await expectUrl(page, `${url}/ra/people/${workerId}/identity-check`);
  await visit(page, 'record an identity check', 'ra-identity-check');
  await fillDocuments(page, '7731');
  await page.fill('#place', 'RA office, St James’s University Hospital');
  await page.setInputFiles('#photo', { name: 'portrait.png', mimeType: 'image/png', buffer: tinyPng() });
  await page.waitForSelector('#photo-preview:not([hidden])');
  await page.click('form[data-photo-form] button[type=submit]');
  await expectUrl(page, `${url}/ra/people/${workerId}?done=identity_checked`);
  assert.match(await textOf(page, '#person-level'), /Level 3/);
  const { rows } = await server.t.db.query<{ identity_assurance_level: number; status: string }>(
    'SELECT identity_assurance_level, status FROM people WHERE user_id = $1',
    [workerId],
  );
  assert.deepEqual(rows[0], { identity_assurance_level: 3, status: 'active' });
  await visit(page, 'person at level 3', 'ra-person-level3');
});

test('3. sponsor request: a Sponsor (B1300) with their own security key asks for a position for the worker', async () => {
  needs(workerId, 'the worker at level 3 (step 2)');
  const { context, page } = await newPage();
  await page.goto(url);
  await addVirtualAuthenticator(context, page, { transport: 'usb', backupEligible: false });
  await enrolSecurityKey(page, sponsorLink, 'Sponsor');
  assert.equal(await page.textContent('#session-aal'), 'AAL3');
  await visit(page, 'Sponsor account');

  await page.goto(`${url}/ra`);
  await expectUrl(page, `${url}/ra`);
  assert.equal(await page.textContent('#ra-roles'), 'Sponsor');
  await visit(page, 'RA home (Sponsor)', 'sponsor-home');

  await page.goto(`${url}/ra/people/${workerId}`);
  assert.equal(await textOf(page, '#person-name'), WORKER_NAME);
  // A Sponsor asks for access; they neither issue cards nor mark leavers.
  assert.equal(await page.locator(`a[href="/ra/people/${workerId}/cards/new"]`).count(), 0);
  assert.equal(await page.locator(`a[href="/ra/people/${workerId}/leaver"]`).count(), 0);
  await visit(page, 'person page (Sponsor)', 'sponsor-person');
  await page.click(`a[href="/ra/people/${workerId}/access"]`);
  await expectUrl(page, `${url}/ra/people/${workerId}/access`);
  await visit(page, 'request access: choose the organisation', 'sponsor-access');
  await page.selectOption('#org', 'RR813');
  await page.click('button[type=submit]:has-text("Show positions")');
  await expectUrl(page, `${url}/ra/people/${workerId}/access?org=RR813`);
  const option = page.locator('.nhsuk-radios__item', { hasText: POSITION });
  assert.match((await option.textContent()) ?? '', /Needs an RA's approval/);
  await option.locator('input[type=radio]').check();
  await page.fill('#reason', 'Starts on ward 9 on Monday as the ward clerk');
  await visit(page, 'request access: the position', 'sponsor-access-position');
  await page.click('button[type=submit]:has-text("Send the request")');
  await page.waitForURL(/\/ra\/requests\/[0-9a-f-]+\?done=request_sent$/, { timeout: 20_000 });
  requestId = page.url().split('?')[0]!.split('/').at(-1)!;
  assert.match(await textOf(page, '#request-status'), /pending/);
  // Segregation of duties: the Sponsor cannot approve their own request.
  assert.equal(await page.locator('#decision-form input[value=approve]').count(), 0);
  assert.match(await textOf(page, 'main'), /You made this request, so someone else must decide it/);
  await visit(page, 'the request (Sponsor)', 'sponsor-request');

  const { rows } = await server.t.db.query<{ requested_by: string; status: string }>(
    'SELECT requested_by, status FROM access_requests WHERE request_id::text = $1',
    [requestId],
  );
  assert.deepEqual(rows[0], { requested_by: sponsorId, status: 'pending' });
  await context.close();
});

test('4. RA approval: the RA Manager approves the request; the role profile appears on the person page', async () => {
  needs(requestId, 'the request (step 3)');
  const page = manager;
  await page.goto(`${url}/ra/requests`);
  await visit(page, 'request queue', 'ra-requests');
  await page.click(`#pending-queue a[href="/ra/requests/${requestId}"]`);
  await expectUrl(page, `${url}/ra/requests/${requestId}`);
  // Names beside IDs: who asked.
  assert.match(await textOf(page, 'main'), new RegExp(`Requested by ?[^(]+\\(${sponsorId}\\)`));
  await visit(page, 'the request (RA Manager)', 'ra-request');
  await page.check('#decision-form input[value=approve]');
  await page.fill('#reason', 'Checked with the ward manager');
  await page.click('#decision-submit');
  await expectUrl(page, `${url}/ra/requests/${requestId}?done=request_approved`);
  assert.match(await textOf(page, '#request-status'), /approved/);
  assert.match(await textOf(page, 'main'), new RegExp(`by [^(]+\\(${managerId}\\)`));
  await visit(page, 'approved request', 'ra-request-approved');

  await page.click(`a[href="/ra/people/${workerId}"]`);
  await expectUrl(page, `${url}/ra/people/${workerId}`);
  const profile = page.locator('#role-profiles tbody tr', { hasText: POSITION });
  assert.equal(await profile.count(), 1);
  assert.match(
    (await profile.textContent()) ?? '',
    /R8010[\s\S]*St James’s University Hospital \(RR813\)[\s\S]*active/,
  );
  await visit(page, 'person with a role profile', 'ra-person-role');
});

test('5. card issue: the RA Manager writes a physical card through the card agent; the worker sets its passcode', async () => {
  needs(workerId, 'the worker (step 2)');
  const page = manager;
  await page.goto(`${url}/ra/people/${workerId}`);
  await page.click(`a[href="/ra/people/${workerId}/cards/new"]`);
  await expectUrl(page, `${url}/ra/people/${workerId}/cards/new`);
  await visit(page, 'card issue page', 'ra-card-issue');
  await page.check('#kind-physical');
  await page.click('#issue-start');
  await page.waitForSelector('#card-passcode:not([hidden])', { timeout: 30_000 });
  await visit(page, 'card passcode step', 'ra-card-passcode');

  // The worker types the passcode: it goes to the card agent only, never to the server.
  const toServer: string[] = [];
  const watch = (r: { url(): string; postData(): string | null }) => {
    if (r.url().startsWith(url)) toServer.push(`${r.url()} ${r.postData() ?? ''}`);
  };
  page.on('request', watch);
  await page.fill('#new-passcode', PASSCODE);
  await page.fill('#new-passcode-again', PASSCODE);
  await page.click('#passcode-submit');
  await page.waitForSelector('#card-done:not([hidden])', { timeout: 30_000 });
  page.off('request', watch);
  assert.ok(toServer.length > 0, 'the page asked the server for the passcode grant');
  assert.ok(
    toServer.every((r) => !r.includes(PASSCODE)),
    'the passcode never reaches the server',
  );
  await visit(page, 'card issued', 'ra-card-issued');

  const faceHref = (await page.getAttribute('#card-face-link', 'href')) ?? '';
  assert.match(faceHref, /^\/ra\/cards\/\d{16}\/face$/);
  cardId = faceHref.split('/')[3]!;
  const { rows } = await server.t.db.query<{ status: string; kind: string; user_id: string }>(
    'SELECT status, kind, user_id FROM cards WHERE card_id = $1',
    [cardId],
  );
  assert.deepEqual(rows[0], { status: 'active', kind: 'physical', user_id: workerId });
  await page.click('#card-face-link');
  await expectUrl(page, `${url}${faceHref}`);
  assert.equal(await textOf(page, '#card-face-user-id'), workerId);
  assert.equal(await textOf(page, '#card-face-name'), WORKER_NAME);
  await visit(page, 'card face', 'ra-card-face');
});

test('6. the worker signs in with the card: AAL3 by smartcard, with their role profile', async () => {
  needs(cardId, 'the card (step 5)');
  const { page } = await newPage();
  workerSession = page;
  await page.goto(`${url}/signin`);
  await visit(page, 'sign-in page', 'signin');
  await page.fill('#card-passcode', PASSCODE);
  await page.click('#card-signin');
  await expectUrl(page, `${url}/account`);
  assert.equal(await textOf(page, '#user-id'), workerId);
  assert.equal(await page.textContent('#session-aal'), 'AAL3');
  assert.equal(await page.textContent('#session-amr'), 'SMARTCARD');
  const main = await textOf(page, 'main');
  assert.match(main, new RegExp(`${POSITION}.*St James’s University Hospital \\(RR813\\).*R8010`));
  assert.match(main, new RegExp(`Card ${cardId} \\(physical\\): active`));
  await visit(page, 'worker account', 'worker-account');
});

test('7. leaver: the RA Manager marks the worker as a leaver; the card is cancelled and its certificate revoked', async () => {
  needs(cardId, 'the card (step 5)');
  const page = manager;
  await page.goto(`${url}/ra/people/${workerId}`);
  await visit(page, 'person page before leaving');
  await page.click(`a[href="/ra/people/${workerId}/leaver"]`);
  await expectUrl(page, `${url}/ra/people/${workerId}/leaver`);
  await visit(page, 'leaver page', 'ra-leaver');
  await page.fill('#reason', 'Resigned; last day today');
  await page.click('button[type=submit]:has-text("Mark as a leaver")');
  await expectUrl(page, `${url}/ra/people/${workerId}?done=leaver`);
  assert.match(await textOf(page, '#person-status'), /left/);
  assert.match(await textOf(page, `#cards tbody tr:has-text("${cardId}")`), /cancelled/);
  assert.match(await textOf(page, `#role-profiles tbody tr:has-text("${POSITION}")`), /ended/);
  await visit(page, 'person page after leaving', 'ra-person-left');

  const cards = await server.t.db.query<{ status: string; cancel_reason: string }>(
    'SELECT status, cancel_reason FROM cards WHERE card_id = $1',
    [cardId],
  );
  assert.deepEqual(cards.rows[0], { status: 'cancelled', cancel_reason: 'leaver' });
  const certs = await server.t.db.query<{ status: string; revocation_reason: string }>(
    'SELECT status, revocation_reason FROM pki_certificates WHERE card_id = $1',
    [cardId],
  );
  assert.ok(certs.rows.length > 0);
  for (const c of certs.rows) assert.equal(c.status, 'revoked');

  // And the CA says so to anyone who asks: OCSP, through openssl.
  const status = (await (await fetch(`${agent.url}/v1/status`, { headers: { origin: url } })).json()) as {
    certificate: string;
  };
  const dir = mkdtempSync(join(tmpdir(), 'opencis-life-ocsp-'));
  writeFileSync(join(dir, 'card.pem'), new X509Certificate(Buffer.from(status.certificate, 'base64')).toString());
  const ca = Buffer.from(await (await fetch(`${url}/pki/ca.crt`)).arrayBuffer());
  writeFileSync(join(dir, 'ca.pem'), new X509Certificate(ca).toString());
  // Asynchronously: the server answering openssl runs in this process.
  const { stdout: ocsp } = await promisify(execFile)(
    'openssl',
    [
      'ocsp',
      '-issuer',
      join(dir, 'ca.pem'),
      '-cert',
      join(dir, 'card.pem'),
      '-url',
      `${url}/pki/ocsp`,
      '-CAfile',
      join(dir, 'ca.pem'),
    ],
    { encoding: 'utf8', timeout: 30_000 },
  );
  assert.match(ocsp, /card\.pem: revoked/);
  assert.match(ocsp, /Reason: affiliationChanged/);
});

test('8. the leaver: their open session is gone and their card sign-in is refused', async () => {
  needs(workerSession, "the worker's session (step 6)");
  // The session opened with the card in step 6 ended with the leaver.
  await workerSession.goto(`${url}/account`);
  await workerSession.waitForURL((u) => u.pathname === '/signin', { timeout: 20_000 });
  await visit(workerSession, 'sign-in page after the session ended');

  // The card does not sign in any more.
  await signInWithCard(workerSession, PASSCODE);
  await workerSession.waitForSelector('#js-error:not([hidden])', { timeout: 20_000 });
  assert.match(await textOf(workerSession, '#js-error-message'), /Sign-in failed/);
  assert.equal(workerSession.url(), `${url}/signin`);
  await visit(workerSession, 'sign-in refused', 'leaver-signin-refused');
  const { rows } = await server.t.db.query<{ reason: string; target_id: string | null }>(
    "SELECT reason, target_id FROM audit_events WHERE action = 'signin.failed' ORDER BY seq DESC LIMIT 1",
  );
  assert.equal(rows[0]!.reason, 'pki.certificate_revoked');

  // No session came of it.
  await workerSession.goto(`${url}/account`);
  await workerSession.waitForURL((u) => u.pathname === '/signin', { timeout: 20_000 });
  await visit(workerSession, 'sign-in page, still signed out');
  const sessions = await server.t.db.query<{ end_reason: string | null }>(
    'SELECT end_reason FROM web_sessions WHERE user_id = $1 ORDER BY created_at',
    [workerId],
  );
  assert.deepEqual(
    sessions.rows.map((r) => r.end_reason),
    ['leaver'],
    'the one session they had (from the card, step 6) was ended by the leaver; the refused card opened none',
  );
});
