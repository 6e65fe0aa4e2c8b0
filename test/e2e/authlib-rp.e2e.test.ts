import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { registerClient } from '../../src/services/clients.ts';
import { createEnrolmentInvitation } from '../../src/services/enrolment.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { addVirtualAuthenticator, expectUrl, launchBrowser } from '../support/browser.ts';
import { freePort, startTestServer, type TestServer } from '../support/server.ts';

/**
 * The second, independent relying party (acceptance 3 of "CIS2 drop-in"): Python Authlib from Debian
 * (python3-authlib), configured exactly as NHS England's manage-breast-screening configures its CIS2 client — no PKCE,
 * private_key_jwt RS512 with its public key at its jwks_uri, prompt=login, acr_values=AAL2_OR_AAL3_ANY, its scopes,
 * its back-channel logout validation — and, for role selection, manage-vaccinations-in-schools' scopes (selectedrole,
 * changedrole). See test/e2e/authlib-rp/cis2_rp.py for the files each setting comes from. OpenCIS's issuer has CIS2's
 * shape; Chromium is the browser; the person signs in with a passkey (CDP virtual authenticator).
 */
const CIS2_PATH = '/openam/oauth2/realms/root/realms/NHSIdentity/realms/Healthcare';
const PYTHON = '/usr/bin/python3';
const RP_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'authlib-rp', 'cis2_rp.py');
const CLIENT_ID = '200000000017.apps.national';

let server: TestServer;
let browser: Browser;
let rp: ChildProcess;
let rpUrl: string;
let userId: string;
let roleIds: string[];
let privateKeyPem: string;

before(async () => {
  if (!existsSync(PYTHON)) throw new Error('python3 not found: apt-get install -y python3-authlib python3-requests');
  server = await startTestServer({ OIDC_PATH: CIS2_PATH });
  browser = await launchBrowser();
  const ctx = server.operator();
  await saveOrganisation(ctx, { odsCode: 'RR8', name: 'Leeds Teaching Hospitals', type: 'trust' });
  const person = await registerPerson(ctx, {
    givenName: 'Bethan',
    familyName: 'Screening',
    dateOfBirth: '1986-06-16',
    email: 'bethan.screening@example.nhs.uk',
    identityAssuranceLevel: 3,
  });
  userId = person.userId;
  roleIds = [];
  for (const name of ['Mammographer', 'Screening office manager']) {
    const pos = await createPosition(ctx, 'RR8', { name, jobRoles: ['R8001'], activities: ['B0825'] });
    roleIds.push(
      (await assignRoleProfile(ctx, { userId, positionId: pos.positionId, startDate: '2020-01-01' })).personRoleId,
    );
  }

  // The relying party's key pair (RS512, as manage-breast-screening's), and its address.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const keyFile = join(mkdtempSync(join(tmpdir(), 'opencis-authlib-')), 'cis2-private-key.pem');
  writeFileSync(keyFile, privateKeyPem, { mode: 0o600 });
  const port = await freePort();
  rpUrl = `http://127.0.0.1:${port}`;

  // Registered as CIS2's connection manager registers it (manage-breast-screening's docs/cis2_auth.md): redirect URI,
  // back-channel logout URI, private_key_jwt with a jwks_uri, jwks_uri_signing_algorithm RS512. Refresh tokens too.
  await registerClient(ctx, {
    name: 'Manage breast screening',
    clientId: CLIENT_ID,
    redirectUris: [`${rpUrl}/auth/cis2/callback`],
    postLogoutRedirectUris: [`${rpUrl}/signed-out`],
    backchannelLogoutUri: `${rpUrl}/auth/cis2/back-channel-logout`,
    jwksUri: `${rpUrl}/auth/cis2/jwks_uri`,
    tokenEndpointAuthSigningAlg: 'RS512',
    scopes: [
      'openid',
      'profile',
      'email',
      'nhsperson',
      'associatedorgs',
      'nationalrbacaccess',
      'selectedrole',
      'changedrole',
      'offline_access',
    ],
  });

  rp = spawn(PYTHON, [RP_SCRIPT], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ISSUER: `${server.url}${CIS2_PATH}`,
      CLIENT_ID,
      PRIVATE_KEY_FILE: keyFile,
      BASE_URL: rpUrl,
      PORT: String(port),
      ACR_VALUES: 'AAL2_OR_AAL3_ANY',
      // Authlib refuses plain http unless told: the test server is on localhost.
      AUTHLIB_INSECURE_TRANSPORT: '1',
      PYTHONDONTWRITEBYTECODE: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  rp.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the Authlib relying party did not start: ${stderr}`)), 20_000);
    rp.stdout?.on('data', (c: Buffer) => {
      if (c.toString().includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    rp.on('exit', (code) => reject(new Error(`the Authlib relying party exited (${code}): ${stderr}`)));
  });
  rp.removeAllListeners('exit');
});

after(async () => {
  if (rp && rp.exitCode === null) {
    const exited = new Promise<void>((resolve) => rp.once('exit', () => resolve()));
    rp.kill('SIGTERM');
    await exited;
  }
  await browser?.close();
  await server?.close();
});

interface RpState {
  session: {
    sub: string;
    token: { refresh_token?: string; id_token: string; scope?: string };
    id_token_claims: Record<string, unknown>;
    userinfo: Record<string, unknown>;
  } | null;
  events: { kind: string; url?: string; sub?: string; sid?: string; ended?: number; reason?: string; error?: string }[];
}

async function rpState(context: BrowserContext): Promise<RpState> {
  const res = await context.request.get(`${rpUrl}/state`);
  return (await res.json()) as RpState;
}

function lastAuthorize(state: RpState): URL {
  const e = state.events.filter((x) => x.kind === 'authorize').at(-1);
  assert.ok(e?.url);
  return new URL(e.url);
}

/** The person signs in on OpenCIS's sign-in page (prompt=login always asks) with their passkey. */
async function signInWithPasskey(page: Page): Promise<void> {
  await page.waitForURL((u) => u.pathname === '/signin');
  await page.click('#webauthn-signin');
}

async function chooseRole(page: Page, personRoleId: string): Promise<void> {
  await page.waitForURL((u) => u.pathname.startsWith(`${CIS2_PATH}/interaction/`));
  await page.click(`label[for="role-${personRoleId}"]`);
  await page.click('#choose-role');
}

let context: BrowserContext;
let page: Page;

test('Authlib as manage-breast-screening: sign-in with no PKCE, RS512 private_key_jwt, prompt=login, AAL2_OR_AAL3_ANY; its checks pass', async () => {
  context = await browser.newContext();
  page = await context.newPage();
  await page.goto(server.url);
  await addVirtualAuthenticator(context, page, { transport: 'internal', backupEligible: true });
  const token = await createEnrolmentInvitation(server.operator(), { userId, maxAal: 3 });
  await page.goto(`${server.url}/enrol/invite?t=${token}`);
  await page.click('[data-invite-kind=platform]');
  await expectUrl(page, `${server.url}/account`);
  await page.click('.opencis-signout button');
  await expectUrl(page, `${server.url}/signin`);

  await page.goto(`${rpUrl}/auth/cis2/log-in`);
  await signInWithPasskey(page);
  await expectUrl(page, `${rpUrl}/auth/cis2/callback?**`);
  assert.equal(await page.textContent('h1'), 'Signed in');

  const state = await rpState(context);
  const authorize = lastAuthorize(state);
  assert.equal(authorize.pathname, `${CIS2_PATH}/authorize`);
  assert.equal(authorize.searchParams.get('code_challenge'), null, 'no PKCE');
  assert.equal(authorize.searchParams.get('prompt'), 'login');
  assert.equal(authorize.searchParams.get('acr_values'), 'AAL2_OR_AAL3_ANY');
  assert.equal(authorize.searchParams.get('scope'), 'openid profile email nhsperson associatedorgs');
  assert.ok(authorize.searchParams.get('nonce'));
  assert.deepEqual(
    state.events.filter((e) => e.kind === 'callback_error' || e.kind === 'exception'),
    [],
  );
  const s = state.session!;
  assert.equal(s.sub, userId);
  // Checked by Authlib (signature from the jwks_uri, iss, aud, azp, exp, iat, nonce, at_hash) and by the RP's own rules.
  assert.equal(s.id_token_claims.acr, 'AAL2_OR_AAL3_ANY');
  assert.deepEqual(s.id_token_claims.amr, ['PASSKEY']);
  assert.equal(s.id_token_claims.authentication_assurance_level, 2);
  assert.equal(s.id_token_claims.id_assurance_level, 3);
  assert.equal(s.id_token_claims.azp, CLIENT_ID);
  assert.equal(typeof s.id_token_claims.at_hash, 'string');
  assert.equal(typeof s.id_token_claims.s_hash, 'string');
  assert.equal(typeof s.id_token_claims.sid, 'string');
  assert.equal(s.id_token_claims.email, 'bethan.screening@example.nhs.uk');
  // What the RP's authentication backend reads from userinfo.
  assert.equal(s.userinfo.email, 'bethan.screening@example.nhs.uk');
  assert.equal(s.userinfo.given_name, 'Bethan');
  assert.equal(s.userinfo.family_name, 'Screening');
  assert.deepEqual(s.userinfo.nhsid_user_orgs, [{ org_code: 'RR8', org_name: 'Leeds Teaching Hospitals' }]);
  assert.ok(s.token.refresh_token, 'registered for refresh tokens');
  // The client is pinned to RS512 assertions (token_endpoint_auth_signing_alg): its sign-in proves they were RS512.
  const { rows } = await server.t.db.query<{ alg: string }>(
    "SELECT metadata->>'token_endpoint_auth_signing_alg' AS alg FROM oidc_clients WHERE client_id = $1",
    [CLIENT_ID],
  );
  assert.equal(rows[0]!.alg, 'RS512');
});

test('Authlib refreshes with the same RS512 client authentication: a new refresh token each time', async () => {
  const first = (await rpState(context)).session!.token.refresh_token!;
  const r1 = (await (await context.request.get(`${rpUrl}/refresh`)).json()) as Record<string, string>;
  assert.ok(r1.refresh_token, JSON.stringify(r1));
  assert.equal(r1.previous, first);
  assert.notEqual(r1.refresh_token, first);
  const r2 = (await (await context.request.get(`${rpUrl}/refresh`)).json()) as Record<string, string>;
  assert.notEqual(r2.refresh_token, r1.refresh_token);
  assert.ok(r2.access_token);
});

test('role selection and change of role as manage-vaccinations-in-schools asks: selectedrole, then changedrole with prompt=login', async () => {
  await page.goto(`${rpUrl}/auth/cis2/select-role`);
  await signInWithPasskey(page);
  await chooseRole(page, roleIds[0]!);
  await expectUrl(page, `${rpUrl}/auth/cis2/callback?**`);
  let s = (await rpState(context)).session!;
  assert.equal(s.id_token_claims.selected_roleid, roleIds[0]);
  assert.equal(s.userinfo.selected_roleid, roleIds[0]);
  const roles = s.userinfo.nhsid_nrbac_roles as { person_roleid: string; org_code: string; role_code: string }[];
  assert.deepEqual(roles.map((r) => r.person_roleid).sort(), [...roleIds].sort());
  assert.ok(roles.every((r) => r.org_code === 'RR8' && /^S\d+:G\d+:R\d+$/.test(r.role_code)));

  await page.goto(`${rpUrl}/auth/cis2/change-role`);
  assert.equal(
    lastAuthorize(await rpState(context))
      .searchParams.get('scope')
      ?.split(' ')
      .includes('changedrole'),
    true,
  );
  await signInWithPasskey(page);
  await chooseRole(page, roleIds[1]!);
  await expectUrl(page, `${rpUrl}/auth/cis2/callback?**`);
  s = (await rpState(context)).session!;
  assert.equal(s.id_token_claims.selected_roleid, roleIds[1]);
});

test('logout: RP-initiated logout goes straight back to the RP (no "sign out?" page), and its back-channel logout endpoint validates the logout token as manage-breast-screening does', async () => {
  const sub = (await rpState(context)).session!.sub;
  // A logout token the RP must refuse (signed by someone else): its validation is real.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const forged = await new SignJWT({ events: { 'http://schemas.openid.net/event/backchannel-logout': {} }, sid: 'x' })
    .setProtectedHeader({ alg: 'RS256', kid: 'forged' })
    .setIssuer(`${server.url}${CIS2_PATH}`)
    .setAudience(CLIENT_ID)
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime('2m')
    .setJti('forged-1')
    .sign(privateKey);
  const refused = await context.request.post(`${rpUrl}/auth/cis2/back-channel-logout`, {
    form: { logout_token: forged },
  });
  assert.equal(refused.status(), 400);
  assert.ok((await rpState(context)).session, 'still signed in at the RP');

  await page.goto(`${rpUrl}/log-out`);
  await expectUrl(page, `${rpUrl}/signed-out?state=rp-logout`);
  assert.equal(await page.textContent('h1'), 'Signed out');
  // OpenCIS sent the back-channel logout token; the RP accepted it under its rules and ended the person's sessions.
  const deadline = Date.now() + 10_000;
  let logout: RpState['events'][number] | undefined;
  while (!logout && Date.now() < deadline) {
    logout = (await rpState(context)).events.find((e) => e.kind === 'back_channel_logout');
    if (!logout) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(logout, 'a back-channel logout reached the RP');
  assert.equal(logout.sub, userId);
  assert.equal(typeof logout.sid, 'string');
  assert.ok((logout.ended ?? 0) >= 1, 'the RP ended the session of that person');
  const after = await rpState(context);
  assert.equal(after.events.filter((e) => e.kind === 'logout_token_refused').length, 1, 'only the forged one refused');
  assert.equal(after.session, null);
  // Signed out of OpenCIS too: the next sign-in at the RP needs the person again.
  await page.goto(`${rpUrl}/auth/cis2/log-in`);
  await page.waitForURL((u) => u.pathname === '/signin');
  await context.close();
});
