import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { type RunningCardAgent, startCardAgent } from '../../src/card-agent/main.ts';
import { passcodeGrant, startCardIssue } from '../../src/services/cards.ts';
import { registerPerson } from '../../src/services/people.ts';
import { assertAccessible, expectUrl, launchBrowser, screenshot } from '../support/browser.ts';
import { freePort, startTestServer, type TestServer } from '../support/server.ts';
import { initBlankToken, SOFTHSM2_MODULE, useThrowawaySoftHsm } from '../support/softhsm.ts';

// Self-renewal of a smartcard certificate (DOMAIN §6), with a SoftHSM2 card, the real card agent and the real server.
//
// Time: the server's clock is moved (TestClock), the browser's and the agent's are not. Only the server decides
// whether renewal is allowed and whether a certificate is in date; the agent stores and presents certificates without
// checking their dates, so a renewed certificate whose notBefore lies ~700 days in the real future is still written to
// the card and works for sign-in against the moved server. (An openssl or OCSP check here would use real time, so this
// test does not make one.)

useThrowawaySoftHsm('opencis-e2e-renew-');
const MODULE = SOFTHSM2_MODULE;
const TRANSPORT_SO_PIN = '24681357';
const PASSCODE = '592736';
const DAY_MS = 86_400_000;

let server: TestServer;
let agent: RunningCardAgent;
let browser: Browser;
let userId: string;
let cardId: string;

async function agentPost(path: string, body: unknown) {
  const res = await fetch(`${agent.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: server.url },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** The certificate on the card in the reader, as the agent reads it. */
async function cardCertificate(): Promise<X509Certificate> {
  const res = await fetch(`${agent.url}/v1/status`, { headers: { origin: server.url } });
  const status = (await res.json()) as { certificate: string | null };
  assert.ok(status.certificate, 'the card holds a certificate');
  return new X509Certificate(Buffer.from(status.certificate, 'base64'));
}

/** Lower-case hex without leading zeros: how pki_certificates and X509Certificate.serialNumber can be compared. */
function serialOf(serial: string): string {
  return serial.toLowerCase().replace(/^0+/, '');
}

function longDate(at: Date | string): string {
  return new Intl.DateTimeFormat('en-GB', {
    day: 'numeric',
    month: 'long',
    year: 'numeric',
    timeZone: 'Europe/London',
  }).format(new Date(at));
}

async function certificatesOfCard() {
  const { rows } = await server.t.db.query<{ serial: string; status: string; revocation_reason: string | null }>(
    'SELECT serial, status, revocation_reason FROM pki_certificates WHERE card_id = $1 ORDER BY created_at, serial',
    [cardId],
  );
  return rows;
}

async function signInWithCard(context: BrowserContext): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${server.url}/signin`);
  await page.fill('#card-passcode', PASSCODE);
  await page.click('#card-signin');
  await expectUrl(page, `${server.url}/account`);
  assert.equal(await page.textContent('#session-aal'), 'AAL3');
  return page;
}

/**
 * Renewal through the API as a page would do it, from the test: the browser's session cookies and CSRF token, the
 * agent's signature over a renewal challenge. Writes nothing to the card.
 */
async function renewThroughApi(context: BrowserContext, page: Page): Promise<{ status: number; body: unknown }> {
  const cookies = (await context.cookies(server.url)).map((c) => `${c.name}=${c.value}`).join('; ');
  const csrf = await page.getAttribute('input[name=_csrf]', 'value');
  assert.ok(csrf);
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie: cookies, 'csrf-token': csrf },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const challenge = await post('/api/v1/me/card/renewal-challenge', {});
  assert.equal(challenge.status, 200, JSON.stringify(challenge.body));
  const signed = await agentPost('/v1/sign', { challenge: challenge.body.challenge, passcode: PASSCODE });
  assert.equal(signed.status, 200, JSON.stringify(signed.body));
  return post('/api/v1/me/card/renew', { challengeId: challenge.body.challengeId, ...signed.body });
}

before(async () => {
  initBlankToken(TRANSPORT_SO_PIN);
  const port = await freePort();
  const url = `http://localhost:${port}`;
  agent = await startCardAgent({ modulePath: MODULE, port: 0, allowedOrigins: [url], serverUrl: url, log: () => {} });
  // The journey counts days from exactly 730 (renewal window, expiry): no expiry spread.
  server = await startTestServer(
    { CARD_TRANSPORT_SO_PIN: TRANSPORT_SO_PIN, CARD_AGENT_URL: agent.url, CARD_EXPIRY_SPREAD_DAYS: '0' },
    port,
  );
  browser = await launchBrowser();

  // The RA desk: a verified person, a card issued on the token in the reader, the holder sets a passcode.
  const ctx = server.operator();
  const person = await registerPerson(ctx, {
    givenName: 'Tomasz',
    familyName: 'Wiśniewski',
    dateOfBirth: '1979-11-02',
    niNumber: 'JK246813D',
    email: 'tomasz.wisniewski@example.nhs.uk',
    identityAssuranceLevel: 3,
  });
  userId = person.userId;
  const issue = await startCardIssue(
    ctx,
    { origin: server.url, publicUrl: server.url, transportSoPin: TRANSPORT_SO_PIN },
    { userId, kind: 'physical' },
  );
  cardId = issue.card.cardId;
  const issued = await agentPost('/v1/cards/issue', { grant: issue.grant });
  assert.equal(issued.status, 200, JSON.stringify(issued.body));
  const set = await agentPost('/v1/cards/passcode', { grant: await passcodeGrant(ctx, cardId), passcode: PASSCODE });
  assert.equal(set.status, 200, JSON.stringify(set.body));
});

after(async () => {
  await browser?.close();
  await agent?.close();
  await server?.close();
});

test('too early: the page says from when, and the API refuses a renewal with 409', async () => {
  const context = await browser.newContext();
  const page = await signInWithCard(context);
  assert.equal(await page.locator('.card-renew-link').count(), 0, 'no "Renew my card" link two years before expiry');

  const before = await cardCertificate();
  const notAfter = new Date(before.validTo);
  await page.goto(`${server.url}/account/card/renew`);
  assert.equal(await page.textContent('#card-id'), cardId);
  assert.equal(await page.textContent('#card-expiry'), longDate(notAfter));
  const status = ((await page.textContent('#renewal-status')) ?? '').replace(/\s+/g, ' ');
  assert.ok(
    status.includes(
      `You can renew in the last 90 days before it expires (from ${longDate(new Date(notAfter.getTime() - 90 * DAY_MS))})`,
    ),
    status,
  );
  assert.equal(await page.locator('#renew-passcode').count(), 0, 'no passcode field while renewal is not allowed');
  await assertAccessible(page, 'card renewal page (too early)');

  // Forcing it: the card proves possession, the server still refuses.
  const forced = await renewThroughApi(context, page);
  assert.equal(forced.status, 409, JSON.stringify(forced.body));
  assert.equal((forced.body as { error: { code: string } }).error.code, 'card.renewal_not_allowed');
  assert.equal((await cardCertificate()).fingerprint256, before.fingerprint256, 'the card is unchanged');
  const certificates = await certificatesOfCard();
  assert.equal(certificates.length, 1);
  assert.equal(certificates[0]!.status, 'valid');
  await context.close();
});

test('in the last 90 days: renew through the page; the card holds the new certificate; sign in with it', async () => {
  // 700 of the certificate's 730 days have passed, for the server. Sessions have long expired: sign in again.
  server.clock.advanceDays(700);
  const old = await cardCertificate();
  const [oldRow] = await certificatesOfCard();
  assert.equal(serialOf(oldRow!.serial), serialOf(old.serialNumber));

  const context = await browser.newContext();
  const page = await signInWithCard(context);
  await page.click('.card-renew-link');
  await expectUrl(page, `${server.url}/account/card/renew?card=${cardId}`);
  assert.match((await page.textContent('#renewal-status')) ?? '', /You can renew this card now/);
  await assertAccessible(page, 'card renewal page');

  // A passcode that is not 6 to 8 digits never reaches the card: error summary and message on the field.
  await page.fill('#renew-passcode', '12');
  await page.click('#renew-submit');
  await page
    .locator('#js-error-message')
    .filter({ hasText: /6 to 8 digits/ })
    .waitFor();
  assert.equal(await page.isVisible('#renew-passcode-error'), true);
  assert.equal(await page.getAttribute('#js-error-message', 'href'), '#renew-passcode');
  await assertAccessible(page, 'card renewal page with an error');

  await page.fill('#renew-passcode', PASSCODE);
  await page.click('#renew-submit');
  await page.waitForSelector('#renew-done:not([hidden])', { timeout: 30_000 });
  assert.equal(await page.isVisible('#js-error'), false);
  await assertAccessible(page, 'card renewal page (renewed)');
  await screenshot(page, 'card-renewal');

  // The card holds a new certificate for the same key, valid for longer.
  const renewed = await cardCertificate();
  assert.notEqual(renewed.fingerprint256, old.fingerprint256);
  assert.ok(renewed.publicKey.equals(old.publicKey), 'the same key on the card, certified again');
  assert.ok(new Date(renewed.validTo).getTime() > new Date(old.validTo).getTime(), 'the new certificate lasts longer');
  assert.equal(await page.textContent('#renew-new-expiry'), longDate(renewed.validTo));

  // The server: the old certificate is revoked as superseded, the card points at the new one.
  const rows = await certificatesOfCard();
  assert.equal(rows.length, 2);
  const oldNow = rows.find((r) => serialOf(r.serial) === serialOf(old.serialNumber))!;
  const newNow = rows.find((r) => serialOf(r.serial) === serialOf(renewed.serialNumber))!;
  assert.deepEqual([oldNow.status, oldNow.revocation_reason], ['revoked', 'superseded']);
  assert.deepEqual([newNow.status, newNow.revocation_reason], ['valid', null]);
  const card = await server.t.db.query<{ certificate_serial: string; status: string }>(
    'SELECT certificate_serial, status FROM cards WHERE card_id = $1',
    [cardId],
  );
  assert.equal(card.rows[0]!.certificate_serial, newNow.serial);
  assert.equal(card.rows[0]!.status, 'active');
  const audit = await server.t.db.query<{ actor: string }>(
    "SELECT actor FROM audit_events WHERE action = 'card.renewed' AND target_id = $1",
    [userId],
  );
  assert.deepEqual(
    audit.rows.map((r) => r.actor),
    [`person:${userId}`],
  );
  await context.close();

  // Sign-in with the new certificate.
  const again = await browser.newContext();
  const signedIn = await signInWithCard(again);
  assert.equal(await signedIn.textContent('#session-amr'), 'SMARTCARD');
  assert.equal(await signedIn.locator('.card-renew-link').count(), 0, 'nothing to renew any more');
  await again.close();
});

test('a renewal whose certificate never reached the card is finished from the page', async () => {
  // The renewed certificate enters its own last 90 days; the holder renews but the card never gets the certificate
  // (here: the API is called and nothing is written). The card still holds the superseded certificate.
  server.clock.advanceDays(650);
  const context = await browser.newContext();
  const page = await signInWithCard(context);
  const stale = await cardCertificate();
  const renewal = await renewThroughApi(context, page);
  assert.equal(renewal.status, 200, JSON.stringify(renewal.body));
  const issued = new X509Certificate(Buffer.from((renewal.body as { certificate: string }).certificate, 'base64'));
  assert.equal((await cardCertificate()).fingerprint256, stale.fingerprint256);

  // Sign-in with the card now fails (its certificate was superseded) ...
  const elsewhere = await browser.newContext();
  const refused = await elsewhere.newPage();
  await refused.goto(`${server.url}/signin`);
  await refused.fill('#card-passcode', PASSCODE);
  await refused.click('#card-signin');
  await refused
    .locator('#js-error-message')
    .filter({ hasText: /Sign-in failed/ })
    .waitFor();
  await elsewhere.close();

  // ... until the renewal page, still open in the signed-in session, writes the current certificate to the card.
  await page.goto(`${server.url}/account/card/renew`);
  await page.waitForSelector('#renew-finish-intro:not([hidden])');
  assert.equal(await page.isVisible('#renew-state'), false);
  await assertAccessible(page, 'card renewal page (finish writing)');
  await page.fill('#renew-passcode', PASSCODE);
  await page.click('#renew-submit');
  await page.waitForSelector('#renew-done:not([hidden])', { timeout: 30_000 });
  assert.equal((await cardCertificate()).fingerprint256, issued.fingerprint256);
  assert.equal(await page.textContent('#renew-new-expiry'), longDate(issued.validTo));
  await context.close();

  const again = await browser.newContext();
  await signInWithCard(again);
  await again.close();
});
