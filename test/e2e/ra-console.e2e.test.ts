import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { decodeAttestationObject, isoBase64URL } from '@simplewebauthn/server/helpers';
import type { FastifyInstance } from 'fastify';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { buildApp } from '../../src/app.ts';
import { type RunningCardAgent, startCardAgent } from '../../src/card-agent/main.ts';
import { loadConfig } from '../../src/config.ts';
import { cardConfigFrom, relyingPartyFrom } from '../../src/http/deps.ts';
import { registerRaConsole } from '../../src/ra/console/index.ts';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { bootstrapRaManager } from '../../src/services/bootstrap.ts';
import { cardsOf, getCard } from '../../src/services/cards.ts';
import { ensureCertificateAuthority } from '../../src/services/certificates.ts';
import type { ServiceContext } from '../../src/services/context.ts';
import { createEnrolmentInvitation } from '../../src/services/enrolment.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { requestAccess, submitApplication } from '../../src/services/ra.ts';
import { personActorWithPowers } from '../../src/services/ra-powers.ts';
import { addVirtualAuthenticator, assertAccessible, expectUrl, launchBrowser, screenshot } from '../support/browser.ts';
import { TestClock, testContext, testSealer } from '../support/context.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { tinyPng } from '../support/images.ts';
import { freePort } from '../support/server.ts';
import { initBlankToken, SOFTHSM2_MODULE, useThrowawaySoftHsm } from '../support/softhsm.ts';

/** Chromium's virtual authenticator model (see webauthn.e2e.test.ts): trusted for AAL3 once its root is configured. */
const CHROMIUM_VIRTUAL_AAGUID = '01020304-0506-0708-0102-030405060708';
const rootsFile = join(mkdtempSync(join(tmpdir(), 'opencis-ra-roots-')), 'attestation-roots.pem');

// The card in the RA desk's reader: a blank SoftHSM2 token (SOFTHSM2_CONF is read when PKCS#11 is first initialised).
useThrowawaySoftHsm('opencis-ra-card-');
const TRANSPORT_SO_PIN = '24681357';

let t: TestDatabase;
let app: FastifyInstance;
let url: string;
let browser: Browser;
let agent: RunningCardAgent;
let context: BrowserContext;
let page: Page;
let managerLink: string;
let subjectId: string;
const clock = TestClock.running();
const op = (): ServiceContext => testContext(t.db, { clock });

before(async () => {
  t = await createTestDatabase();
  const port = await freePort();
  url = `http://localhost:${port}`;
  initBlankToken(TRANSPORT_SO_PIN);
  agent = await startCardAgent({
    modulePath: SOFTHSM2_MODULE,
    port: 0,
    allowedOrigins: [url],
    serverUrl: url,
    log: () => {},
  });
  const config = loadConfig({
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_URL: url,
    DATA_DIR: mkdtempSync(join(tmpdir(), 'opencis-ra-e2e-')),
    LOG_LEVEL: 'silent',
    DEMO_DATA: 'false',
    ALLOW_EXAMPLE_NI_PREFIX: 'true',
    WEBAUTHN_AAL3_AAGUIDS: CHROMIUM_VIRTUAL_AAGUID,
    WEBAUTHN_ATTESTATION_ROOTS: rootsFile,
    CARD_TRANSPORT_SO_PIN: TRANSPORT_SO_PIN,
    CARD_AGENT_URL: agent.url,
    // The journey moves the clock past exactly 730 days: no expiry spread.
    CARD_EXPIRY_SPREAD_DAYS: '0',
  });
  await ensureCertificateAuthority(op());
  const transport = { send: async () => {} };
  app = await buildApp({ config, db: t.db, sealer: testSealer, clock, logger: false, transport });
  const deps = {
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
  await app.listen({ port, host: '127.0.0.1' });

  // The first RA Manager, as `opencis bootstrap` makes them, then a site, a ward clerk, a sponsor's request and an
  // application to review.
  managerLink = (
    await bootstrapRaManager(
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
    )
  ).link;
  await saveOrganisation(op(), {
    odsCode: 'RR813',
    name: 'St James’s University Hospital',
    type: 'site',
    parentOdsCode: 'RR8',
  });
  const clerk = await createPosition(op(), 'RR813', { name: 'Ward clerk, ward 7', jobRoles: ['R8010'] });
  const sponsorPosition = await createPosition(op(), 'RR8', {
    name: 'Ward manager',
    jobRoles: ['R8000'],
    activities: ['B1300'],
  });
  const subject = await registerPerson(op(), {
    givenName: 'Priya',
    familyName: 'Raman',
    dateOfBirth: '1988-09-14',
    niNumber: 'JK123456C',
    email: 'priya.raman@example.nhs.uk',
    identityAssuranceLevel: 3,
  });
  subjectId = subject.userId;
  const today = new Date().toISOString().slice(0, 10);
  await assignRoleProfile(op(), { userId: subjectId, positionId: clerk.positionId, startDate: today });
  const sponsor = await registerPerson(op(), {
    givenName: 'Sam',
    familyName: 'Sponsor',
    dateOfBirth: '1970-01-01',
    identityAssuranceLevel: 3,
  });
  await assignRoleProfile(op(), { userId: sponsor.userId, positionId: sponsorPosition.positionId, startDate: today });
  const newStarter = await registerPerson(op(), {
    givenName: 'Noah',
    familyName: 'Raman',
    dateOfBirth: '2001-02-03',
    identityAssuranceLevel: 3,
  });
  const sponsorCtx = testContext(t.db, {
    clock,
    actor: await personActorWithPowers(t.repos, sponsor.userId, clock.now()),
  });
  await requestAccess(sponsorCtx, {
    userId: newStarter.userId,
    positionId: clerk.positionId,
    startDate: today,
    reason: 'Starts on ward 7 on Monday',
  });
  await submitApplication(
    testContext(t.db, { clock, actor: { kind: 'system', id: 'web:apply-for-care-id' } }),
    {
      applicant: {
        givenName: 'Amara',
        familyName: 'Eze',
        dateOfBirth: '1996-12-01',
        email: 'amara.eze@example.nhs.uk',
      },
      odsCode: 'RR813',
      selfie: { data: tinyPng().toString('base64') },
      photoIdImage: { data: tinyPng().toString('base64') },
    },
    { ip: '192.0.2.10' },
  );
  browser = await launchBrowser();
});

after(async () => {
  await context?.close();
  await browser?.close();
  await agent?.close();
  await app?.close();
  await t?.close();
});

/** Every page visited is checked with axe-core; the main ones are photographed. */
async function visit(page: Page, label: string, shot?: string): Promise<void> {
  await assertAccessible(page, label);
  if (shot) await screenshot(page, shot);
}

async function focusedId(page: Page): Promise<unknown> {
  return page.evaluate('document.activeElement ? document.activeElement.id : null');
}

async function focusedHref(page: Page): Promise<unknown> {
  return page.evaluate('document.activeElement ? document.activeElement.getAttribute("href") : null');
}

/** Presses Tab until the element with `id` has the focus (keyboard only), and checks the focus is visible. */
async function tabTo(page: Page, id: string, limit = 60): Promise<void> {
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press('Tab');
    if ((await focusedId(page)) === id) {
      // (The test's TypeScript has no DOM library: browser-side code is passed as a string.)
      const visible = await page.evaluate(`(() => {
        const s = getComputedStyle(document.activeElement);
        return (s.outlineStyle !== 'none' && s.outlineWidth !== '0px') || s.boxShadow !== 'none';
      })()`);
      assert.equal(visible, true, `the focus on #${id} is visible`);
      return;
    }
  }
  assert.fail(`#${id} was not reached with the Tab key`);
}

test('an RA Manager signs in with a security key and works through the console; every page passes axe-core', async () => {
  context = await browser.newContext();
  page = await context.newPage();
  await page.goto(url);
  const key = await addVirtualAuthenticator(context, page, { transport: 'usb', backupEligible: false });

  // Trust the virtual authenticator's attestation root (an organisation's configured manufacturer roots), learnt from
  // a throwaway registration, so that the RA Manager's security key is AAL3.
  let attestation: Buffer | undefined;
  page.on('request', (r) => {
    if (!r.url().endsWith('/enrol/invite/verify') || attestation) return;
    const body = JSON.parse(r.postData() ?? '{}') as { response: { response: { attestationObject: string } } };
    const decoded = decodeAttestationObject(isoBase64URL.toBuffer(body.response.response.attestationObject));
    attestation = Buffer.from(decoded.get('attStmt').get('x5c')![0]!);
  });
  const throwaway = await registerPerson(op(), {
    givenName: 'Key',
    familyName: 'Probe',
    dateOfBirth: '1990-01-01',
    identityAssuranceLevel: 3,
  });
  await page.goto(
    `${url}/enrol/invite?t=${await createEnrolmentInvitation(op(), { userId: throwaway.userId, maxAal: 3 })}`,
  );
  await visit(page, 'invitation page');
  await page.click('[data-invite-kind=security_key]');
  await expectUrl(page, `${url}/account`);
  assert.ok(attestation);
  writeFileSync(rootsFile, new X509Certificate(attestation).toString());
  await key.clear();
  await page.click('.opencis-signout button');
  await expectUrl(page, `${url}/signin`);

  // The RA Manager's one-time link from the bootstrap: a security key at AAL3.
  await page.goto(managerLink);
  await page.click('[data-invite-kind=security_key]');
  await expectUrl(page, `${url}/account`);
  assert.equal(await page.textContent('#session-aal'), 'AAL3');
  await page.click('.opencis-signout button');
  await expectUrl(page, `${url}/signin`);

  // The console asks for AAL3; signing in with the key comes back to it.
  await page.goto(`${url}/ra`);
  await expectUrl(page, `${url}/signin?return=%2Fra&aal=3`);
  await visit(page, 'step-up sign-in page');
  await page.click('#webauthn-signin');
  await expectUrl(page, `${url}/ra`);
  assert.equal(await page.textContent('#ra-roles'), 'RA Manager');
  await visit(page, 'RA home', 'ra-home');

  // Find a person, keyboard only: Tab to the fields, type, Enter submits; then Tab to the result and Enter opens it.
  await page.click('a[href="/ra/people/search"]');
  await expectUrl(page, `${url}/ra/people/search`);
  await visit(page, 'search page', 'ra-search');
  await page.evaluate('document.activeElement && document.activeElement.blur()');
  await tabTo(page, 'familyName');
  await page.keyboard.type('Raman');
  await page.keyboard.press('Tab');
  await page.keyboard.type('Pri');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#search-results');
  assert.equal(await page.locator('#search-results tbody tr').count(), 1);
  // A GET: the search is in the address (bookmarkable), and the results come before the form.
  assert.match(page.url(), /\/ra\/people\/search\?familyName=Raman&givenName=Pri/);
  await visit(page, 'search results', 'ra-search-results');
  // From the top of the page: skip link, then into the results.
  await page.evaluate(
    "document.body.setAttribute('tabindex', '-1'); document.body.focus(); document.body.removeAttribute('tabindex')",
  );
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  let onLink = false;
  for (let i = 0; i < 15 && !onLink; i++) {
    await page.keyboard.press('Tab');
    onLink = (await focusedHref(page)) === `/ra/people/${subjectId}`;
  }
  assert.ok(onLink, 'the result link is reached with Tab');
  await page.keyboard.press('Enter');
  await expectUrl(page, `${url}/ra/people/${subjectId}`);
  assert.equal(await page.textContent('#person-name'), 'Priya Raman');
  await visit(page, 'person page', 'ra-person');

  // An action page from the person page, and the change-dates form.
  await page.click(`a[href="/ra/people/${subjectId}/suspend"]`);
  await visit(page, 'suspend page');
  await page.click('button[type=submit]:has-text("Suspend this person")');
  await page.waitForSelector('.nhsuk-error-summary');
  await visit(page, 'suspend page with an error summary');
  await page.click('.nhsuk-error-summary a');
  assert.equal(await focusedId(page), 'reason');

  await page.goto(`${url}/ra/reports`);
  await visit(page, 'reports', 'ra-reports');

  await page.goto(`${url}/ra/requests`);
  await visit(page, 'request queue', 'ra-requests');
  await page.click('#pending-queue tbody a');
  await page.waitForSelector('#request-history');
  await visit(page, 'request page', 'ra-request');
  assert.equal(await page.locator('#decision-form input[value=approve]').count(), 1);

  await page.goto(`${url}/ra/applications`);
  await visit(page, 'application queue', 'ra-applications');
  await page.click('#applications tbody a');
  await page.waitForSelector('#verify');
  await visit(page, 'application page', 'ra-application');

  await page.goto(`${url}/ra/people/new`);
  await visit(page, 'register page', 'ra-register');
  await page.goto(`${url}/ra/organisations/RR8`);
  await visit(page, 'organisation page', 'ra-organisation');
  await page.goto(`${url}/apply`);
  await visit(page, 'Apply for Care ID', 'ra-apply');
});

test('at the RA desk: issue a smartcard through the card agent, the holder sets the passcode, print the face, unlock', async () => {
  // Signed in as the RA Manager by the journey above.
  await page.goto(`${url}/ra/people/${subjectId}`);
  await page.click(`a[href="/ra/people/${subjectId}/cards/new"]`);
  await expectUrl(page, `${url}/ra/people/${subjectId}/cards/new`);
  await visit(page, 'card issue page', 'ra-card-issue');
  await page.click('#issue-start');
  await page.waitForSelector('#card-passcode:not([hidden])', { timeout: 30_000 });
  await visit(page, 'card passcode step');
  // The holder types the passcode (keyboard): it goes only to the card agent.
  const toServer: string[] = [];
  page.on('request', (r) => {
    if (r.url().startsWith(url)) toServer.push(r.postData() ?? '');
  });
  assert.equal(await focusedId(page), 'new-passcode');
  await page.keyboard.type('1357924');
  await page.keyboard.press('Tab');
  await page.keyboard.type('1357924');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#card-done:not([hidden])', { timeout: 30_000 });
  assert.ok(
    toServer.every((body) => !body.includes('1357924')),
    'the passcode never reaches the server',
  );
  await visit(page, 'card issued');
  const faceHref = (await page.getAttribute('#card-face-link', 'href'))!;
  const cardId = faceHref.split('/')[3]!;
  assert.equal((await getCard(t.repos, cardId)).status, 'active');
  await page.click('#card-face-link');
  await expectUrl(page, `${url}${faceHref}`);
  assert.equal(await page.textContent('#card-face-user-id'), subjectId);
  await visit(page, 'card face', 'ra-card-face');

  // Unlock at the desk with the holder present: a grant (with the reason), their new passcode to the agent only.
  await page.goto(`${url}/ra/people/${subjectId}/cards/${cardId}/unlock`);
  await visit(page, 'card unlock page', 'ra-card-unlock');
  await page.fill('#unlock-reason', 'Forgot the passcode; holder seen in person');
  await page.fill('#new-passcode', '8642097');
  await page.fill('#new-passcode-again', '8642097');
  await page.click('#unlock-submit');
  await page.waitForSelector('#card-done:not([hidden])', { timeout: 30_000 });
  await visit(page, 'card unlocked');
  assert.equal((await getCard(t.repos, cardId)).status, 'active');
});

test("register a person with the photo taken at the check, and Apply for Care ID, through the pages' scripts", async () => {
  const recent = new Date(clock.now().getTime() - 10 * 86_400_000);
  await page.goto(`${url}/ra/people/new`);
  await page.fill('#givenName', 'Olusegun');
  await page.fill('#familyName', 'Adeyemi');
  await page.fill('#dob-day', '21');
  await page.fill('#dob-month', '3');
  await page.fill('#dob-year', '1985');
  await page.fill('#niNumber', 'JL 12 34 56 A');
  await page.selectOption('#doc0-type', 'passport');
  await page.fill('#doc0-lastChars', '4821');
  await page.fill('#doc0-expiresOn-day', '1');
  await page.fill('#doc0-expiresOn-month', '6');
  await page.fill('#doc0-expiresOn-year', String(recent.getUTCFullYear() + 5));
  await page.selectOption('#doc1-type', 'council_tax_statement');
  await page.fill('#doc1-issuedOn-day', String(recent.getUTCDate()));
  await page.fill('#doc1-issuedOn-month', String(recent.getUTCMonth() + 1));
  await page.fill('#doc1-issuedOn-year', String(recent.getUTCFullYear()));
  await page.selectOption('#doc2-type', 'birth_certificate');
  await page.fill('#place', 'RA office, Leeds General Infirmary');
  await page.click('button[type=submit]:has-text("Continue")');
  await page.waitForSelector('form[data-photo-form]');
  await visit(page, 'photo step', 'ra-register-photo');
  // Without a chosen photo the script says so, in an error summary linked to the file input.
  await page.click('#register-with-photo');
  await page.waitForSelector('#js-error:not([hidden])');
  await visit(page, 'photo step with an error');
  await page.setInputFiles('#photo', { name: 'portrait.png', mimeType: 'image/png', buffer: tinyPng() });
  await page.waitForSelector('#photo-preview:not([hidden])');
  await page.click('#register-with-photo');
  await page.waitForURL(/\/ra\/people\/\d{12}\?done=registered$/);
  assert.equal(await page.textContent('#person-name'), 'Olusegun Adeyemi');
  assert.match((await page.textContent('#person-level')) ?? '', /Level 3/);
  assert.equal(await page.locator('img.ra-photo').count(), 1);
  await visit(page, 'registered person');

  // The public form: details and two images, sent by ra-apply.js to the API.
  await page.goto(`${url}/apply`);
  await page.fill('#givenName', 'Chidi');
  await page.fill('#familyName', 'Obi');
  await page.fill('#dob-day', '9');
  await page.fill('#dob-month', '10');
  await page.fill('#dob-year', '1993');
  await page.fill('#email', 'chidi.obi@example.nhs.uk');
  await page.fill('#odsCode', 'RR813');
  await page.click('#apply-submit');
  await page.waitForSelector('#js-error:not([hidden])');
  assert.match((await page.textContent('#js-error-list')) ?? '', /Attach a photo of your face/);
  await visit(page, 'Apply for Care ID with an error');
  await page.setInputFiles('#selfie', { name: 'me.png', mimeType: 'image/png', buffer: tinyPng() });
  await page.setInputFiles('#photoIdImage', { name: 'passport.png', mimeType: 'image/png', buffer: tinyPng() });
  await page.click('#apply-submit');
  await page.waitForURL(/\/apply\/done\?ref=[0-9a-f-]{36}$/);
  await visit(page, 'application sent', 'ra-apply-done');
  await page.goto(`${url}/ra/applications`);
  assert.match((await page.textContent('#applications')) ?? '', /Chidi Obi/);
});

test('at the RA desk: renew an expired certificate with the holder and their card present', async () => {
  // The card issued and unlocked above (passcode 8642097), two years and a day later: its certificate has expired.
  const [card] = (await cardsOf(t.repos, subjectId)).filter((c) => c.status === 'active');
  assert.ok(card?.certificateSerial);
  const status = async () => {
    const res = await fetch(`${agent.url}/v1/status`, { headers: { origin: url } });
    return (await res.json()) as { certificate: string | null };
  };
  const onCard = (await status()).certificate;
  clock.advanceDays(731);
  try {
    // The RA's session has long ended too: sign in again with the security key.
    await page.goto(`${url}/ra/people/${subjectId}`);
    if (page.url().startsWith(`${url}/signin`)) {
      await page.click('#webauthn-signin');
      await expectUrl(page, `${url}/ra/people/${subjectId}`);
    }
    assert.match((await page.textContent('#cards')) ?? '', /Expired/);
    await page.click(`a[href="/ra/people/${subjectId}/cards/${card.cardId}/renew"]`);
    await expectUrl(page, `${url}/ra/people/${subjectId}/cards/${card.cardId}/renew`);
    assert.match((await page.textContent('#renewal-status')) ?? '', /has expired/);
    await visit(page, 'card renewal at the desk', 'ra-card-renew');

    // Without the RA's confirmation that they checked the holder, nothing is sent.
    await page.fill('#renew-passcode', '8642097');
    await page.click('#renew-submit');
    await page.waitForSelector('#js-error:not([hidden])');
    assert.match((await page.textContent('#js-error-message')) ?? '', /checked the holder in person/);
    assert.equal(await page.getAttribute('#js-error-message', 'href'), '#renew-holder-seen');
    await visit(page, 'card renewal at the desk with an error');
    assert.equal(
      (await cardsOf(t.repos, subjectId)).find((c) => c.cardId === card.cardId)?.certificateSerial,
      card.certificateSerial,
    );

    // The holder types their passcode (to the card agent only); the RA ticks the confirmation.
    const toServer: string[] = [];
    page.on('request', (r) => {
      if (r.url().startsWith(url)) toServer.push(r.postData() ?? '');
    });
    await page.check('#renew-holder-seen');
    await page.fill('#renew-passcode', '8642097');
    await page.click('#renew-submit');
    await page.waitForSelector('#renew-done:not([hidden])', { timeout: 30_000 });
    assert.equal(await page.isVisible('#js-error'), false);
    assert.ok(
      toServer.every((body) => !body.includes('8642097')),
      'the passcode never reaches the server',
    );
    await visit(page, 'card renewed at the desk');

    // The server: a new certificate for the same key, valid two more years; the old one superseded; the card holds it.
    const renewed = (await cardsOf(t.repos, subjectId)).find((c) => c.cardId === card.cardId)!;
    assert.notEqual(renewed.certificateSerial, card.certificateSerial);
    assert.ok(new Date(renewed.certificateNotAfter!).getTime() > clock.now().getTime() + 700 * 86_400_000);
    const now = (await status()).certificate;
    assert.ok(now && onCard && now !== onCard, 'the agent wrote the new certificate to the card');
    const written = new X509Certificate(Buffer.from(now, 'base64'));
    assert.ok(written.publicKey.equals(new X509Certificate(Buffer.from(onCard, 'base64')).publicKey));
    assert.equal(
      written.serialNumber.toLowerCase().replace(/^0+/, ''),
      renewed.certificateSerial!.toLowerCase().replace(/^0+/, ''),
    );
    const { rows } = await t.db.query<{ actor: string; after: { atDesk: boolean; expired: boolean } }>(
      "SELECT actor, after FROM audit_events WHERE action = 'card.renewed' AND target_id = $1",
      [subjectId],
    );
    assert.equal(rows.length, 1);
    assert.ok(rows[0]!.actor.startsWith('person:') && rows[0]!.actor !== `person:${subjectId}`, rows[0]!.actor);
    assert.deepEqual([rows[0]!.after.atDesk, rows[0]!.after.expired], [true, true]);
  } finally {
    clock.advanceDays(-731);
  }
});
