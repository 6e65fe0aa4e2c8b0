import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import { type RunningCardAgent, startCardAgent } from '../../src/card-agent/main.ts';
import { cancelCard, passcodeGrant, startCardIssue } from '../../src/services/cards.ts';
import { registerPerson } from '../../src/services/people.ts';
import { assertAccessible, expectUrl, launchBrowser, screenshot } from '../support/browser.ts';
import { freePort, startTestServer, type TestServer } from '../support/server.ts';
import { initBlankToken, SOFTHSM2_MODULE, useThrowawaySoftHsm } from '../support/softhsm.ts';

// The card: a SoftHSM2 token in a throwaway directory. SOFTHSM2_CONF must be set before PKCS#11 is first initialised.
useThrowawaySoftHsm('opencis-e2e-card-');
const MODULE = SOFTHSM2_MODULE;
const TRANSPORT_SO_PIN = '13572468';
const PASSCODE = '480215';
const NEW_PASSCODE = '9164037';

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

before(async () => {
  initBlankToken(TRANSPORT_SO_PIN);
  const port = await freePort();
  const url = `http://localhost:${port}`;
  agent = await startCardAgent({ modulePath: MODULE, port: 0, allowedOrigins: [url], serverUrl: url, log: () => {} });
  server = await startTestServer({ CARD_TRANSPORT_SO_PIN: TRANSPORT_SO_PIN, CARD_AGENT_URL: agent.url }, port);
  browser = await launchBrowser();

  // The RA desk: a verified person, a card issued on the token in the reader, the holder sets a passcode.
  const ctx = server.operator();
  const person = await registerPerson(ctx, {
    givenName: 'Aoife',
    familyName: "O'Connor",
    dateOfBirth: '1987-03-09',
    niNumber: 'JH123456C',
    email: 'aoife.oconnor@example.nhs.uk',
    identityAssuranceLevel: 3,
  });
  await server.t.db.query('UPDATE people SET email_verified_at = now() WHERE user_id = $1', [person.userId]);
  userId = person.userId;
  const issue = await startCardIssue(
    ctx,
    { origin: server.url, publicUrl: server.url, transportSoPin: TRANSPORT_SO_PIN },
    { userId, kind: 'physical' },
  );
  cardId = issue.card.cardId;
  const issued = await agentPost('/v1/cards/issue', { grant: issue.grant });
  assert.equal(issued.status, 200, JSON.stringify(issued.body));
  const setPasscode = await agentPost('/v1/cards/passcode', {
    grant: await passcodeGrant(ctx, cardId),
    passcode: PASSCODE,
  });
  assert.equal(setPasscode.status, 200, JSON.stringify(setPasscode.body));
});

after(async () => {
  await browser?.close();
  await agent?.close();
  await server?.close();
});

/** Waits until the page's error summary says something matching `pattern`. */
async function waitForError(page: Page, pattern: RegExp): Promise<void> {
  await page.locator('#js-error-message').filter({ hasText: pattern }).waitFor();
}

async function signInWithCard(page: Page, passcode: string): Promise<void> {
  await page.goto(`${server.url}/signin`);
  await page.fill('#card-passcode', passcode);
  await page.click('#card-signin');
}

test('smartcard sign-in through the card agent; 3 wrong passcodes lock the card; self-service unlock; sign in again', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.url}/signin`);
  await assertAccessible(page, 'sign-in page');
  await screenshot(page, 'signin');

  // Three wrong passcodes: two warnings, then the card locks itself.
  await signInWithCard(page, '111333');
  await page.waitForSelector('#js-error:not([hidden])');
  assert.match((await page.textContent('#js-error-message')) ?? '', /2 tries are left/);
  await signInWithCard(page, '111333');
  await waitForError(page, /1 try is left/);
  await signInWithCard(page, '111333');
  await waitForError(page, /locked/i);
  await assertAccessible(page, 'sign-in page with an error');
  // The right passcode no longer helps.
  await signInWithCard(page, PASSCODE);
  await waitForError(page, /locked/i);
  // The agent told the server: the card is locked there too.
  const { rows } = await server.t.db.query<{ status: string }>('SELECT status FROM cards WHERE card_id = $1', [cardId]);
  assert.equal(rows[0]!.status, 'locked');

  // Self-service unlock with a one-time code sent to the verified email.
  await page.goto(`${server.url}/card/unlock`);
  await assertAccessible(page, 'unlock page');
  await page.fill('#userId', userId);
  await page.click('button[type=submit]');
  await page.waitForSelector('#unlock-code');
  await assertAccessible(page, 'unlock code page');
  const message = (await server.delivered()).find(
    (m) => m.userId === userId && m.template === 'one_time_code.card_unlock',
  );
  assert.ok(message, 'a code was sent');
  assert.equal(message.to, 'aoife.oconnor@example.nhs.uk');
  const code = /is (\d{8})/.exec(message.text)![1]!;
  await page.fill('#unlock-code', code);
  await page.fill('#new-passcode', '123456');
  await page.fill('#new-passcode-again', '123456');
  await page.click('#unlock-submit');
  await waitForError(page, /too easy/);
  // The weak passcode was refused by the agent before the code's grant was spent? No: the code was spent — ask again.
  await page.goto(`${server.url}/card/unlock`);
  await page.fill('#userId', userId);
  await page.click('button[type=submit]');
  await page.waitForSelector('#unlock-code');
  const message2 = (await server.delivered())
    .filter((m) => m.userId === userId && m.template === 'one_time_code.card_unlock')
    .at(-1)!;
  await page.fill('#unlock-code', /is (\d{8})/.exec(message2.text)![1]!);
  await page.fill('#new-passcode', NEW_PASSCODE);
  await page.fill('#new-passcode-again', NEW_PASSCODE);
  await page.click('#unlock-submit');
  await page.waitForSelector('#unlock-done:not([hidden])');
  await screenshot(page, 'card-unlocked');

  // Sign in with the new passcode: AAL3, smartcard.
  await signInWithCard(page, NEW_PASSCODE);
  await expectUrl(page, `${server.url}/account`);
  assert.equal(await page.textContent('#session-aal'), 'AAL3');
  assert.equal(await page.textContent('#session-amr'), 'SMARTCARD');
  await assertAccessible(page, 'account page');
  await screenshot(page, 'account');
  await context.close();
});

test('a revoked card: OCSP says revoked and sign-in is refused', async () => {
  // Cancelling the card (lost) revokes its certificate at once.
  await cancelCard(server.operator(), cardId, 'lost');
  const status = (await (await fetch(`${agent.url}/v1/status`, { headers: { origin: server.url } })).json()) as {
    certificate: string;
  };
  const certDir = mkdtempSync(join(tmpdir(), 'opencis-ocsp-'));
  writeFileSync(join(certDir, 'card.der'), Buffer.from(status.certificate, 'base64'));
  const ca = Buffer.from(await (await fetch(`${server.url}/pki/ca.crt`)).arrayBuffer());
  writeFileSync(join(certDir, 'ca.der'), ca);
  execFileSync('openssl', [
    'x509',
    '-inform',
    'DER',
    '-in',
    join(certDir, 'card.der'),
    '-out',
    join(certDir, 'card.pem'),
  ]);
  execFileSync('openssl', ['x509', '-inform', 'DER', '-in', join(certDir, 'ca.der'), '-out', join(certDir, 'ca.pem')]);
  // Asynchronously: the server answering openssl runs in this process.
  const { stdout: ocsp } = await promisify(execFile)(
    'openssl',
    [
      'ocsp',
      '-issuer',
      join(certDir, 'ca.pem'),
      '-cert',
      join(certDir, 'card.pem'),
      '-url',
      `${server.url}/pki/ocsp`,
      '-CAfile',
      join(certDir, 'ca.pem'),
    ],
    { encoding: 'utf8', timeout: 30_000 },
  );
  assert.match(ocsp, /card\.pem: revoked/);
  assert.match(ocsp, /Reason: keyCompromise/);

  const context = await browser.newContext();
  const page = await context.newPage();
  await signInWithCard(page, NEW_PASSCODE);
  await page.waitForSelector('#js-error:not([hidden])');
  assert.match((await page.textContent('#js-error-message')) ?? '', /Sign-in failed/);
  assert.equal(page.url(), `${server.url}/signin`);
  const { rows } = await server.t.db.query<{ reason: string }>(
    "SELECT reason FROM audit_events WHERE action = 'signin.failed' ORDER BY seq DESC LIMIT 1",
  );
  assert.equal(rows[0]!.reason, 'pki.certificate_revoked');
  await context.close();
});
