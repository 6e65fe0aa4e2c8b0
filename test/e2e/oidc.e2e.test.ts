import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { decodeAttestationObject, isoBase64URL } from '@simplewebauthn/server/helpers';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { registerClient } from '../../src/services/clients.ts';
import { createEnrolmentInvitation } from '../../src/services/enrolment.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { addVirtualAuthenticator, assertAccessible, expectUrl, launchBrowser, screenshot } from '../support/browser.ts';
import { client } from '../support/oidc.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/**
 * A CIS2 sign-in in Chromium (DOMAIN §7): a relying party (openid-client, with a tiny callback server) sends the browser
 * to OpenCIS; the person signs in on /signin with a security key or a passkey (CDP virtual authenticators), chooses a
 * role, and lands back at the relying party, which exchanges the code.
 */

/** Chromium's virtual authenticator model (see webauthn.e2e.test.ts): trusted here, so its keys are AAL3. */
const CHROMIUM_VIRTUAL_AAGUID = '01020304-0506-0708-0102-030405060708';
const rootsFile = join(mkdtempSync(join(tmpdir(), 'opencis-roots-')), 'attestation-roots.pem');

let server: TestServer;
let browser: Browser;
let rpServer: Server;
let callbackUrl: string;
/** Every request the relying party's callback received. */
const callbacks: string[] = [];
let userId: string;
let roleIds: string[];
let strict: { clientId: string; secret: string }; // minimum AAL 3
let lenient: { clientId: string; secret: string }; // minimum AAL 2

before(async () => {
  server = await startTestServer({
    WEBAUTHN_AAL3_AAGUIDS: CHROMIUM_VIRTUAL_AAGUID,
    WEBAUTHN_ATTESTATION_ROOTS: rootsFile,
  });
  browser = await launchBrowser();
  rpServer = createServer((req, res) => {
    const url = new URL(req.url ?? '/', callbackUrl);
    if (url.pathname === '/callback') callbacks.push(url.toString());
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!DOCTYPE html><html lang="en"><title>EPR</title><main><h1>Signed in to the EPR</h1></main></html>');
  });
  await new Promise<void>((resolve) => rpServer.listen(0, '127.0.0.1', resolve));
  callbackUrl = `http://127.0.0.1:${(rpServer.address() as AddressInfo).port}/callback`;

  const ctx = server.operator();
  await saveOrganisation(ctx, { odsCode: 'RR8', name: 'Leeds Teaching Hospitals', type: 'trust' });
  const person = await registerPerson(ctx, {
    givenName: 'Amara',
    familyName: 'Okafor',
    dateOfBirth: '1985-03-14',
    email: 'amara.okafor@example.nhs.uk',
    identityAssuranceLevel: 3,
  });
  userId = person.userId;
  roleIds = [];
  for (const name of ['Ward nurse', 'Matron', 'Discharge coordinator']) {
    const pos = await createPosition(ctx, 'RR8', { name, jobRoles: ['R8001'], activities: ['B0825'] });
    roleIds.push(
      (await assignRoleProfile(ctx, { userId, positionId: pos.positionId, startDate: '2020-01-01' })).personRoleId,
    );
  }
  const register = async (name: string, minimumAal: 2 | 3) => {
    const reg = await registerClient(ctx, {
      name,
      redirectUris: [callbackUrl],
      tokenEndpointAuthMethod: 'client_secret_basic',
      scopes: ['openid', 'profile', 'nationalrbacaccess', 'selectedrole'],
      minimumAal,
    });
    return { clientId: reg.client.clientId, secret: reg.clientSecret! };
  };
  strict = await register('Leeds EPR', 3);
  lenient = await register('Staff rota', 2);
});

after(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (rpServer ? rpServer.close(() => resolve()) : resolve()));
  await server?.close();
});

async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  return { context, page };
}

async function configFor(rp: { clientId: string; secret: string }): Promise<client.Configuration> {
  return client.discovery(new URL(`${server.url}/oidc`), rp.clientId, {}, client.ClientSecretBasic(rp.secret), {
    execute: [client.allowInsecureRequests],
  });
}

async function startFlow(config: client.Configuration, params: Record<string, string>) {
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: callbackUrl,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
    ...params,
  });
  return { url: url.toString(), verifier, nonce, state };
}

/** Enrols a WebAuthn credential for the person through a one-time invitation, then signs out. */
async function enrol(page: Page, kind: 'security_key' | 'platform', forUserId = userId): Promise<void> {
  const token = await createEnrolmentInvitation(server.operator(), { userId: forUserId, maxAal: 3 });
  await page.goto(`${server.url}/enrol/invite?t=${token}`);
  await page.click(`[data-invite-kind=${kind}]`);
  await expectUrl(page, `${server.url}/account`);
}

async function signOut(page: Page): Promise<void> {
  await page.click('.opencis-signout button');
  await expectUrl(page, `${server.url}/signin`);
}

test('a security key at AAL3: /signin, role selection (3 roles) in Chromium, then the code exchange; acr AAL3_FIDO2', async () => {
  const { context, page } = await newPage();
  await page.goto(server.url);
  const key = await addVirtualAuthenticator(context, page, { transport: 'usb', backupEligible: false });

  // The organisation trusts this authenticator model's attestation root (captured from a first registration).
  let attestationCertificate: Buffer | undefined;
  page.on('request', (r) => {
    if (!r.url().endsWith('/enrol/invite/verify') || attestationCertificate) return;
    const body = JSON.parse(r.postData() ?? '{}') as { response: { response: { attestationObject: string } } };
    const attestation = decodeAttestationObject(isoBase64URL.toBuffer(body.response.response.attestationObject));
    attestationCertificate = Buffer.from(attestation.get('attStmt').get('x5c')![0]!);
  });
  const probe = await registerPerson(server.operator(), {
    givenName: 'Probe',
    familyName: 'Key',
    dateOfBirth: '1990-01-01',
    identityAssuranceLevel: 3,
  });
  await enrol(page, 'security_key', probe.userId);
  await signOut(page);
  assert.ok(attestationCertificate);
  writeFileSync(rootsFile, new X509Certificate(attestationCertificate).toString());
  await key.clear();
  await enrol(page, 'security_key');
  assert.equal(await page.textContent('#session-aal'), 'AAL3');
  await signOut(page);

  // The relying party starts a CIS2 sign-in asking for a FIDO2 key and a role.
  const config = await configFor(strict);
  const flow = await startFlow(config, {
    scope: 'openid profile nationalrbacaccess selectedrole',
    acr_values: 'AAL3_FIDO2',
  });
  await page.goto(flow.url);
  await page.waitForURL((u) => u.pathname === '/signin');
  const signinUrl = new URL(page.url());
  assert.equal(signinUrl.searchParams.get('aal'), '3');
  assert.match(signinUrl.searchParams.get('return') ?? '', /^\/oidc\/interaction\//);
  await assertAccessible(page, 'sign-in page (from a relying party)');
  await page.click('#webauthn-signin');

  // Role selection: three role profiles, as radios.
  await page.waitForURL((u) => /^\/oidc\/interaction\/[\w-]+$/.test(u.pathname));
  await page.locator('input[name=personRoleId]').first().waitFor();
  const offered: string[] = [];
  for (const radio of await page.locator('input[name=personRoleId]').all()) {
    offered.push((await radio.getAttribute('value')) ?? '');
  }
  assert.deepEqual([...offered].sort(), [...roleIds].sort());
  assert.equal(await page.locator('input#q').count(), 0, 'no search box for 3 roles');
  await assertAccessible(page, 'role selection page');
  await screenshot(page, 'role-selection');
  await page.click(`label[for="role-${roleIds[1]}"]`);
  await page.click('#choose-role');

  // Back at the relying party with a code.
  await page.waitForURL((u) => u.toString().startsWith(callbackUrl));
  assert.match((await page.textContent('h1')) ?? '', /Signed in to the EPR/);
  const landed = callbacks.at(-1)!;
  assert.equal(new URL(landed).searchParams.get('state'), flow.state);
  const tokens = await client.authorizationCodeGrant(config, new URL(landed), {
    pkceCodeVerifier: flow.verifier,
    expectedNonce: flow.nonce,
    expectedState: flow.state,
  });
  const claims = tokens.claims()!;
  assert.equal(claims.sub, userId);
  assert.equal(claims.acr, 'AAL3_FIDO2');
  assert.deepEqual(claims.amr, ['FIDO2']);
  assert.equal(claims.authentication_assurance_level, 3);
  assert.equal(claims.selected_roleid, roleIds[1]);
  const info = await client.fetchUserInfo(config, tokens.access_token, userId);
  assert.equal((info.nhsid_nrbac_roles as unknown[]).length, 3);
  await key.remove();
  await context.close();
});

test('a synced passkey meets AAL2_OR_AAL3_ANY: acr AAL2_OR_AAL3_ANY, amr PASSKEY', async () => {
  const { context, page } = await newPage();
  await page.goto(server.url);
  await addVirtualAuthenticator(context, page, { transport: 'internal', backupEligible: true });
  await enrol(page, 'platform');
  assert.equal(await page.textContent('#session-aal'), 'AAL2');
  await signOut(page);

  const config = await configFor(lenient);
  const flow = await startFlow(config, { scope: 'openid', acr_values: 'AAL2_OR_AAL3_ANY' });
  const before = callbacks.length;
  await page.goto(flow.url);
  await page.waitForURL((u) => u.pathname === '/signin');
  assert.equal(new URL(page.url()).searchParams.get('aal'), null, 'no step-up to AAL3');
  await page.click('#webauthn-signin');
  await page.waitForURL((u) => u.toString().startsWith(callbackUrl));
  assert.equal(callbacks.length, before + 1);
  const tokens = await client.authorizationCodeGrant(config, new URL(callbacks.at(-1)!), {
    pkceCodeVerifier: flow.verifier,
    expectedNonce: flow.nonce,
    expectedState: flow.state,
  });
  assert.equal(tokens.claims()!.acr, 'AAL2_OR_AAL3_ANY');
  assert.deepEqual(tokens.claims()!.amr, ['PASSKEY']);
  assert.equal(tokens.claims()!.authentication_assurance_level, 2);
  await context.close();
});

test('AAL3_ANY with only a passkey: the sign-in page asks for a stronger sign-in and no code is issued', async () => {
  const { context, page } = await newPage();
  await page.goto(server.url);
  await addVirtualAuthenticator(context, page, { transport: 'internal', backupEligible: true });
  await enrol(page, 'platform');
  await signOut(page);

  const config = await configFor(lenient);
  const flow = await startFlow(config, { scope: 'openid', acr_values: 'AAL3_ANY' });
  const before = callbacks.length;
  await page.goto(flow.url);
  await page.waitForURL((u) => u.pathname === '/signin');
  const returnTo = new URL(page.url()).searchParams.get('return');
  assert.equal(new URL(page.url()).searchParams.get('aal'), '3');
  assert.match((await page.textContent('main')) ?? '', /needs a smartcard or a security key/);
  assert.equal(await page.locator('form[action="/signin/totp"]').count(), 0, 'no authenticator app at AAL3');
  await assertAccessible(page, 'step-up sign-in page (from a relying party)');

  // Signing in with the passkey reaches only AAL2: the person is asked again, and the relying party gets nothing.
  const backToInteraction = page.waitForResponse((r) => new URL(r.url()).pathname.startsWith('/oidc/interaction/'));
  await page.click('#webauthn-signin');
  await backToInteraction;
  await page.waitForURL((u) => u.pathname === '/signin');
  await page.waitForLoadState('load');
  assert.equal(new URL(page.url()).searchParams.get('return'), returnTo);
  // …and the page says which level the passkey reached, why, and what to do (issue #14).
  const explained = (await page.textContent('#assurance-explained')) ?? '';
  assert.match(explained, /This needs AAL3; you are signed in at AAL2/);
  assert.match(explained, /passkey that syncs between devices/);
  assert.match(explained, /What to do:/);
  assert.equal(callbacks.length, before, 'no callback at the relying party');
  const { rows } = await server.t.db.query<{ aal: number; amr: string[] }>(
    'SELECT aal, amr FROM web_sessions WHERE user_id = $1 AND ended_at IS NULL ORDER BY created_at DESC LIMIT 1',
    [userId],
  );
  assert.deepEqual({ aal: rows[0]?.aal, amr: rows[0]?.amr }, { aal: 2, amr: ['PASSKEY'] });
  await context.close();
});
