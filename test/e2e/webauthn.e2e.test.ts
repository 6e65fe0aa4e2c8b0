import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { decodeAttestationObject, isoBase64URL } from '@simplewebauthn/server/helpers';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createEnrolmentInvitation } from '../../src/services/enrolment.ts';
import { registerPerson } from '../../src/services/people.ts';
import { addVirtualAuthenticator, assertAccessible, expectUrl, launchBrowser, screenshot } from '../support/browser.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/**
 * Chromium's virtual authenticator (CDP) makes 'packed' attestations signed by a "Batch Certificate" it generates. An
 * organisation decides which authenticator models count as AAL3: their AAGUIDs (WEBAUTHN_AAL3_AAGUIDS) and their
 * manufacturers' attestation roots (WEBAUTHN_ATTESTATION_ROOTS). Chromium's virtual authenticator model:
 */
const CHROMIUM_VIRTUAL_AAGUID = '01020304-0506-0708-0102-030405060708';

const rootsFile = join(mkdtempSync(join(tmpdir(), 'opencis-roots-')), 'attestation-roots.pem');
let server: TestServer;
let browser: Browser;
let userId: string;

before(async () => {
  server = await startTestServer({
    WEBAUTHN_AAL3_AAGUIDS: CHROMIUM_VIRTUAL_AAGUID,
    WEBAUTHN_ATTESTATION_ROOTS: rootsFile,
  });
  browser = await launchBrowser();
  const person = await registerPerson(server.operator(), {
    givenName: 'Kwame',
    familyName: 'Mensah',
    dateOfBirth: '1979-11-23',
    niNumber: 'JG103759D',
    email: 'kwame.mensah@example.nhs.uk',
    identityAssuranceLevel: 3,
  });
  userId = person.userId;
});

after(async () => {
  await browser?.close();
  await server?.close();
});

async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  return { context, page };
}

async function credentialRows() {
  const { rows } = await server.t.db.query<{
    kind: string;
    aal: number;
    backup_eligible: boolean;
    attestation_format: string;
    aaguid: string;
  }>(
    'SELECT kind, aal, backup_eligible, attestation_format, aaguid FROM webauthn_credentials WHERE user_id = $1 ORDER BY created_at',
    [userId],
  );
  return rows;
}

test('a security key is AAL3 only when its attestation chains to a trusted manufacturer root; it then signs in at AAL3', async () => {
  const { context, page } = await newPage();
  await page.goto(server.url); // the authenticator is attached to this page's target
  const key = await addVirtualAuthenticator(context, page, { transport: 'usb', backupEligible: false });
  let attestationCertificate: Buffer | undefined;
  page.on('request', (r) => {
    if (!r.url().endsWith('/enrol/invite/verify')) return;
    const body = JSON.parse(r.postData() ?? '{}') as { response: { response: { attestationObject: string } } };
    const attestation = decodeAttestationObject(isoBase64URL.toBuffer(body.response.response.attestationObject));
    attestationCertificate = Buffer.from(attestation.get('attStmt').get('x5c')![0]!);
  });

  // No trusted roots yet: the key's attestation proves nothing, so it is AAL2.
  const first = await registerPerson(server.operator(), {
    givenName: 'Test',
    familyName: 'Untrusted',
    dateOfBirth: '1990-01-01',
    identityAssuranceLevel: 3,
  });
  await page.goto(
    `${server.url}/enrol/invite?t=${await createEnrolmentInvitation(server.operator(), { userId: first.userId, maxAal: 3 })}`,
  );
  await assertAccessible(page, 'invitation page');
  await page.click('[data-invite-kind=security_key]');
  await expectUrl(page, `${server.url}/account`);
  assert.equal(await page.textContent('#session-aal'), 'AAL2');
  assert.ok(attestationCertificate, 'the browser sent a packed attestation with a certificate');
  await page.click('.opencis-signout button');
  await expectUrl(page, `${server.url}/signin`);

  // The organisation trusts this authenticator model's attestation root (here: Chromium's virtual authenticator).
  writeFileSync(rootsFile, new X509Certificate(attestationCertificate).toString());
  await key.clear();
  const token = await createEnrolmentInvitation(server.operator(), { userId, maxAal: 3 });
  await page.goto(`${server.url}/enrol/invite?t=${token}`);
  await page.click('[data-invite-kind=security_key]');
  await expectUrl(page, `${server.url}/account`);
  const rows = await credentialRows();
  assert.equal(rows.length, 1);
  assert.deepEqual(
    {
      kind: rows[0]!.kind,
      aal: rows[0]!.aal,
      be: rows[0]!.backup_eligible,
      fmt: rows[0]!.attestation_format,
      aaguid: rows[0]!.aaguid,
    },
    { kind: 'security_key', aal: 3, be: false, fmt: 'packed', aaguid: CHROMIUM_VIRTUAL_AAGUID },
  );
  assert.equal(await page.textContent('#session-aal'), 'AAL3');

  // Sign out, sign in again with the key.
  await page.click('.opencis-signout button');
  await expectUrl(page, `${server.url}/signin`);
  await page.click('#webauthn-signin');
  await expectUrl(page, `${server.url}/account`);
  assert.equal(await page.textContent('#session-aal'), 'AAL3');
  assert.equal(await page.textContent('#session-amr'), 'FIDO2');
  await screenshot(page, 'account-security-key');
  // The invitation was used up.
  await page.goto(`${server.url}/enrol/invite?t=${token}`);
  assert.match((await page.textContent('main')) ?? '', /not valid, has expired or was already used/);
  await key.remove();
  await context.close();
});

test('a synced passkey (backup eligible) is AAL2 and signs in at AAL2; adding a security key then needs a step-up', async () => {
  const { context, page } = await newPage();
  await page.goto(server.url);
  await addVirtualAuthenticator(context, page, { transport: 'internal', backupEligible: true });
  const token = await createEnrolmentInvitation(server.operator(), { userId, maxAal: 3 });
  await page.goto(`${server.url}/enrol/invite?t=${token}`);
  await page.click('[data-invite-kind=platform]');
  await expectUrl(page, `${server.url}/account`);
  const rows = await credentialRows();
  assert.equal(rows.length, 2);
  assert.deepEqual(
    { kind: rows[1]!.kind, aal: rows[1]!.aal, be: rows[1]!.backup_eligible },
    { kind: 'passkey', aal: 2, be: true },
  );

  await page.click('.opencis-signout button');
  await expectUrl(page, `${server.url}/signin`);
  await page.click('#webauthn-signin');
  await expectUrl(page, `${server.url}/account`);
  assert.equal(await page.textContent('#session-aal'), 'AAL2');
  assert.equal(await page.textContent('#session-amr'), 'PASSKEY');
  await assertAccessible(page, 'account page at AAL2');

  // An AAL2 session cannot add an AAL3 authenticator: the server asks for a stronger sign-in.
  await addVirtualAuthenticator(context, page, { transport: 'usb', backupEligible: false });
  await page.click('[data-webauthn-kind=security_key]');
  await page
    .locator('#js-error-message')
    .filter({ hasText: /stronger sign-in/ })
    .waitFor();
  assert.equal((await credentialRows()).length, 2);

  // The sign-in page in step-up mode offers only AAL3 methods.
  await page.goto(`${server.url}/signin?aal=3&return=/account`);
  assert.equal(await page.locator('form[action="/signin/totp"]').count(), 0);
  await assertAccessible(page, 'step-up sign-in page');
  await context.close();
});

test('an authenticator app: enrolment through the self-service route, sign-in at AAL2', async () => {
  const { context, page } = await newPage();
  // Self-service enrolment: verified email + one-time code + NI number.
  await server.t.db.query('UPDATE people SET email_verified_at = now() WHERE user_id = $1', [userId]);
  await page.goto(`${server.url}/enrol`);
  await assertAccessible(page, 'enrolment page');
  await page.fill('#email', 'Kwame.Mensah@example.nhs.uk');
  await page.click('button[type=submit]');
  await page.waitForSelector('#niNumber');
  const message = (await server.delivered()).filter((m) => m.template === 'one_time_code.enrolment').at(-1);
  assert.ok(message);
  await page.fill('#code', /is (\d{8})/.exec(message.text)![1]!);
  await page.fill('#niNumber', 'jg 10 37 59 d');
  await page.click('button[type=submit]');
  await expectUrl(page, `${server.url}/account`);
  assert.equal(await page.textContent('#session-aal'), 'AAL1');
  await page.click('form[action="/account/totp/start"] button');
  await page.waitForSelector('#totp-secret');
  await assertAccessible(page, 'authenticator app set-up page');
  const secret = (await page.textContent('#totp-secret'))!.trim();
  const { TOTP, Secret } = await import('otpauth');
  const totp = new TOTP({ secret: Secret.fromBase32(secret), digits: 6, period: 30, algorithm: 'SHA1' });
  await page.fill('#code', totp.generate());
  await page.click('form[action="/account/totp/confirm"] button');
  await expectUrl(page, `${server.url}/account`);

  await page.click('.opencis-signout button');
  await expectUrl(page, `${server.url}/signin`);
  await page.fill('#userId', userId);
  // the code used at enrolment cannot be replayed: wait for the next time step
  const next = totp.generate({ timestamp: Date.now() + 30_000 });
  await page.fill('#code', next);
  await page.click('form[action="/signin/totp"] button');
  await expectUrl(page, `${server.url}/account`);
  assert.equal(await page.textContent('#session-aal'), 'AAL2');
  assert.equal(await page.textContent('#session-amr'), 'TOTP');
  await context.close();
});
