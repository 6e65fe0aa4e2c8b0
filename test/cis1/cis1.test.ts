import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DOMParser, type Element } from '@xmldom/xmldom';
import type { FastifyInstance } from 'fastify';
import { SignedXml } from 'xml-crypto';
import { buildApp } from '../../src/app.ts';
import { ASSERTION_LIFETIME_MS } from '../../src/cis1/assertion.ts';
import { registerCis1Routes } from '../../src/cis1/routes.ts';
import { ASSERTION_REUSE_MS, readTicket, readTicketLiveness } from '../../src/cis1/validation.ts';
import { loadConfig } from '../../src/config.ts';
import { cardConfigFrom, relyingPartyFrom, type WebDeps } from '../../src/http/deps.ts';
import { cis2Claims } from '../../src/oidc/claims.ts';
import { assignRoleProfile, createPosition, endRoleProfile } from '../../src/services/access.ts';
import {
  cancelCard,
  certifyCard,
  passcodeGrant,
  redeemCardGrant,
  reportCardEvent,
  startCardIssue,
} from '../../src/services/cards.ts';
import { BUNDLED_CATALOGUE, loadCatalogue, readCatalogueFile } from '../../src/services/catalogue.ts';
import { ensureCertificateAuthority } from '../../src/services/certificates.ts';
import { registerClient } from '../../src/services/clients.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { markLeaver, suspend } from '../../src/services/ra.ts';
import { startSession } from '../../src/services/sessions.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { SoftwareCardKey } from '../support/card.ts';
import { TestClock, testContext, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';

/**
 * CIS1 on the server (DOMAIN §8): card sign-in for a workstation's agent, role selection and switching, ticket
 * validation by applications into a signed SAML role assertion, and everything that ends a ticket. The card is a
 * software key here (test/support/card.ts); test/e2e/cis1.e2e.test.ts runs the real agent on a SoftHSM2 token.
 */
const ORIGIN = 'http://localhost:3000';
const SAML = 'urn:oasis:names:tc:SAML:2.0:assertion';
const WORKSTATION = `ws-${randomBytes(12).toString('base64url')}`;
const OTHER_WORKSTATION = `ws-${randomBytes(12).toString('base64url')}`;

let t: TestDatabase;
let app: FastifyInstance;
const clock = new TestClock(new Date('2026-11-26T09:00:00Z'));
const ctx = () => testContext(t.db, { clock });
const logLines: string[] = [];
const secrets: string[] = [];
let basic: { clientId: string; secret: string };
let post: { clientId: string; secret: string };
let positions: { nurse: string; admin: string };
let n = 0;

before(async () => {
  t = await createTestDatabase();
  await ensureCertificateAuthority(ctx());
  const config = loadConfig({
    PUBLIC_URL: ORIGIN,
    DATA_DIR: mkdtempSync(join(tmpdir(), 'opencis-cis1-')),
    LOG_LEVEL: 'info',
    DEMO_DATA: 'false',
    ALLOW_EXAMPLE_NI_PREFIX: 'true',
    CARD_TRANSPORT_SO_PIN: '87654321',
  });
  const { createLogger } = await import('../../src/logger.ts');
  const logger = createLogger('info', { write: (line: string) => void logLines.push(line) });
  const transport = { send: async () => {} };
  app = await buildApp({ config, db: t.db, sealer: testSealer, clock, logger, transport });
  // Until src/app.ts wires the routes in, this test does.
  if (!app.hasRoute({ method: 'POST', url: '/cis1/validate' })) {
    const deps: WebDeps = {
      config,
      db: t.db,
      repos: t.repos,
      clock,
      sealer: testSealer,
      rp: relyingPartyFrom(config),
      card: cardConfigFrom(config),
      outbox: app.outbox,
    };
    registerCis1Routes(app, deps);
  }
  await app.ready();

  await saveOrganisation(ctx(), { odsCode: 'RJ1', name: 'Guy’s & St Thomas’', type: 'trust' });
  await saveOrganisation(ctx(), { odsCode: 'A81001', name: 'The Surgery', type: 'gp_practice' });
  const nurse = await createPosition(ctx(), 'RJ1', {
    name: 'Ward nurse, ward 7',
    jobRoles: ['R8001'],
    activities: ['B0825', 'B0380'],
  });
  const admin = await createPosition(ctx(), 'A81001', {
    name: 'Reception',
    jobRoles: ['R8009'],
    activities: ['B0820'],
  });
  positions = { nurse: nurse.positionId, admin: admin.positionId };
  const b = await registerClient(ctx(), {
    name: 'Legacy PAS',
    redirectUris: ['https://pas.example/cb'],
    tokenEndpointAuthMethod: 'client_secret_basic',
  });
  basic = { clientId: b.client.clientId, secret: b.clientSecret! };
  const p = await registerClient(ctx(), {
    name: 'Legacy EPR',
    redirectUris: ['https://epr.example/cb'],
    tokenEndpointAuthMethod: 'client_secret_post',
  });
  post = { clientId: p.client.clientId, secret: p.clientSecret! };
  secrets.push(basic.secret, post.secret);
});
after(async () => {
  await app?.close();
  await t?.close();
});

// ---------------------------------------------------------------------------------------------------------------
// People, cards and the agent's calls

async function personWithRoles(roles: ('nurse' | 'admin')[]) {
  n++;
  const person = await registerPerson(ctx(), {
    givenName: `Cis${n}`,
    familyName: 'O’Brien & <Sons>',
    dateOfBirth: '1984-05-06',
    niNumber: `JK${String(400000 + n)}B`,
    identityAssuranceLevel: 3,
  });
  const profiles: string[] = [];
  for (const role of roles) {
    const rp = await assignRoleProfile(ctx(), {
      userId: person.userId,
      positionId: positions[role],
      startDate: '2020-01-01',
    });
    profiles.push(rp.personRoleId);
  }
  const key = new SoftwareCardKey();
  const tokenSerial = `CIS1-${person.userId}`;
  const cardConfig = { origin: ORIGIN, publicUrl: ORIGIN, transportSoPin: '87654321' };
  const { card, grant } = await startCardIssue(ctx(), cardConfig, { userId: person.userId, kind: 'physical' });
  await redeemCardGrant(ctx(), cardConfig, { grant, tokenSerial });
  const { certificate } = await certifyCard(ctx(), cardConfig, {
    grant,
    tokenSerial,
    publicKey: key.spkiBase64(),
    proof: key.sign(ORIGIN, grant),
  });
  await redeemCardGrant(ctx(), cardConfig, { grant: await passcodeGrant(ctx(), card.cardId), tokenSerial });
  return { userId: person.userId, cardId: card.cardId, key, certificate: certificate.toString('base64'), profiles };
}

type Holder = Awaited<ReturnType<typeof personWithRoles>>;

interface Json {
  [key: string]: unknown;
  error?: { code: string };
}

async function call(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Json; text: string }> {
  const res = await app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/json', ...headers },
    payload: JSON.stringify(body),
  });
  let json: Json = {};
  try {
    json = res.body ? (JSON.parse(res.body) as Json) : {};
  } catch {
    json = {};
  }
  return { status: res.statusCode, json, text: res.body };
}

interface AgentSession {
  secret: string;
  ticket: string | null;
  session: { roles: { personRoleId: string }[]; selectedRoleId: string | null; selectedRoleEffective: boolean };
}

async function agentSignIn(holder: Holder, workstationId = WORKSTATION): Promise<AgentSession> {
  const challenge = await call('/cis1/session/challenge', {});
  assert.equal(challenge.status, 200);
  const res = await call('/cis1/session', {
    challengeId: challenge.json.challengeId,
    certificate: holder.certificate,
    signature: holder.key.sign(ORIGIN, String(challenge.json.challenge)),
    algorithm: 'ES256',
    workstationId,
  });
  assert.equal(res.status, 200, res.text);
  const secret = String(res.json.sessionSecret);
  secrets.push(secret);
  const ticket = (res.json.ticket as string | null) ?? null;
  if (ticket) secrets.push(ticket);
  return { secret, ticket, session: res.json.session as AgentSession['session'] };
}

function asAgent(a: { secret: string }, path: string, body: Record<string, unknown>, workstationId = WORKSTATION) {
  return call(path, { workstationId, ...body }, { authorization: `Bearer ${a.secret}` });
}

async function selectRole(a: AgentSession, personRoleId: string): Promise<AgentSession> {
  const res = await asAgent(a, '/cis1/session/role', { personRoleId });
  assert.equal(res.status, 200, res.text);
  if (res.json.ticket) secrets.push(String(res.json.ticket));
  return {
    ...a,
    ticket: a.ticket ?? (res.json.ticket as string),
    session: res.json.session as AgentSession['session'],
  };
}

function validate(
  ticket: string,
  options: { client?: { clientId: string; secret: string }; method?: 'basic' | 'post'; workstationId?: string } = {},
) {
  const client = options.client ?? basic;
  const method = options.method ?? (client === post ? 'post' : 'basic');
  const body: Record<string, unknown> = { ticket };
  if (options.workstationId !== undefined) body.workstation_id = options.workstationId;
  if (method === 'post')
    return call('/cis1/validate', { ...body, client_id: client.clientId, client_secret: client.secret });
  const credentials = Buffer.from(
    `${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.secret)}`,
  ).toString('base64');
  return call('/cis1/validate', body, { authorization: `Basic ${credentials}` });
}

// ---------------------------------------------------------------------------------------------------------------
// A relying party's verifier: xml-crypto with a secure DOM configuration, trusting only the metadata certificate

function parseXml(xml: string) {
  // No DTD at all: external entities (XXE) and entity expansion are refused before parsing.
  if (/<!DOCTYPE|<!ENTITY/i.test(xml)) throw new Error('DTDs are not accepted');
  if (xml.length > 1_000_000) throw new Error('too large');
  return new DOMParser({
    onError: (level, message) => {
      if (level !== 'warning') throw new Error(message);
    },
  }).parseFromString(xml, 'application/xml');
}

async function metadataCertificate(): Promise<string> {
  const res = await app.inject({ method: 'GET', url: '/cis1/metadata.xml' });
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /^application\/samlmetadata\+xml/);
  const doc = parseXml(res.body);
  const root = doc.documentElement!;
  assert.equal(root.getAttribute('entityID'), `${ORIGIN}/cis1`);
  const certs = doc.getElementsByTagNameNS('http://www.w3.org/2000/09/xmldsig#', 'X509Certificate');
  assert.equal(certs.length, 1);
  const b64 = certs[0]!.textContent!.trim();
  return `-----BEGIN CERTIFICATE-----\n${b64.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
}

/**
 * Verifies an assertion and returns the signed content only. Defences against signature wrapping: exactly one
 * Signature, a direct child of the root Assertion, whose single reference is the root's ID; the key is the metadata
 * certificate's (KeyInfo is ignored); and the data read afterwards comes from what was signed, not from the document.
 */
function verifiedAssertion(xml: string, certificatePem: string): Element {
  const doc = parseXml(xml);
  const root = doc.documentElement!;
  if (root.localName !== 'Assertion' || root.namespaceURI !== SAML) throw new Error('not an assertion');
  const signatures = doc.getElementsByTagNameNS('http://www.w3.org/2000/09/xmldsig#', 'Signature');
  if (signatures.length !== 1 || signatures[0]!.parentNode !== root) throw new Error('one enveloped signature');
  const verifier = new SignedXml({ publicCert: certificatePem, getCertFromKeyInfo: () => null });
  verifier.loadSignature(signatures[0]!.toString());
  if (!verifier.checkSignature(xml)) throw new Error('signature does not verify');
  const references = verifier.getReferences();
  if (references.length !== 1 || references[0]!.uri !== `#${root.getAttribute('ID')}`) {
    throw new Error('the signature does not cover the assertion');
  }
  const signed = verifier.getSignedReferences();
  if (signed.length !== 1) throw new Error('one signed reference');
  return parseXml(signed[0]!).documentElement!;
}

function attributes(assertion: Element): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const list = assertion.getElementsByTagNameNS(SAML, 'Attribute');
  for (let i = 0; i < list.length; i++) {
    const attribute = list[i]!;
    const values = attribute.getElementsByTagNameNS(SAML, 'AttributeValue');
    out.set(
      attribute.getAttribute('Name')!,
      Array.from({ length: values.length }, (_, j) => values[j]!.textContent ?? ''),
    );
  }
  return out;
}

function text(assertion: Element, name: string): string | null {
  return assertion.getElementsByTagNameNS(SAML, name)[0]?.textContent ?? null;
}

async function audit(action: string): Promise<{ reason: string | null; after: Record<string, unknown> }[]> {
  const { rows } = await t.db.query<{ reason: string | null; after: Record<string, unknown> | string }>(
    'SELECT reason, after FROM audit_events WHERE action = $1 ORDER BY seq',
    [action],
  );
  return rows.map((r) => ({ reason: r.reason, after: typeof r.after === 'string' ? JSON.parse(r.after) : r.after }));
}

// ---------------------------------------------------------------------------------------------------------------

test(`[${backend}] card sign-in with two role profiles: the user picks one, then the ticket validates into a signed SAML assertion with CIS2's role data`, async () => {
  const holder = await personWithRoles(['nurse', 'admin']);
  const signedIn = await agentSignIn(holder);
  assert.equal(signedIn.ticket, null, 'no ticket before a role is chosen');
  assert.deepEqual(signedIn.session.roles.map((r) => r.personRoleId).sort(), [...holder.profiles].sort());
  const a = await selectRole(signedIn, holder.profiles[0]!);
  assert.match(a.ticket!, /^[A-Za-z0-9_-]{43}$/);
  assert.equal((await audit('cis1.role_selected')).length > 0, true);

  const res = await validate(a.ticket!, { workstationId: WORKSTATION });
  assert.equal(res.status, 200, res.text);
  const assertion = verifiedAssertion(res.text, await metadataCertificate());
  assert.equal(text(assertion, 'NameID'), holder.userId);
  assert.equal(text(assertion, 'Issuer'), `${ORIGIN}/cis1`);
  assert.equal(text(assertion, 'Audience'), basic.clientId);
  assert.equal(text(assertion, 'AuthnContextClassRef'), 'urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI');
  const attrs = attributes(assertion);
  assert.deepEqual(attrs.get('selected_roleid'), [holder.profiles[0]]);
  assert.deepEqual(attrs.get('authentication_assurance_level'), ['3']);
  assert.deepEqual(attrs.get('amr'), ['SMARTCARD']);
  assert.deepEqual(attrs.get('acr'), ['AAL3_N3_SMARTCARD']);
  assert.deepEqual(attrs.get('family_name'), ['O’Brien & <Sons>'], 'text is escaped, not mangled');
  assert.deepEqual(
    attrs.get('effective_activity_codes'),
    ['B0370', 'B0380', 'B0820', 'B0825'],
    'explicit, the baseline of R8001, and what B0825 includes (B0820)',
  );

  // The same role data as CIS2's nhsid_nrbac_roles entry for that role profile, at this moment.
  const claims = await cis2Claims(t.repos, holder.userId, clock.now(), 'userinfo', null);
  const role = (claims.nhsid_nrbac_roles as Record<string, unknown>[]).find(
    (r) => r.person_roleid === holder.profiles[0],
  )!;
  for (const name of ['person_roleid', 'person_orgid', 'org_code', 'role_code', 'role_name']) {
    assert.deepEqual(attrs.get(name), [role[name]], name);
  }
  for (const name of ['activities', 'activity_codes', 'aow', 'aow_codes', 'workgroups', 'workgroups_codes']) {
    assert.deepEqual(attrs.get(name) ?? [], role[name], name);
  }
  assert.deepEqual(attrs.get('role_code'), ['S8000:G8000:R8001']);
  assert.deepEqual(attrs.get('activity_codes'), ['B0380', 'B0825']);
  assert.deepEqual(attrs.get('org_code'), ['RJ1']);
  assert.deepEqual(attrs.get('idassurancelevel'), ['3']);

  // client_secret_post works the same, and the assertion names that application as its audience.
  const viaPost = await validate(a.ticket!, { client: post });
  assert.equal(viaPost.status, 200, viaPost.text);
  assert.equal(text(verifiedAssertion(viaPost.text, await metadataCertificate()), 'Audience'), post.clientId);
});

test(`[${backend}] one role profile: it is selected and the ticket issued at sign-in; tickets and secrets are stored hashed`, async () => {
  const holder = await personWithRoles(['admin']);
  const a = await agentSignIn(holder);
  assert.ok(a.ticket);
  assert.equal(a.session.selectedRoleId, holder.profiles[0]);
  assert.equal((await validate(a.ticket)).status, 200);
  const { rows } = await t.db.query('SELECT * FROM cis1_sessions WHERE user_id = $1', [holder.userId]);
  const stored = JSON.stringify(rows);
  assert.ok(!stored.includes(a.ticket) && !stored.includes(a.secret), 'only hashes are stored');
});

test(`[${backend}] switching role without removing the card changes the assertion, keeps the ticket, and is audited`, async () => {
  const holder = await personWithRoles(['nurse', 'admin']);
  const a = await selectRole(await agentSignIn(holder), holder.profiles[0]!);
  const cert = await metadataCertificate();
  const first = attributes(verifiedAssertion((await validate(a.ticket!)).text, cert));
  assert.deepEqual(first.get('org_code'), ['RJ1']);
  const switched = await asAgent(a, '/cis1/session/role', { personRoleId: holder.profiles[1] });
  assert.equal(switched.status, 200);
  assert.equal(switched.json.ticket, null, 'the ticket stays the same');
  const second = attributes(verifiedAssertion((await validate(a.ticket!)).text, cert));
  assert.deepEqual(second.get('selected_roleid'), [holder.profiles[1]]);
  assert.deepEqual(second.get('org_code'), ['A81001']);
  assert.deepEqual(second.get('role_code'), ['S8001:G8001:R8009']);
  assert.deepEqual(first.get('role_code'), ['S8000:G8000:R8001']);
  const switches = await audit('cis1.role_switched');
  assert.equal(switches.at(-1)!.after.personRoleId, holder.profiles[1]);

  // A role profile that is not this person's is refused, and audited.
  const other = await personWithRoles(['admin']);
  const refused = await asAgent(a, '/cis1/session/role', { personRoleId: other.profiles[0] });
  assert.equal(refused.status, 403);
  assert.equal(refused.json.error?.code, 'cis1.role_not_effective');
  assert.equal((await audit('cis1.role_refused')).at(-1)!.after.personRoleId, other.profiles[0]);
});

test(`[${backend}] card removal ends the session at once: the ticket is refused, and CIS2 sessions signed in with that card end too`, async () => {
  const holder = await personWithRoles(['admin']);
  const a = await agentSignIn(holder);
  const web = await unitOfWork(t.db)((tx) =>
    startSession(
      tx,
      ctx(),
      { userId: holder.userId, aal: 3, amr: ['SMARTCARD'], authenticatorId: `card:${holder.cardId}` },
      null,
      { ip: null, userAgent: null },
    ),
  );
  const ended = await asAgent(a, '/cis1/session/end', { reason: 'card_removed' });
  assert.equal(ended.status, 204);
  const res = await validate(a.ticket!);
  assert.equal(res.status, 401);
  assert.equal(res.json.error?.code, 'cis1.session_ended');
  const { rows } = await t.db.query<{ end_reason: string }>(
    'SELECT end_reason FROM web_sessions WHERE session_hash = $1',
    [web.session.sessionHash],
  );
  assert.equal(rows[0]!.end_reason, 'card_removed');
  const events = await t.db.query('SELECT 1 FROM session_end_events WHERE user_id = $1 AND reason = $2', [
    holder.userId,
    'card_removed',
  ]);
  assert.equal(events.rows.length, 1, 'back-channel logout is asked for');
  assert.equal((await audit('cis1.session_ended')).at(-1)!.reason, 'card_removed');
  // Ending twice is not an error; the secret no longer renews anything.
  assert.equal((await asAgent(a, '/cis1/session/end', { reason: 'card_removed' })).status, 204);
  const heartbeat = await asAgent(a, '/cis1/session/heartbeat', {});
  assert.equal(heartbeat.json.error?.code, 'cis1.session_ended');
});

test(`[${backend}] lock, revocation, suspension and leaving refuse the next validation and end the session`, async () => {
  // Locked (three wrong passcodes, reported by the agent with the card's certificate).
  const locked = await personWithRoles(['admin']);
  const a = await agentSignIn(locked);
  const serial = `CIS1-${locked.userId}`;
  await reportCardEvent(ctx(), { tokenSerial: serial, event: 'locked', certificate: locked.certificate });
  const r1 = await validate(a.ticket!);
  assert.equal(r1.json.error?.code, 'cis1.session_ended');
  const { rows } = await t.db.query<{ end_reason: string }>('SELECT end_reason FROM cis1_sessions WHERE user_id = $1', [
    locked.userId,
  ]);
  assert.equal(rows[0]!.end_reason, 'card_inactive');

  // Card cancelled: certificate revoked.
  const revoked = await personWithRoles(['admin']);
  const b = await agentSignIn(revoked);
  await cancelCard(ctx(), revoked.cardId, 'stolen');
  assert.equal((await validate(b.ticket!)).json.error?.code, 'cis1.session_ended');

  // Certificate revoked on its own (the card still says active).
  const certOnly = await personWithRoles(['admin']);
  const c = await agentSignIn(certOnly);
  await t.db.query(
    "UPDATE pki_certificates SET status = 'revoked', revoked_at = now(), revocation_reason = 'keyCompromise' WHERE card_id = $1",
    [certOnly.cardId],
  );
  assert.equal((await validate(c.ticket!)).json.error?.code, 'cis1.session_ended');
  const reasons = await audit('cis1.session_ended');
  assert.ok(reasons.some((r) => r.reason === 'certificate_revoked'));

  // Suspended.
  const suspended = await personWithRoles(['admin']);
  const d = await agentSignIn(suspended);
  await suspend(ctx(), suspended.userId, { reason: 'investigation' });
  assert.equal((await validate(d.ticket!)).json.error?.code, 'cis1.session_ended');
  assert.ok((await audit('cis1.session_ended')).some((r) => r.reason === 'person_inactive'));

  // A leaver: every profile ended, every card cancelled, status left.
  const leaver = await personWithRoles(['nurse', 'admin']);
  const e = await selectRole(await agentSignIn(leaver), leaver.profiles[1]!);
  await markLeaver(ctx(), leaver.userId, { reason: 'left the trust' });
  const refused = await validate(e.ticket!);
  assert.equal(refused.status, 401);
  assert.equal(refused.json.error?.code, 'cis1.session_ended');
  assert.equal((await asAgent(e, '/cis1/session/heartbeat', {})).json.error?.code, 'cis1.session_ended');
});

test(`[${backend}] an ended role profile refuses the ticket; the agent sees it and another role can be picked`, async () => {
  const holder = await personWithRoles(['nurse', 'admin']);
  const a = await selectRole(await agentSignIn(holder), holder.profiles[0]!);
  await endRoleProfile(ctx(), holder.profiles[0]!, 'moved ward');
  const refused = await validate(a.ticket!);
  assert.equal(refused.status, 403);
  assert.equal(refused.json.error?.code, 'cis1.role_not_effective');
  const heartbeat = await asAgent(a, '/cis1/session/heartbeat', {});
  assert.equal(heartbeat.status, 200);
  assert.equal(heartbeat.json.selectedRoleEffective, false);
  assert.deepEqual(
    (heartbeat.json.roles as { personRoleId: string }[]).map((r) => r.personRoleId),
    [holder.profiles[1]],
  );
  await selectRole(a, holder.profiles[1]!);
  assert.equal((await validate(a.ticket!)).status, 200);
});

test(`[${backend}] AAL3 limits: 15 minutes idle ends the ticket, heartbeats while the card is in renew it, 12 hours is final`, async () => {
  const holder = await personWithRoles(['admin']);
  const a = await agentSignIn(holder);
  clock.set(new Date(clock.now().getTime() + 10 * 60_000));
  assert.equal((await asAgent(a, '/cis1/session/heartbeat', {})).status, 200);
  clock.set(new Date(clock.now().getTime() + 10 * 60_000));
  assert.equal((await validate(a.ticket!)).status, 200, '20 minutes in, but heartbeats kept it alive');
  clock.set(new Date(clock.now().getTime() + 16 * 60_000));
  const idle = await validate(a.ticket!);
  assert.equal(idle.json.error?.code, 'cis1.ticket_expired');
  assert.equal((await validate(a.ticket!)).json.error?.code, 'cis1.session_ended', 'and it stays ended');

  const long = await personWithRoles(['admin']);
  const b = await agentSignIn(long);
  for (let i = 0; i < 12 * 5; i++) {
    clock.set(new Date(clock.now().getTime() + 12 * 60_000));
    const beat = await asAgent(b, '/cis1/session/heartbeat', {});
    if (beat.status !== 200) {
      assert.equal(beat.json.error?.code, 'cis1.ticket_expired');
      assert.ok(i >= 59, `ended only at 12 hours (after ${i} heartbeats)`);
      break;
    }
  }
  assert.equal((await validate(b.ticket!)).json.error?.code, 'cis1.session_ended');
  clock.set('2026-11-26T09:00:00Z');
});

test(`[${backend}] signing in with the card again ends its session on the other workstation`, async () => {
  const holder = await personWithRoles(['admin']);
  const first = await agentSignIn(holder, WORKSTATION);
  const second = await agentSignIn(holder, OTHER_WORKSTATION);
  assert.equal((await validate(first.ticket!)).json.error?.code, 'cis1.session_ended');
  assert.equal((await validate(second.ticket!, { workstationId: OTHER_WORKSTATION })).status, 200);
  assert.ok((await audit('cis1.session_ended')).some((r) => r.reason === 'replaced'));
});

test(`[${backend}] the signing key is created once, even when first needed by many requests at the same moment`, async () => {
  const answers = await Promise.all(
    Array.from({ length: 5 }, () => app.inject({ method: 'GET', url: '/cis1/metadata.xml' })),
  );
  assert.equal(new Set(answers.map((r) => r.body)).size, 1);
  const { rows } = await t.db.query("SELECT key_id FROM cis1_signing_keys WHERE status = 'active'");
  assert.equal(rows.length, 1);
  const { rows: keys } = await t.db.query<{ private_key_sealed: string }>(
    'SELECT private_key_sealed FROM cis1_signing_keys',
  );
  assert.match(keys[0]!.private_key_sealed, /^v1\./, 'the private key is sealed');
});

// ---------------------------------------------------------------------------------------------------------------
// Reused signed assertions (src/cis1/validation.ts, ASSERTION_REUSE_MS): never past an end, never with stale data

function assertionId(xml: string): string {
  return parseXml(xml).documentElement!.getAttribute('ID')!;
}

/**
 * The light read (cis1_ticket_liveness, 0013) must see a ticket exactly as the full one (cis1_ticket_state, 0009) does:
 * the same session, card, certificate and person fields, and the role profile in effect under the same conditions.
 */
const LIVE_FIELDS = [
  'session_id',
  'user_id',
  'card_id',
  'certificate_serial',
  'workstation_id',
  'amr',
  'person_roleid',
  'ticket_hash',
  'authenticated_at',
  'last_seen_at',
  'ended_at',
  'end_reason',
  'card_status',
  'cert_status',
  'cert_revocation_reason',
  'cert_not_after',
  'current_cert_status',
  'current_cert_not_after',
  'person_status',
  'signing_key_id',
  'catalogue_key',
  'person_orgid',
] as const;

async function sameLiveness(ticket: string): Promise<void> {
  const full = await readTicket(t.repos, ticket, clock.now());
  const light = await readTicketLiveness(t.repos, ticket, clock.now());
  assert.ok(full && light, 'both reads find the ticket');
  for (const field of LIVE_FIELDS) assert.deepEqual(light[field], full[field], field);
}

/** Validates twice and checks the second answer is the reused first one — so what follows starts from a cached assertion. */
async function validateCached(ticket: string, client = basic): Promise<string> {
  const first = await validate(ticket, { client });
  assert.equal(first.status, 200, first.text);
  const second = await validate(ticket, { client });
  assert.equal(second.text, first.text, 'the same signed assertion, reused');
  return first.text;
}

test(`[${backend}] a signed assertion is reused for the same application and content only, and only for ASSERTION_REUSE_MS`, async () => {
  const holder = await personWithRoles(['nurse', 'admin']);
  const a = await selectRole(await agentSignIn(holder), holder.profiles[0]!);
  const cert = await metadataCertificate();
  const first = await validateCached(a.ticket!);
  verifiedAssertion(first, cert);
  // Another application: its own audience, so its own assertion.
  const other = await validate(a.ticket!, { client: post });
  assert.notEqual(assertionId(other.text), assertionId(first));
  assert.equal(text(verifiedAssertion(other.text, cert), 'Audience'), post.clientId);
  // Its times are the first issue's: never valid for longer than a fresh assertion.
  const conditions = verifiedAssertion(first, cert).getElementsByTagNameNS(SAML, 'Conditions')[0]!;
  assert.equal(
    new Date(conditions.getAttribute('NotOnOrAfter')!).getTime() -
      new Date(conditions.getAttribute('NotBefore')!).getTime(),
    ASSERTION_LIFETIME_MS,
  );
  // Just inside the window: reused; once it has passed: a new assertion, issued now.
  clock.set(new Date(clock.now().getTime() + ASSERTION_REUSE_MS - 1000));
  assert.equal((await validate(a.ticket!)).text, first);
  clock.set(new Date(clock.now().getTime() + 1000));
  const later = await validate(a.ticket!);
  assert.equal(later.status, 200);
  assert.notEqual(assertionId(later.text), assertionId(first));
  const issued = parseXml(later.text).documentElement!.getAttribute('IssueInstant')!;
  assert.equal(issued, `${clock.now().toISOString().slice(0, 19)}Z`);
  // A clock set back never gets an assertion issued in its future.
  clock.set(new Date(clock.now().getTime() - 5000));
  const earlier = await validate(a.ticket!);
  assert.notEqual(earlier.text, later.text);
  clock.set('2026-11-26T09:00:00Z');
});

test(`[${backend}] with a cached assertion, card removal, lock, revocation, suspension, leaving and an ended role still refuse the next validation`, async () => {
  const removed = await personWithRoles(['admin']);
  const a = await agentSignIn(removed);
  await validateCached(a.ticket!);
  assert.equal((await asAgent(a, '/cis1/session/end', { reason: 'card_removed' })).status, 204);
  await sameLiveness(a.ticket!);
  assert.equal((await validate(a.ticket!)).json.error?.code, 'cis1.session_ended');

  const locked = await personWithRoles(['admin']);
  const b = await agentSignIn(locked);
  await validateCached(b.ticket!);
  await reportCardEvent(ctx(), {
    tokenSerial: `CIS1-${locked.userId}`,
    event: 'locked',
    certificate: locked.certificate,
  });
  await sameLiveness(b.ticket!);
  assert.equal((await validate(b.ticket!)).json.error?.code, 'cis1.session_ended');

  const cancelled = await personWithRoles(['admin']);
  const c = await agentSignIn(cancelled);
  await validateCached(c.ticket!);
  await cancelCard(ctx(), cancelled.cardId, 'stolen');
  await sameLiveness(c.ticket!);
  assert.equal((await validate(c.ticket!)).json.error?.code, 'cis1.session_ended');

  const certRevoked = await personWithRoles(['admin']);
  const d = await agentSignIn(certRevoked);
  await validateCached(d.ticket!);
  await t.db.query(
    "UPDATE pki_certificates SET status = 'revoked', revoked_at = now(), revocation_reason = 'keyCompromise' WHERE card_id = $1",
    [certRevoked.cardId],
  );
  await sameLiveness(d.ticket!);
  assert.equal((await validate(d.ticket!)).json.error?.code, 'cis1.session_ended');

  const suspended = await personWithRoles(['admin']);
  const e = await agentSignIn(suspended);
  await validateCached(e.ticket!);
  await suspend(ctx(), suspended.userId, { reason: 'investigation' });
  await sameLiveness(e.ticket!);
  assert.equal((await validate(e.ticket!)).json.error?.code, 'cis1.session_ended');

  const leaver = await personWithRoles(['nurse', 'admin']);
  const f = await selectRole(await agentSignIn(leaver), leaver.profiles[1]!);
  await validateCached(f.ticket!);
  await markLeaver(ctx(), leaver.userId, { reason: 'left the trust' });
  await sameLiveness(f.ticket!);
  assert.equal((await validate(f.ticket!)).json.error?.code, 'cis1.session_ended');

  const moved = await personWithRoles(['nurse', 'admin']);
  const g = await selectRole(await agentSignIn(moved), moved.profiles[0]!);
  await validateCached(g.ticket!);
  await endRoleProfile(ctx(), moved.profiles[0]!, 'moved ward');
  await sameLiveness(g.ticket!);
  const refused = await validate(g.ticket!);
  assert.equal(refused.status, 403);
  assert.equal(refused.json.error?.code, 'cis1.role_not_effective');

  // Signed in again elsewhere: the first workstation's ticket ends although its assertion was cached.
  const replaced = await personWithRoles(['admin']);
  const h = await agentSignIn(replaced, WORKSTATION);
  await validateCached(h.ticket!);
  await agentSignIn(replaced, OTHER_WORKSTATION);
  await sameLiveness(h.ticket!);
  assert.equal((await validate(h.ticket!)).json.error?.code, 'cis1.session_ended');
});

test(`[${backend}] with a cached assertion, another workstation id, the idle limit and the 12-hour limit refuse the next validation`, async () => {
  const start = clock.now().getTime();
  // The ticket presented with another workstation's id: refused, though the same ticket alone is still reused.
  const moved = await personWithRoles(['admin']);
  const a = await agentSignIn(moved);
  const cached = await validateCached(a.ticket!);
  const elsewhere = await validate(a.ticket!, { workstationId: OTHER_WORKSTATION });
  assert.equal(elsewhere.status, 403, elsewhere.text);
  assert.equal(elsewhere.json.error?.code, 'cis1.workstation_mismatch');
  assert.equal((await validate(a.ticket!, { workstationId: WORKSTATION })).text, cached);

  // Idle: the assertion was signed 10 s before the 15 minutes since the last heartbeat were up; still within its
  // reuse window when they are, and refused then.
  const idle = await personWithRoles(['admin']);
  const b = await agentSignIn(idle);
  clock.set(new Date(start + 15 * 60_000 - 10_000));
  await validateCached(b.ticket!);
  clock.set(new Date(start + 15 * 60_000));
  await sameLiveness(b.ticket!);
  assert.equal((await validate(b.ticket!)).json.error?.code, 'cis1.ticket_expired');
  assert.equal((await validate(b.ticket!)).json.error?.code, 'cis1.session_ended', 'and it stays ended');

  // 12 hours: heartbeats keep it from idling until then; signed 10 s before, refused at 12 hours.
  clock.set(new Date(start));
  const long = await personWithRoles(['admin']);
  const c = await agentSignIn(long);
  for (let minutes = 12; minutes < 12 * 60; minutes += 12) {
    clock.set(new Date(start + minutes * 60_000));
    assert.equal((await asAgent(c, '/cis1/session/heartbeat', {})).status, 200);
  }
  clock.set(new Date(start + 12 * 3_600_000 - 10_000));
  assert.equal((await asAgent(c, '/cis1/session/heartbeat', {})).status, 200);
  await validateCached(c.ticket!);
  clock.set(new Date(start + 12 * 3_600_000));
  await sameLiveness(c.ticket!);
  assert.equal((await validate(c.ticket!)).json.error?.code, 'cis1.ticket_expired');
  clock.set('2026-11-26T09:00:00Z');
});

test(`[${backend}] with a cached assertion, a role switch, a changed position or a changed name gives a fresh assertion with the new data at once`, async () => {
  const position = await createPosition(ctx(), 'RJ1', {
    name: 'Cache ward',
    jobRoles: ['R8001'],
    activities: ['B0825'],
  });
  const holder = await personWithRoles(['admin']);
  const extra = await assignRoleProfile(ctx(), {
    userId: holder.userId,
    positionId: position.positionId,
    startDate: '2020-01-01',
  });
  const a = await selectRole(await agentSignIn(holder), extra.personRoleId);
  const cert = await metadataCertificate();
  const first = attributes(verifiedAssertion(await validateCached(a.ticket!), cert));
  assert.deepEqual(first.get('activity_codes'), ['B0825']);

  // An activity added to the position.
  await t.db.query('INSERT INTO position_activities (position_id, activity_code) VALUES ($1, $2)', [
    position.positionId,
    'B0380',
  ]);
  const added = attributes(verifiedAssertion((await validate(a.ticket!)).text, cert));
  assert.deepEqual(added.get('activity_codes'), ['B0380', 'B0825']);
  // One taken away (the cached first assertion carries it): the next validation no longer does.
  await t.db.query('DELETE FROM position_activities WHERE position_id = $1 AND activity_code = $2', [
    position.positionId,
    'B0825',
  ]);
  const removed = attributes(verifiedAssertion((await validate(a.ticket!)).text, cert));
  assert.deepEqual(removed.get('activity_codes'), ['B0380']);

  // The person's name.
  await t.db.query('UPDATE people SET preferred_name = $2 WHERE user_id = $1', [holder.userId, 'Cache Renamed']);
  const renamed = attributes(verifiedAssertion((await validate(a.ticket!)).text, cert));
  assert.deepEqual(renamed.get('name'), ['Cache Renamed']);

  // A role switch on the same ticket.
  await selectRole(a, holder.profiles[0]!);
  const switched = attributes(verifiedAssertion((await validate(a.ticket!)).text, cert));
  assert.deepEqual(switched.get('selected_roleid'), [holder.profiles[0]]);
  assert.deepEqual(switched.get('org_code'), ['A81001']);
});

test(`[${backend}] with a cached assertion, job roles, areas of work, workgroups, names, the organisation and the catalogue give the new data at once`, async () => {
  await saveOrganisation(ctx(), { odsCode: 'RCX', name: 'Cache Trust', type: 'trust' });
  const position = await createPosition(ctx(), 'RCX', {
    name: 'Cache clinic',
    jobRoles: ['R8001'],
    activities: ['B0380'],
  });
  const holder = await personWithRoles([]);
  const role = await assignRoleProfile(ctx(), {
    userId: holder.userId,
    positionId: position.positionId,
    startDate: '2020-01-01',
  });
  const a = await agentSignIn(holder);
  assert.equal(a.session.selectedRoleId, role.personRoleId);
  const cert = await metadataCertificate();
  /** The next validation's attributes, after checking it is not the assertion held from before. */
  let previous = await validateCached(a.ticket!);
  const next = async () => {
    const res = await validate(a.ticket!);
    assert.equal(res.status, 200, res.text);
    assert.notEqual(res.text, previous, 'a fresh assertion');
    previous = res.text;
    await sameLiveness(a.ticket!);
    const attrs = attributes(verifiedAssertion(res.text, cert));
    // And it is reused again from then on.
    assert.equal((await validate(a.ticket!)).text, res.text);
    return attrs;
  };
  assert.deepEqual(attributes(verifiedAssertion(previous, cert)).get('role_code'), ['S8000:G8000:R8001']);

  // The position's job role changed.
  await t.db.query('UPDATE position_job_roles SET job_role_code = $2 WHERE position_id = $1', [
    position.positionId,
    'R8003',
  ]);
  assert.deepEqual((await next()).get('role_code'), ['S8000:G8000:R8003']);
  // A job role added (the primary role is the lowest code).
  await t.db.query('INSERT INTO position_job_roles (position_id, job_role_code) VALUES ($1, $2)', [
    position.positionId,
    'R8000',
  ]);
  assert.deepEqual((await next()).get('job_role_codes'), ['R8000', 'R8003']);
  // An area of work added.
  await t.db.query('INSERT INTO position_areas_of_work (position_id, aow_code) VALUES ($1, $2)', [
    position.positionId,
    'T0110',
  ]);
  assert.deepEqual((await next()).get('aow_codes'), ['T0110']);
  // A workgroup added, then renamed.
  const workgroup = '999000000017';
  await t.db.query('INSERT INTO workgroups (code, ods_code, name, created_at) VALUES ($1, $2, $3, $4)', [
    workgroup,
    'RCX',
    'Cache team',
    clock.now(),
  ]);
  await t.db.query('INSERT INTO position_workgroups (position_id, workgroup_code) VALUES ($1, $2)', [
    position.positionId,
    workgroup,
  ]);
  assert.deepEqual((await next()).get('workgroups'), ['Cache team']);
  await t.db.query('UPDATE workgroups SET name = $2 WHERE code = $1', [workgroup, 'Cache team, renamed']);
  assert.deepEqual((await next()).get('workgroups'), ['Cache team, renamed']);
  // The person's family name and identity assurance level.
  await t.db.query('UPDATE people SET family_name = $2 WHERE user_id = $1', [holder.userId, 'Renamed']);
  assert.deepEqual((await next()).get('family_name'), ['Renamed']);
  await t.db.query('UPDATE people SET identity_assurance_level = 2 WHERE user_id = $1', [holder.userId]);
  assert.deepEqual((await next()).get('idassurancelevel'), ['2']);
  // The organisation renamed.
  await saveOrganisation(ctx(), { odsCode: 'RCX', name: 'Cache Trust, renamed', type: 'trust' }, { upsert: true });
  assert.deepEqual((await next()).get('org_name'), ['Cache Trust, renamed']);
  // A new catalogue version that renames an activity.
  const bundled = await readCatalogueFile(BUNDLED_CATALOGUE);
  const catalogue = {
    ...bundled.catalogue,
    version: `${bundled.catalogue.version}-cache`,
    activities: bundled.catalogue.activities.map((x) =>
      x.code === 'B0380' ? { ...x, name: 'Perform Detailed Health Record (renamed)' } : x,
    ),
  };
  assert.equal((await loadCatalogue(ctx(), { catalogue, checksum: 'cis1-cache-test' })).loaded, true);
  const reloaded = await next();
  assert.deepEqual(reloaded.get('activity_codes'), ['B0380']);
  assert.deepEqual(reloaded.get('activities'), ['Perform Detailed Health Record (renamed)']);
});

test(`[${backend}] no ticket, session secret, client secret or private key appears in the logs`, () => {
  assert.ok(logLines.length > 20, 'requests were logged');
  const log = logLines.join('\n');
  for (const secret of secrets) assert.ok(!log.includes(secret), 'a secret was logged');
  assert.ok(!log.includes('PRIVATE KEY'));
  assert.ok(!/Bearer|Basic /.test(log), 'no Authorization header was logged');
});
