import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { DOMParser } from '@xmldom/xmldom';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { type RunningCardAgent, startCardAgent } from '../../src/card-agent/main.ts';
import { registerCis1Routes } from '../../src/cis1/routes.ts';
import { loadConfig } from '../../src/config.ts';
import { cardConfigFrom, relyingPartyFrom } from '../../src/http/deps.ts';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { cancelCard, passcodeGrant, startCardIssue } from '../../src/services/cards.ts';
import { ensureCertificateAuthority } from '../../src/services/certificates.ts';
import { registerClient } from '../../src/services/clients.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { startSession } from '../../src/services/sessions.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { TestClock, testContext, testSealer } from '../support/context.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { freePort } from '../support/server.ts';

/**
 * CIS1 end to end: the real card agent on a SoftHSM2 token (the card), the real server on a port. Sign in with the
 * passcode on the agent's page, pick a role, an application gets the ticket from the agent and validates it; the
 * assertion's signature is checked by xmlsec1 with the certificate from the IdP metadata; the token is deleted (the
 * card is pulled) and the ticket stops validating within 2 seconds; a revoked card's ticket is refused at once.
 */
const dir = mkdtempSync(join(tmpdir(), 'opencis-e2e-cis1-'));
mkdirSync(join(dir, 'tokens'));
writeFileSync(
  join(dir, 'softhsm2.conf'),
  `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`,
);
process.env.SOFTHSM2_CONF = join(dir, 'softhsm2.conf');
const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const TRANSPORT_SO_PIN = '24681357';
const PASSCODE = '581094';
const APP_ORIGIN = 'https://pas.example.nhs.uk';

let t: TestDatabase;
let app: FastifyInstance;
let serverUrl: string;
let agent: RunningCardAgent;
const agentLog: string[] = [];
const clock = TestClock.running();
const ctx = () => testContext(t.db, { clock });
let userId: string;
let cardId: string;
let profiles: string[];
let client: { clientId: string; secret: string };

function initToken(label: string): void {
  execFileSync(
    'softhsm2-util',
    ['--init-token', '--free', '--label', label, '--so-pin', TRANSPORT_SO_PIN, '--pin', '00000000'],
    { env: process.env, stdio: 'ignore' },
  );
}

interface AgentAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: Record<string, unknown> & { error?: { code: string; message: string } };
  text: string;
}

/** Talks to the agent like a browser page or a local program would (node:http: every header is ours to choose). */
function agentCall(
  method: 'GET' | 'POST',
  path: string,
  options: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<AgentAnswer> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = {
    host: `127.0.0.1:${agent.port}`,
    ...(payload ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}),
    ...options.headers,
  };
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: agent.port, method, path, headers }, (res) => {
      let text = '';
      res.on('data', (chunk) => {
        text += chunk;
      });
      res.on('end', () => {
        let json = {};
        try {
          json = JSON.parse(text);
        } catch {
          json = {};
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json, text });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** The agent's own page calling its API: same origin, with the page's header. */
const page = (method: 'GET' | 'POST', path: string, body?: unknown) =>
  agentCall(method, path, { body, headers: { origin: agent.url, 'x-opencis-agent': 'cis1' } });

async function opencisPagePost(path: string, body: unknown) {
  return agentCall('POST', path, { body, headers: { origin: serverUrl } });
}

async function validate(
  ticket: string,
  workstationId?: string,
): Promise<{ status: number; text: string; code?: string }> {
  const res = await fetch(`${serverUrl}/cis1/validate`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Basic ${Buffer.from(`${client.clientId}:${client.secret}`).toString('base64')}`,
    },
    body: JSON.stringify({ ticket, ...(workstationId ? { workstation_id: workstationId } : {}) }),
  });
  const text = await res.text();
  let code: string | undefined;
  if (!res.ok) code = (JSON.parse(text) as { error: { code: string } }).error.code;
  return { status: res.status, text, code };
}

async function issueCardOnToken(): Promise<string> {
  const cardConfig = { origin: serverUrl, publicUrl: serverUrl, transportSoPin: TRANSPORT_SO_PIN };
  const issue = await startCardIssue(ctx(), cardConfig, { userId, kind: 'physical' });
  const issued = await opencisPagePost('/v1/cards/issue', { grant: issue.grant });
  assert.equal(issued.status, 200, issued.text);
  const passcode = await opencisPagePost('/v1/cards/passcode', {
    grant: await passcodeGrant(ctx(), issue.card.cardId),
    passcode: PASSCODE,
  });
  assert.equal(passcode.status, 200, passcode.text);
  return issue.card.cardId;
}

function attribute(xml: string, name: string): string[] {
  const doc = new DOMParser().parseFromString(xml, 'application/xml');
  const list = doc.getElementsByTagNameNS('urn:oasis:names:tc:SAML:2.0:assertion', 'Attribute');
  for (let i = 0; i < list.length; i++) {
    if (list[i]!.getAttribute('Name') !== name) continue;
    const values = list[i]!.getElementsByTagNameNS('urn:oasis:names:tc:SAML:2.0:assertion', 'AttributeValue');
    return Array.from({ length: values.length }, (_, j) => values[j]!.textContent ?? '');
  }
  return [];
}

async function audits(action: string): Promise<{ reason: string | null; after: Record<string, unknown> }[]> {
  const { rows } = await t.db.query<{ reason: string | null; after: Record<string, unknown> | string }>(
    'SELECT reason, after FROM audit_events WHERE action = $1 ORDER BY seq',
    [action],
  );
  return rows.map((r) => ({ reason: r.reason, after: typeof r.after === 'string' ? JSON.parse(r.after) : r.after }));
}

before(async () => {
  initToken('OpenCIS card');
  const port = await freePort();
  serverUrl = `http://localhost:${port}`;
  t = await createTestDatabase();
  await ensureCertificateAuthority(ctx());
  const config = loadConfig({
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_URL: serverUrl,
    DATA_DIR: mkdtempSync(join(tmpdir(), 'opencis-e2e-cis1-data-')),
    LOG_LEVEL: 'silent',
    DEMO_DATA: 'false',
    ALLOW_EXAMPLE_NI_PREFIX: 'true',
    CARD_TRANSPORT_SO_PIN: TRANSPORT_SO_PIN,
  });
  const transport = { send: async () => {} };
  app = await buildApp({ config, db: t.db, sealer: testSealer, clock, logger: false, transport });
  if (!app.hasRoute({ method: 'POST', url: '/cis1/validate' })) {
    registerCis1Routes(app, {
      config,
      db: t.db,
      repos: t.repos,
      clock,
      sealer: testSealer,
      rp: relyingPartyFrom(config),
      card: cardConfigFrom(config),
      outbox: app.outbox,
    });
  }
  await app.listen({ port, host: '127.0.0.1' });
  agent = await startCardAgent({
    modulePath: MODULE,
    port: 0,
    allowedOrigins: [serverUrl],
    serverUrl,
    cis1AllowedOrigins: [APP_ORIGIN],
    cis1PollMs: 250,
    log: (line) => agentLog.push(line),
  });

  await saveOrganisation(ctx(), { odsCode: 'RJ1', name: 'Guy’s and St Thomas’', type: 'trust' });
  await saveOrganisation(ctx(), { odsCode: 'A81001', name: 'The Surgery', type: 'gp_practice' });
  const nurse = await createPosition(ctx(), 'RJ1', { name: 'Ward nurse', jobRoles: ['R8001'], activities: ['B0825'] });
  const clerk = await createPosition(ctx(), 'A81001', { name: 'Receptionist', jobRoles: ['R8009'], activities: [] });
  const person = await registerPerson(ctx(), {
    givenName: 'Siân',
    familyName: 'Evans',
    dateOfBirth: '1986-07-08',
    niNumber: 'JH654321B',
    identityAssuranceLevel: 3,
  });
  userId = person.userId;
  profiles = [];
  for (const positionId of [nurse.positionId, clerk.positionId]) {
    profiles.push((await assignRoleProfile(ctx(), { userId, positionId, startDate: '2020-01-01' })).personRoleId);
  }
  const registered = await registerClient(ctx(), {
    name: 'Legacy PAS',
    redirectUris: ['https://pas.example.nhs.uk/cb'],
    tokenEndpointAuthMethod: 'client_secret_basic',
  });
  client = { clientId: registered.client.clientId, secret: registered.clientSecret! };
  cardId = await issueCardOnToken();
});

after(async () => {
  await agent?.close();
  await app?.close();
  await t?.close();
});

test('sign in with the card on the agent page, pick a role, getTicket, validate; xmlsec1 verifies the assertion with the metadata certificate; switch role', async () => {
  const html = await agentCall('GET', '/cis1');
  assert.equal(html.status, 200);
  assert.match(String(html.headers['content-type']), /^text\/html/);
  assert.match(String(html.headers['content-security-policy']), /script-src 'self'/);
  assert.equal(html.headers['x-frame-options'], 'DENY');
  assert.equal((await agentCall('GET', '/cis1/page.js')).status, 200);

  const before = await agentCall('GET', '/v1/cis1/ticket');
  assert.equal(before.status, 409);
  assert.equal(before.json.error?.code, 'cis1.no_session');

  const signedIn = await page('POST', '/v1/cis1/signin', { passcode: PASSCODE });
  assert.equal(signedIn.status, 200, signedIn.text);
  assert.equal(signedIn.json.userId, userId);
  assert.equal((signedIn.json.roles as unknown[]).length, 2);
  assert.ok(!signedIn.text.includes('sessionSecret') && !('ticket' in signedIn.json), 'the page never sees secrets');
  const noRole = await agentCall('GET', '/v1/cis1/ticket');
  assert.equal(noRole.status, 409);
  assert.equal(noRole.json.error?.code, 'cis1.role_required');

  const chosen = await page('POST', '/v1/cis1/role', { personRoleId: profiles[0] });
  assert.equal(chosen.status, 200, chosen.text);
  // A local program (no Origin) and an allowed web application both get the ticket.
  const local = await agentCall('GET', '/v1/cis1/ticket');
  assert.equal(local.status, 200, local.text);
  const ticket = String(local.json.ticket);
  assert.equal(local.json.workstationId, agent.workstationId);
  const web = await agentCall('GET', '/v1/cis1/ticket', { headers: { origin: APP_ORIGIN } });
  assert.equal(web.status, 200);
  assert.equal(web.headers['access-control-allow-origin'], APP_ORIGIN);
  assert.equal(web.json.ticket, ticket);

  const validated = await validate(ticket, agent.workstationId);
  assert.equal(validated.status, 200, validated.text);
  assert.deepEqual(attribute(validated.text, 'selected_roleid'), [profiles[0]]);
  assert.deepEqual(attribute(validated.text, 'role_code'), ['S8000:G8000:R8001']);

  // An independent verifier: xmlsec1 with the certificate published in the IdP metadata.
  const metadata = await (await fetch(`${serverUrl}/cis1/metadata.xml`)).text();
  const certificate = /<ds:X509Certificate>([^<]+)<\/ds:X509Certificate>/.exec(metadata)![1]!;
  const work = mkdtempSync(join(tmpdir(), 'opencis-xmlsec-'));
  writeFileSync(
    join(work, 'idp.pem'),
    `-----BEGIN CERTIFICATE-----\n${certificate.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`,
  );
  writeFileSync(join(work, 'assertion.xml'), validated.text);
  writeFileSync(join(work, 'tampered.xml'), validated.text.replace(userId, '555000000011'));
  const xmlsec = (file: string) =>
    promisify(execFile)('xmlsec1', [
      '--verify',
      '--pubkey-cert-pem',
      join(work, 'idp.pem'),
      '--id-attr:ID',
      'urn:oasis:names:tc:SAML:2.0:assertion:Assertion',
      join(work, file),
    ]);
  const ok = await xmlsec('assertion.xml');
  assert.match(ok.stderr, /^OK/m);
  // Without the certificate OpenCIS put in KeyInfo: the metadata certificate alone verifies it.
  writeFileSync(join(work, 'no-keyinfo.xml'), validated.text.replace(/<ds:KeyInfo>.*<\/ds:KeyInfo>/s, ''));
  assert.match((await xmlsec('no-keyinfo.xml')).stderr, /^OK/m);
  await assert.rejects(xmlsec('tampered.xml'), /FAIL|failed/i);

  // Switch role without removing the card: same ticket, another role in the assertion.
  const switched = await page('POST', '/v1/cis1/role', { personRoleId: profiles[1] });
  assert.equal(switched.status, 200);
  assert.equal((await agentCall('GET', '/v1/cis1/ticket')).json.ticket, ticket);
  const again = await validate(ticket, agent.workstationId);
  assert.deepEqual(attribute(again.text, 'selected_roleid'), [profiles[1]]);
  assert.deepEqual(attribute(again.text, 'org_code'), ['A81001']);
  assert.equal((await audits('cis1.role_switched')).at(-1)!.after.personRoleId, profiles[1]);
});

test('the agent refuses other origins, browsers without an Origin, forged page calls and the network; refusals reach the audit trail', async () => {
  const refusedBefore = (await audits('cis1.agent_request_refused')).length;
  const attempts: [string, Promise<AgentAnswer>][] = [
    ['another web origin', agentCall('GET', '/v1/cis1/ticket', { headers: { origin: 'https://evil.example' } })],
    [
      'the OpenCIS origin (not on the CIS1 list)',
      agentCall('GET', '/v1/cis1/ticket', { headers: { origin: serverUrl } }),
    ],
    ['"null" origin', agentCall('GET', '/v1/cis1/ticket', { headers: { origin: 'null' } })],
    [
      'an <img> from a web page (no Origin, Sec-Fetch-Site)',
      agentCall('GET', '/v1/cis1/ticket', { headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors' } }),
    ],
    ['page API without its header', agentCall('POST', '/v1/cis1/role', { body: { personRoleId: profiles[0] } })],
    [
      'page API from another origin',
      agentCall('POST', '/v1/cis1/signout', {
        body: {},
        headers: { origin: 'https://evil.example', 'x-opencis-agent': 'cis1' },
      }),
    ],
    ['DNS rebinding', agentCall('GET', '/v1/cis1/ticket', { headers: { host: `evil.example:${agent.port}` } })],
  ];
  for (const [what, attempt] of attempts) {
    const res = await attempt;
    assert.equal(res.status, 403, what);
    assert.match(res.json.error?.code ?? '', /^agent\.(origin|host)_not_allowed$/, what);
    assert.equal(res.headers['access-control-allow-origin'], undefined, what);
    assert.ok(!res.text.includes('"ticket"'), what);
  }
  const preflight = await agentCall('GET', '/v1/cis1/ticket', {
    headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' },
  });
  assert.equal(preflight.status, 403);
  // Nothing listens on the network: the agent is bound to 127.0.0.1.
  const address = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
  if (address) {
    await assert.rejects(fetch(`http://${address}:${agent.port}/v1/cis1/ticket`), 'refused off loopback');
  }
  // The server recorded the refusals against the open session (throttled to one a second, the rest counted).
  await new Promise((resolve) => setTimeout(resolve, 300));
  const refused = await audits('cis1.agent_request_refused');
  assert.ok(refused.length > refusedBefore, 'a refusal was reported to the server');
  assert.equal(refused.at(-1)!.after.workstationId, agent.workstationId);
  // The session is untouched by all this.
  assert.equal((await agentCall('GET', '/v1/cis1/ticket')).status, 200);
});

test('pulling the card (deleting the SoftHSM2 token) ends the session: the ticket is refused within 2 seconds, CIS2 sessions with the card end', async (context) => {
  const ticket = String((await agentCall('GET', '/v1/cis1/ticket')).json.ticket);
  assert.equal((await validate(ticket)).status, 200);
  const web = await unitOfWork(t.db)((tx) =>
    startSession(tx, ctx(), { userId, aal: 3, amr: ['SMARTCARD'], authenticatorId: `card:${cardId}` }, null, {
      ip: null,
      userAgent: null,
    }),
  );
  execFileSync('softhsm2-util', ['--delete-token', '--token', 'OpenCIS card'], { env: process.env, stdio: 'ignore' });
  const pulled = performance.now();
  let refused: { status: number; code?: string } | undefined;
  while (performance.now() - pulled < 2_000) {
    const res = await validate(ticket);
    if (res.status !== 200) {
      refused = res;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const elapsed = performance.now() - pulled;
  assert.ok(refused, `still validating ${Math.round(elapsed)} ms after the card was pulled`);
  context.diagnostic(`ticket refused ${Math.round(elapsed)} ms after the token was deleted`);
  assert.equal(refused.code, 'cis1.session_ended');
  const gone = await agentCall('GET', '/v1/cis1/ticket');
  assert.equal(gone.status, 409);
  assert.equal(gone.json.error?.code, 'cis1.no_card');
  assert.equal((await audits('cis1.session_ended')).at(-1)!.reason, 'card_removed');
  const { rows } = await t.db.query<{ end_reason: string }>(
    'SELECT end_reason FROM web_sessions WHERE session_hash = $1',
    [web.session.sessionHash],
  );
  assert.equal(rows[0]!.end_reason, 'card_removed');
});

test('a revoked card: the ticket is refused at once; three wrong passcodes lock the card and getTicket says so', async () => {
  // A replacement card on a new token.
  await cancelCard(ctx(), cardId, 'lost').catch(() => undefined);
  initToken('OpenCIS card 2');
  cardId = await issueCardOnToken();
  assert.equal((await page('POST', '/v1/cis1/signin', { passcode: PASSCODE })).status, 200);
  await page('POST', '/v1/cis1/role', { personRoleId: profiles[0] });
  const ticket = String((await agentCall('GET', '/v1/cis1/ticket')).json.ticket);
  assert.equal((await validate(ticket)).status, 200);
  await cancelCard(ctx(), cardId, 'stolen');
  const refused = await validate(ticket);
  assert.equal(refused.status, 401);
  assert.equal(refused.code, 'cis1.session_ended');
  assert.equal((await audits('cis1.session_ended')).at(-1)!.reason, 'card_inactive');

  // Three wrong passcodes (a fresh sign-in attempt ends the agent's old session first).
  for (const expected of [401, 401, 423]) {
    const res = await page('POST', '/v1/cis1/signin', { passcode: '000111' });
    assert.equal(res.status, expected, res.text);
  }
  const locked = await agentCall('GET', '/v1/cis1/ticket');
  assert.equal(locked.status, 423);
  assert.equal(locked.json.error?.code, 'cis1.card_locked');
});

test('the agent logs no passcode, ticket or session secret', () => {
  const log = agentLog.join('\n');
  assert.ok(agentLog.some((l) => l.startsWith('GET /v1/cis1/ticket 200')));
  assert.ok(!log.includes(PASSCODE));
  assert.ok(!/[A-Za-z0-9_-]{43}/.test(log), 'no 256-bit secret appears in the log');
});
