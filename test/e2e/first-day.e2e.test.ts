import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { addVirtualAuthenticator, assertAccessible, expectUrl, launchBrowser } from '../support/browser.ts';
import { tinyPng } from '../support/images.ts';
import { client } from '../support/oidc.ts';
import { freePort } from '../support/server.ts';

/*
 * Issue #14 acceptance 1 and 8, on a fresh machine as README tells it: `npm start` on the embedded default (a fresh data
 * directory and a free port, so that runs never collide — no other setting), then README's "Five minutes to the RA
 * console" step by step in Chromium, its wording read from README itself; then a new RA team's first day as one
 * journey: an organisation and a position, a person registered with documents, given the position, sent a set-up
 * link; they enrol, sign in to a relying party and pick a role; the RA Manager finds it in the audit view and exports a
 * report.
 */
const readme = readFileSync('README.md', 'utf8');
const quickStart = readme.slice(readme.indexOf('## Quick start'), readme.indexOf('To run every test:'));
const fiveMinutes = quickStart.slice(quickStart.indexOf('### Five minutes to the RA console'));

let server: ChildProcess;
let stdout = '';
let url: string;
let dataDir: string;
let browser: Browser;
let ra: { context: BrowserContext; page: Page };
let rpServer: Server;
let callbackUrl: string;
const callbacks: string[] = [];

before(async () => {
  // README: "npm install && npm start" — this checkout is installed; start it as README says.
  assert.match(quickStart, /```sh\nnpm install && npm start\n```/);
  const port = await freePort();
  url = `http://localhost:${port}`;
  dataDir = mkdtempSync(join(tmpdir(), 'opencis-first-day-'));
  server = spawn('npm', ['start'], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', PORT: String(port), DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  server.stdout!.on('data', (d) => {
    stdout += d;
  });
  server.stderr!.on('data', (d) => {
    stdout += d;
  });
  const started = Date.now();
  while (!/enrol\/invite\?t=[A-Za-z0-9_-]{43}/.test(stdout)) {
    if (server.exitCode !== null) throw new Error(`npm start exited ${server.exitCode}:\n${stdout}`);
    if (Date.now() - started > 120_000) throw new Error(`npm start printed no link in 120 s:\n${stdout}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  browser = await launchBrowser();
  rpServer = createServer((req, res) => {
    const at = new URL(req.url ?? '/', callbackUrl);
    if (at.pathname === '/callback') callbacks.push(at.toString());
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(
      '<!DOCTYPE html><html lang="en"><title>First Day EPR</title><main><h1>Signed in to the EPR</h1></main></html>',
    );
  });
  await new Promise<void>((resolve) => rpServer.listen(0, '127.0.0.1', resolve));
  callbackUrl = `http://127.0.0.1:${(rpServer.address() as AddressInfo).port}/callback`;
});

after(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (rpServer ? rpServer.close(() => resolve()) : resolve()));
  if (server?.pid && server.exitCode === null) {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    process.kill(-server.pid, 'SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
    if (server.exitCode === null) process.kill(-server.pid, 'SIGKILL');
  }
});

/** The bold words README tells the reader to choose, in order. */
function chosen(text: string): string[] {
  return [...text.matchAll(/choose\s+\*\*([^*]+)\*\*/g)].map((m) => m[1]!.replace(/\s+/g, ' '));
}

/** README step 1: Chromium's DevTools WebAuthn panel, as README words it (the CDP call is what the panel does). */
async function virtualKeyAsReadmeSays(context: BrowserContext, page: Page) {
  assert.match(fiveMinutes, /More tools → WebAuthn/);
  assert.match(
    fiveMinutes,
    /protocol `ctap2`, transport `usb`, with \*\*Supports resident\s+keys\*\* and \*\*Supports user verification\*\*/,
  );
  return addVirtualAuthenticator(context, page, { transport: 'usb', backupEligible: false });
}

test("README's five minutes to the console: npm start, the printed link, a virtual key, /ra as the demo RA Manager at AAL3", async () => {
  // The banner: demo mode, the demo people README lists, the one-time link for Alex Morgan.
  assert.match(stdout, /DEMO MODE/);
  for (const name of ['Alex Morgan', 'Priya Shah', "Siobhán O'Brien", 'Tomasz Nowak', 'Zoë Nguyễn']) {
    assert.match(stdout, new RegExp(`\\d{12}  ${name}`), name);
    assert.ok(quickStart.includes(name), `README names ${name}`);
  }
  assert.match(stdout, /Sign in to the RA console as Alex Morgan/);
  assert.ok(fiveMinutes.includes('"Sign in to the RA console as Alex Morgan"'), 'README points at the printed block');
  const link = /(http:\/\/localhost:\d+\/enrol\/invite\?t=[A-Za-z0-9_-]{43})/.exec(stdout)![1]!;
  assert.ok(link.startsWith(url));
  const [setUp, signIn] = chosen(fiveMinutes);
  assert.deepEqual([setUp, signIn], ['Set up a security key', 'Sign in with a security key or passkey']);

  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(url);
  await virtualKeyAsReadmeSays(context, page);
  // Step 2: the link, then "Set up a security key".
  await page.goto(link);
  await assertAccessible(page, 'invitation page');
  await page.getByRole('button', { name: setUp, exact: true }).click();
  await expectUrl(page, `${url}/account`);
  assert.equal(await page.textContent('#session-aal'), 'AAL3', 'the demo trusts the virtual key at AAL3');
  // Step 3: /ra — signed in already; and signing in again as README says.
  await page.goto(`${url}/ra`);
  await expectUrl(page, `${url}/ra`);
  await page.click('.opencis-signout button');
  await page.goto(`${url}/ra`);
  await expectUrl(page, `${url}/signin?return=%2Fra&aal=3`);
  await page.getByRole('button', { name: signIn, exact: true }).click();
  await expectUrl(page, `${url}/ra`);
  assert.equal(await page.textContent('#signed-in-name'), 'Alex Morgan');
  assert.match(
    (await page.textContent('#signed-in-as')) ?? '',
    /RA Manager, Demo Teaching Hospitals NHS Trust \(RR8\)/,
  );
  assert.equal(await page.textContent('#ra-roles'), 'RA Manager');
  ra = { context, page };
});

test("a new RA team's first day: organisation, position, a person registered and given it, sent a link; they enrol and sign in to a relying party; audit and a report", async () => {
  assert.ok(ra, 'signed in by the test before');
  const { page } = ra;
  const banner = async () => (await page.textContent('#success-banner .nhsuk-notification-banner__heading'))?.trim();

  // An organisation within the trust, and a position there.
  await page.goto(`${url}/ra/organisations/RR8`);
  await page.click('#add-organisation summary');
  await page.fill('#childOdsCode', 'RR899');
  await page.fill('#childName', 'Demo Day Unit');
  await page.selectOption('#childType', 'site');
  await page.click('#add-organisation-submit');
  await expectUrl(page, `${url}/ra/organisations/RR899?done=organisation_created`);
  assert.equal(await banner(), 'Organisation created.');
  await page.fill('#positionName', 'Healthcare assistant, day unit');
  await page.check('input[name=jobRoles][value=R8003]');
  await page.check('#assignable');
  await page.click('button:has-text("Create position")');
  await page.waitForURL(/\/ra\/organisations\/RR899\?done=position_created/);
  assert.equal(await banner(), 'Position created.');
  assert.match((await page.textContent('#positions')) ?? '', /Healthcare assistant, day unit/);

  // Register a person with their documents and the photo taken at the check.
  const recent = new Date(Date.now() - 10 * 86_400_000);
  await page.goto(`${url}/ra/people/new`);
  await page.fill('#givenName', 'Ola');
  await page.fill('#familyName', 'Firstday');
  await page.fill('#dob-day', '9');
  await page.fill('#dob-month', '4');
  await page.fill('#dob-year', '1994');
  await page.fill('#niNumber', 'QQ 99 88 77 A');
  await page.fill('#email', 'ola.firstday@demo.nhs.example');
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
  await page.fill('#place', 'RA office, Demo Day Unit');
  await page.click('button[type=submit]:has-text("Continue")');
  await page.waitForSelector('form[data-photo-form]');
  await page.setInputFiles('#photo', { name: 'portrait.png', mimeType: 'image/png', buffer: tinyPng() });
  await page.waitForSelector('#photo-preview:not([hidden])');
  await page.click('#register-with-photo');
  await page.waitForURL(/\/ra\/people\/\d{12}\?done=registered$/);
  assert.equal(await banner(), 'Record created. Their identity check is recorded with it.');
  const personUrl = page.url().split('?')[0]!;
  const userId = personUrl.split('/').at(-1)!;
  assert.match((await page.textContent('#person-level')) ?? '', /Level 3/);

  // Give them the new position, and a ward clerk's at the trust (two roles: they pick one at sign-in).
  for (const [org, position] of [
    ['RR899', 'Healthcare assistant, day unit'],
    ['RR8', 'Ward clerk'],
  ] as const) {
    await page.goto(personUrl);
    await page.click('a:has-text("Give or request a position")');
    await page.selectOption('#org', org);
    await page.click('button:has-text("Show positions")');
    await page.click(`label:has-text("${position}")`);
    await page.fill('#reason', 'Starts today');
    assert.equal((await page.textContent('#access-submit'))?.trim(), 'Give the position');
    await page.click('#access-submit');
    await page.waitForURL(`${personUrl}?done=position_given`);
    assert.equal(await banner(), 'Position given. The role profile is in their record.');
  }

  // Send them a link to set up a security key: emailed (the demo's file transport is their inbox).
  await page.click('a:has-text("Send a link to set up a security key")');
  await page.click('#invite-submit');
  await page.waitForURL(`${personUrl}?done=invitation_sent`);
  assert.equal(await banner(), 'Enrolment link sent.');
  const outbox = readFileSync(join(dataDir, 'outbox', 'notifications.jsonl'), 'utf8')
    .trim()
    .split('\n');
  const mail = JSON.parse(outbox.at(-1)!) as { to: string; text: string };
  assert.equal(mail.to, 'ola.firstday@demo.nhs.example');
  const invite = /(http:\/\/localhost:\d+\/enrol\/invite\?t=[A-Za-z0-9_-]{43})/.exec(mail.text)![1]!;

  // Register the relying party they will sign in to; its secret is shown once.
  await page.goto(`${url}/ra/clients/new`);
  await page.selectOption('#odsCode', 'RR8');
  await page.fill('#name', 'First Day EPR');
  await page.fill('#redirectUris', callbackUrl);
  await page.check('#authMethod-1');
  await page.click('#client-submit');
  await page.waitForSelector('#client-secret');
  const clientId = (await page.textContent('#client-id'))!.trim();
  const clientSecret = (await page.textContent('#client-secret'))!.trim();

  // On their own computer: the link, their key, then the relying party, and a role.
  const theirs = await browser.newContext();
  const them = await theirs.newPage();
  await them.goto(url);
  await virtualKeyAsReadmeSays(theirs, them);
  await them.goto(invite);
  await them.click('[data-invite-kind=security_key]');
  await expectUrl(them, `${url}/account`);
  assert.equal(await them.textContent('#session-aal'), 'AAL3');
  await them.click('.opencis-signout button');
  const config = await client.discovery(new URL(`${url}/oidc`), clientId, {}, client.ClientSecretBasic(clientSecret), {
    execute: [client.allowInsecureRequests],
  });
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  await them.goto(
    client
      .buildAuthorizationUrl(config, {
        redirect_uri: callbackUrl,
        scope: 'openid profile nationalrbacaccess selectedrole',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        nonce,
        state,
      })
      .toString(),
  );
  await them.waitForURL((u) => u.pathname === '/signin');
  assert.equal((await them.textContent('h1'))?.trim(), 'Sign in to First Day EPR');
  await them.click('#webauthn-signin');
  await them.waitForURL((u) => /^\/oidc\/interaction\/[\w-]+$/.test(u.pathname));
  await them.locator('input[name=personRoleId]').first().waitFor();
  assert.match((await them.textContent('main')) ?? '', /Signing in to First Day EPR/);
  const roleText = (await them.textContent('#role-list')) ?? '';
  assert.match(roleText, /Ward clerk/);
  assert.match(roleText, /Clerical Access Role/);
  assert.doesNotMatch(roleText, /":"/, 'job roles by their own names, not quoted triples');
  await assertAccessible(them, 'role selection');
  const clerk = them.locator('label:has-text("Ward clerk")');
  const roleId = (await clerk.getAttribute('for'))!.replace('role-', '');
  await clerk.click();
  await them.click('#choose-role');
  await them.waitForURL((u) => u.toString().startsWith(callbackUrl));
  const tokens = await client.authorizationCodeGrant(config, new URL(callbacks.at(-1)!), {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
  });
  const claims = tokens.claims()!;
  assert.equal(claims.sub, userId);
  assert.equal(claims.selected_roleid, roleId);
  assert.equal(String(claims.authentication_assurance_level), '3');
  await theirs.close();

  // The RA Manager finds it in the audit view, by the person, with names beside IDs.
  await page.goto(`${url}/ra/audit`);
  await page.click('#audit-filter summary');
  await page.fill('#person', userId);
  await page.click('#audit-filter-submit');
  await page.waitForURL(new RegExp(`/ra/audit\\?person=${userId}`));
  const events = (await page.textContent('#audit-events')) ?? '';
  for (const what of [
    'Record created',
    'Role profile given',
    'Enrolment link created',
    'Security key or passkey added',
    'Signed in',
  ]) {
    assert.ok(events.includes(what), `${what} in ${events.replace(/\s+/g, ' ').slice(0, 500)}`);
  }
  assert.match(events, /Alex Morgan/);
  assert.match(events, /Ola Firstday/);
  await assertAccessible(page, 'audit view');

  // And exports a report, and this person's history, as CSV.
  await page.goto(`${url}/ra/reports?org=RR8`);
  const [report] = await Promise.all([page.waitForEvent('download'), page.click('#pending-csv')]);
  assert.match(report.suggestedFilename(), /^opencis-pending-requests-\d{4}-\d{2}-\d{2}\.csv$/);
  const reportCsv = readFileSync((await report.path())!, 'utf8');
  assert.match(reportCsv, /^\uFEFFrequest,user ID,name,position,ODS code/);
  await page.goto(`${url}/ra/audit?person=${userId}`);
  const [history] = await Promise.all([page.waitForEvent('download'), page.click('#audit-export')]);
  const historyCsv = readFileSync((await history.path())!, 'utf8');
  assert.match(historyCsv, /authenticator\.webauthn_registered/);
  assert.match(historyCsv, /Ola Firstday/);
});
