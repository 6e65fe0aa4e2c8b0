import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DOMParser, type Element, XMLSerializer } from '@xmldom/xmldom';
import type { FastifyInstance } from 'fastify';
import { SignedXml } from 'xml-crypto';
import { buildApp } from '../../src/app.ts';
import { registerCis1Routes } from '../../src/cis1/routes.ts';
import { loadConfig } from '../../src/config.ts';
import { cardConfigFrom, relyingPartyFrom, type WebDeps } from '../../src/http/deps.ts';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { certifyCard, passcodeGrant, redeemCardGrant, startCardIssue } from '../../src/services/cards.ts';
import { ensureCertificateAuthority } from '../../src/services/certificates.ts';
import { registerClient, setClientStatus } from '../../src/services/clients.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { SoftwareCardKey } from '../support/card.ts';
import { TestClock, testContext, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';

/**
 * Attacks on CIS1: forged, truncated, replayed and other-workstation tickets; unknown and wrongly authenticated
 * applications; XML of every hostile kind (OpenCIS parses none: validation takes JSON or a form); oversized bodies;
 * stolen session secrets; and, on the relying party's side, signature wrapping and XXE against the assertion. Every
 * refusal has a catalogued code and an audit record, and the server keeps answering.
 */
const ORIGIN = 'http://localhost:3000';
const SAML = 'urn:oasis:names:tc:SAML:2.0:assertion';
const DS = 'http://www.w3.org/2000/09/xmldsig#';
const WORKSTATION = `ws-${randomBytes(12).toString('base64url')}`;

let t: TestDatabase;
let app: FastifyInstance;
const clock = new TestClock(new Date('2026-11-26T09:00:00Z'));
const ctx = () => testContext(t.db, { clock });
let basic: { clientId: string; secret: string };
let post: { clientId: string; secret: string };
let positionId: string;
let n = 0;

before(async () => {
  t = await createTestDatabase();
  await ensureCertificateAuthority(ctx());
  const config = loadConfig({
    PUBLIC_URL: ORIGIN,
    DATA_DIR: mkdtempSync(join(tmpdir(), 'opencis-cis1-sec-')),
    LOG_LEVEL: 'silent',
    DEMO_DATA: 'false',
    CARD_TRANSPORT_SO_PIN: '87654321',
  });
  const transport = { send: async () => {} };
  app = await buildApp({ config, db: t.db, sealer: testSealer, clock, logger: false, transport });
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
  await saveOrganisation(ctx(), { odsCode: 'RJ1', name: 'Test Trust', type: 'trust' });
  positionId = (await createPosition(ctx(), 'RJ1', { name: 'Ward clerk', jobRoles: ['R8010'], activities: [] }))
    .positionId;
  const b = await registerClient(ctx(), {
    name: 'PAS',
    redirectUris: ['https://pas.example/cb'],
    tokenEndpointAuthMethod: 'client_secret_basic',
  });
  basic = { clientId: b.client.clientId, secret: b.clientSecret! };
  const p = await registerClient(ctx(), {
    name: 'EPR',
    redirectUris: ['https://epr.example/cb'],
    tokenEndpointAuthMethod: 'client_secret_post',
  });
  post = { clientId: p.client.clientId, secret: p.clientSecret! };
});
after(async () => {
  await app?.close();
  await t?.close();
});

async function holder(withRole = true) {
  n++;
  const person = await registerPerson(ctx(), {
    givenName: `Sec${n}`,
    familyName: 'Tester',
    dateOfBirth: '1979-03-04',
    niNumber: `JK${String(500000 + n)}C`,
    identityAssuranceLevel: 3,
  });
  if (withRole) await assignRoleProfile(ctx(), { userId: person.userId, positionId, startDate: '2020-01-01' });
  const key = new SoftwareCardKey();
  const tokenSerial = `SEC-${person.userId}`;
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
  return { userId: person.userId, key, certificate: certificate.toString('base64') };
}

interface Answer {
  status: number;
  code: string | undefined;
  json: Record<string, unknown>;
  text: string;
}

async function send(
  url: string,
  payload: string | Buffer,
  headers: Record<string, string> = { 'content-type': 'application/json' },
): Promise<Answer> {
  const res = await app.inject({ method: 'POST', url, headers, payload });
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(res.body) as Record<string, unknown>;
  } catch {
    json = {};
  }
  return { status: res.statusCode, code: (json.error as { code?: string } | undefined)?.code, json, text: res.body };
}

const call = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  send(url, JSON.stringify(body), { 'content-type': 'application/json', ...headers });

async function signIn(h: Awaited<ReturnType<typeof holder>>, workstationId = WORKSTATION) {
  const challenge = await call('/cis1/session/challenge', {});
  const res = await call('/cis1/session', {
    challengeId: challenge.json.challengeId,
    certificate: h.certificate,
    signature: h.key.sign(ORIGIN, String(challenge.json.challenge)),
    algorithm: 'ES256',
    workstationId,
  });
  assert.equal(res.status, 200, res.text);
  return { secret: String(res.json.sessionSecret), ticket: String(res.json.ticket) };
}

function basicAuth(clientId: string, secret: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` };
}

const validate = (ticket: unknown, extra: Record<string, unknown> = {}) =>
  call('/cis1/validate', { ticket, ...extra }, basicAuth(basic.clientId, basic.secret));

async function auditCount(action: string): Promise<number> {
  const { rows } = await t.db.query<{ n: string }>('SELECT count(*) AS n FROM audit_events WHERE action = $1', [
    action,
  ]);
  return Number(rows[0]!.n);
}

async function lastAudit(action: string): Promise<{ reason: string | null; after: Record<string, unknown> }> {
  const { rows } = await t.db.query<{ reason: string | null; after: Record<string, unknown> | string }>(
    'SELECT reason, after FROM audit_events WHERE action = $1 ORDER BY seq DESC LIMIT 1',
    [action],
  );
  const r = rows[0]!;
  return { reason: r.reason, after: typeof r.after === 'string' ? JSON.parse(r.after) : r.after };
}

async function stillServing(): Promise<void> {
  const res = await app.inject({ method: 'GET', url: '/cis1/metadata.xml' });
  assert.equal(res.statusCode, 200, 'the server still answers');
}

// ---------------------------------------------------------------------------------------------------------------
// Tickets

test(`[${backend}] forged, truncated, padded and malformed tickets are refused (401 cis1.ticket_invalid), each audited`, async () => {
  const h = await holder();
  const { ticket } = await signIn(h);
  const forged = [
    randomBytes(32).toString('base64url'),
    ticket.slice(0, 42),
    ticket.slice(0, 20),
    `${ticket}A`,
    `${ticket.slice(0, 42)}${ticket[42] === 'A' ? 'B' : 'A'}`,
    ticket.toUpperCase() === ticket ? ticket.toLowerCase() : ticket.toUpperCase(),
    '',
    42,
    null,
    { $ne: '' },
    [ticket],
    '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
    'x'.repeat(10_000),
  ];
  const before = await auditCount('cis1.validation_refused');
  for (const candidate of forged) {
    const res = await validate(candidate);
    assert.equal(res.status, 401, JSON.stringify(candidate).slice(0, 40));
    assert.equal(res.code, 'cis1.ticket_invalid');
  }
  assert.equal(await auditCount('cis1.validation_refused'), before + forged.length);
  assert.match((await lastAudit('cis1.validation_refused')).reason!, /malformed ticket|unknown ticket/);
  assert.equal((await validate(ticket)).status, 200, 'the genuine ticket still works');
  await stillServing();
});

test(`[${backend}] a ticket replayed after sign-out is refused (cis1.session_ended) and audited`, async () => {
  const h = await holder();
  const s = await signIn(h);
  const end = await call(
    '/cis1/session/end',
    { workstationId: WORKSTATION, reason: 'signed_out' },
    { authorization: `Bearer ${s.secret}` },
  );
  assert.equal(end.status, 204);
  for (let i = 0; i < 3; i++) {
    const res = await validate(s.ticket);
    assert.equal(res.status, 401);
    assert.equal(res.code, 'cis1.session_ended');
  }
  assert.match((await lastAudit('cis1.validation_refused')).reason!, /after its session ended \(signed_out\)/);
});

test(`[${backend}] another workstation: its id with the ticket, or the session secret from it, is refused and audited`, async () => {
  const h = await holder();
  const s = await signIn(h);
  const other = `ws-${randomBytes(12).toString('base64url')}`;
  const res = await validate(s.ticket, { workstation_id: other });
  assert.equal(res.status, 403);
  assert.equal(res.code, 'cis1.workstation_mismatch');
  assert.equal((await lastAudit('cis1.validation_refused')).after.code, 'cis1.workstation_mismatch');
  assert.equal((await validate(s.ticket, { workstation_id: 'not a workstation id' })).code, 'cis1.ticket_invalid');
  for (const path of ['/cis1/session/heartbeat', '/cis1/session/role', '/cis1/session/end']) {
    const stolen = await call(
      path,
      { workstationId: other, reason: 'signed_out', personRoleId: '000000000000' },
      { authorization: `Bearer ${s.secret}` },
    );
    assert.equal(stolen.status, 403, path);
    assert.equal(stolen.code, 'cis1.workstation_mismatch');
  }
  assert.equal((await lastAudit('cis1.agent_refused')).reason, 'session secret presented from another workstation');
  assert.equal((await validate(s.ticket, { workstation_id: WORKSTATION })).status, 200, 'the session was not ended');
});

test(`[${backend}] a made-up or missing session secret gets 401 cis1.agent_session_invalid, audited`, async () => {
  for (const authorization of [`Bearer ${randomBytes(32).toString('base64url')}`, 'Bearer x', 'Basic abc', '']) {
    const res = await call(
      '/cis1/session/heartbeat',
      { workstationId: WORKSTATION },
      authorization ? { authorization } : {},
    );
    assert.equal(res.status, 401, authorization);
    assert.equal(res.code, 'cis1.agent_session_invalid');
  }
  assert.match((await lastAudit('cis1.agent_refused')).reason!, /malformed credentials|unknown session secret/);
});

// ---------------------------------------------------------------------------------------------------------------
// Applications

test(`[${backend}] unknown, disabled and wrongly authenticated applications are refused (401 cis1.client_invalid), audited`, async () => {
  const h = await holder();
  const { ticket } = await signIn(h);
  const pkjwt = await registerClient(ctx(), {
    name: 'Modern app',
    redirectUris: ['https://modern.example/cb'],
    jwks: {
      keys: [
        {
          kty: 'EC',
          crv: 'P-256',
          x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',
          y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0',
        },
      ],
    },
  });
  const disabled = await registerClient(ctx(), {
    name: 'Retired app',
    redirectUris: ['https://retired.example/cb'],
    tokenEndpointAuthMethod: 'client_secret_basic',
  });
  await setClientStatus(ctx(), disabled.client.clientId, 'disabled');
  // Counted before the attempts start: they run at once, and the first are audited before the last is sent.
  const before = await auditCount('cis1.validation_refused');
  const attempts: [string, Promise<Answer>][] = [
    ['unknown application', call('/cis1/validate', { ticket }, basicAuth('123456789012.apps.national', 'secret'))],
    ['wrong secret', call('/cis1/validate', { ticket }, basicAuth(basic.clientId, `${basic.secret}x`))],
    ['no credentials', call('/cis1/validate', { ticket })],
    [
      'basic client using post',
      call('/cis1/validate', { ticket, client_id: basic.clientId, client_secret: basic.secret }),
    ],
    ['post client using basic', call('/cis1/validate', { ticket }, basicAuth(post.clientId, post.secret))],
    [
      'two methods at once',
      call('/cis1/validate', { ticket, client_secret: basic.secret }, basicAuth(basic.clientId, basic.secret)),
    ],
    [
      'private_key_jwt client',
      call('/cis1/validate', { ticket, client_id: pkjwt.client.clientId, client_secret: 'x' }),
    ],
    [
      'disabled client',
      call('/cis1/validate', { ticket }, basicAuth(disabled.client.clientId, disabled.clientSecret!)),
    ],
    ['malformed client id', call('/cis1/validate', { ticket, client_id: '<x/>', client_secret: 'x' })],
    ['garbage Basic header', call('/cis1/validate', { ticket }, { authorization: 'Basic %%%' })],
  ];
  for (const [what, attempt] of attempts) {
    const res = await attempt;
    assert.equal(res.status, 401, what);
    assert.equal(res.code, 'cis1.client_invalid', what);
  }
  assert.equal(await auditCount('cis1.validation_refused'), before + attempts.length);
  // The refusal reveals nothing about the ticket, and leaves the session alone.
  assert.equal((await validate(ticket)).status, 200);
  // client_secret_post as a form, the way OAuth clients send it, works.
  const form = await send(
    '/cis1/validate',
    new URLSearchParams({ ticket, client_id: post.clientId, client_secret: post.secret }).toString(),
    { 'content-type': 'application/x-www-form-urlencoded' },
  );
  assert.equal(form.status, 200, form.text);
});

// ---------------------------------------------------------------------------------------------------------------
// XML, entities and size: OpenCIS parses no XML from outside

test(`[${backend}] XML and SAML bodies (XXE, entity expansion, SAML responses) are refused unparsed (415), audited`, async () => {
  const xxe = `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r><ticket>&x;</ticket></r>`;
  const lol = `<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]><l>&d;</l>`;
  const saml = `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"><saml:Assertion xmlns:saml="${SAML}"/></samlp:Response>`;
  const before = await auditCount('cis1.request_refused');
  let refused = 0;
  for (const [type, body] of [
    ['application/xml', xxe],
    ['text/xml', lol],
    ['application/samlassertion+xml', saml],
    ['application/soap+xml', saml],
  ] as const) {
    for (const path of ['/cis1/validate', '/cis1/session', '/cis1/session/end']) {
      const res = await send(path, body, { 'content-type': type, ...basicAuth(basic.clientId, basic.secret) });
      assert.equal(res.status, 415, `${type} to ${path}`);
      assert.equal(res.code, 'request.unsupported_media_type');
      refused++;
    }
  }
  assert.equal(await auditCount('cis1.request_refused'), before + refused);
  // The same XML inside JSON is just a string that is not a ticket.
  assert.equal((await validate(xxe)).code, 'cis1.ticket_invalid');
  await stillServing();
});

test(`[${backend}] a 10 MB payload is refused before it is read (413), malformed JSON gets 400; both audited`, async () => {
  const huge = Buffer.alloc(10 * 1024 * 1024, 'a');
  const before = await auditCount('cis1.request_refused');
  const big = await send('/cis1/validate', huge, { 'content-type': 'application/json' });
  assert.equal(big.status, 413);
  assert.equal(big.code, 'request.too_large');
  const bigForm = await send('/cis1/session', huge, { 'content-type': 'application/x-www-form-urlencoded' });
  assert.equal(bigForm.status, 413);
  const bad = await send('/cis1/validate', '{"ticket":', { 'content-type': 'application/json' });
  assert.equal(bad.status, 400);
  assert.equal(bad.code, 'request.malformed_json');
  assert.equal(await auditCount('cis1.request_refused'), before + 3);
  assert.equal((await lastAudit('cis1.request_refused')).after.status, 400);
  await stillServing();
});

// ---------------------------------------------------------------------------------------------------------------
// Sign-in

test(`[${backend}] card sign-in: a forged signature, a replayed challenge, a bad workstation id and a person with no role are refused`, async () => {
  const h = await holder();
  const challenge = await call('/cis1/session/challenge', {});
  const forged = await call('/cis1/session', {
    challengeId: challenge.json.challengeId,
    certificate: h.certificate,
    signature: new SoftwareCardKey().sign(ORIGIN, String(challenge.json.challenge)),
    algorithm: 'ES256',
    workstationId: WORKSTATION,
  });
  assert.equal(forged.status, 401);
  assert.equal(forged.code, 'auth.failed');
  const replay = await call('/cis1/session', {
    challengeId: challenge.json.challengeId,
    certificate: h.certificate,
    signature: h.key.sign(ORIGIN, String(challenge.json.challenge)),
    algorithm: 'ES256',
    workstationId: WORKSTATION,
  });
  assert.equal(replay.code, 'auth.failed', 'a challenge is used once, even by a failed attempt');
  assert.match((await lastAudit('signin.failed')).reason!, /challenge/);
  const c2 = await call('/cis1/session/challenge', {});
  const badWorkstation = await call('/cis1/session', {
    challengeId: c2.json.challengeId,
    certificate: h.certificate,
    signature: h.key.sign(ORIGIN, String(c2.json.challenge)),
    algorithm: 'ES256',
    workstationId: '../../etc',
  });
  assert.equal(badWorkstation.status, 400);
  assert.equal((await lastAudit('cis1.signin_refused')).reason, 'malformed request');
  // Signed for another origin: refused.
  const c3 = await call('/cis1/session/challenge', {});
  const otherOrigin = await call('/cis1/session', {
    challengeId: c3.json.challengeId,
    certificate: h.certificate,
    signature: h.key.sign('https://evil.example', String(c3.json.challenge)),
    algorithm: 'ES256',
    workstationId: WORKSTATION,
  });
  assert.equal(otherOrigin.code, 'auth.failed');

  const noRole = await holder(false);
  const c4 = await call('/cis1/session/challenge', {});
  const refused = await call('/cis1/session', {
    challengeId: c4.json.challengeId,
    certificate: noRole.certificate,
    signature: noRole.key.sign(ORIGIN, String(c4.json.challenge)),
    algorithm: 'ES256',
    workstationId: WORKSTATION,
  });
  assert.equal(refused.status, 403);
  assert.equal(refused.code, 'cis1.no_role_profile');
  assert.equal((await lastAudit('cis1.signin_refused')).reason, 'no role profile in effect');
  const { rows } = await t.db.query('SELECT 1 FROM cis1_sessions WHERE user_id = $1', [noRole.userId]);
  assert.equal(rows.length, 0);
});

// ---------------------------------------------------------------------------------------------------------------
// The relying party's side: what a verifier must refuse (OpenCIS signs; applications parse)

function parseXml(xml: string) {
  if (/<!DOCTYPE|<!ENTITY/i.test(xml)) throw new Error('DTDs are not accepted');
  return new DOMParser({
    onError: (level, message) => {
      if (level !== 'warning') throw new Error(message);
    },
  }).parseFromString(xml, 'application/xml');
}

async function metadataCertificate(): Promise<string> {
  const doc = parseXml((await app.inject({ method: 'GET', url: '/cis1/metadata.xml' })).body);
  const b64 = doc.getElementsByTagNameNS(DS, 'X509Certificate')[0]!.textContent!.trim();
  return `-----BEGIN CERTIFICATE-----\n${b64.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
}

function verifiedAssertion(xml: string, certificatePem: string): Element {
  const doc = parseXml(xml);
  const root = doc.documentElement!;
  if (root.localName !== 'Assertion' || root.namespaceURI !== SAML) throw new Error('not an assertion');
  const signatures = doc.getElementsByTagNameNS(DS, 'Signature');
  if (signatures.length !== 1 || signatures[0]!.parentNode !== root) throw new Error('one enveloped signature');
  const verifier = new SignedXml({ publicCert: certificatePem, getCertFromKeyInfo: () => null });
  verifier.loadSignature(signatures[0]!.toString());
  if (!verifier.checkSignature(xml)) throw new Error('signature does not verify');
  const references = verifier.getReferences();
  if (references.length !== 1 || references[0]!.uri !== `#${root.getAttribute('ID')}`) {
    throw new Error('the signature does not cover the assertion');
  }
  return parseXml(verifier.getSignedReferences()[0]!).documentElement!;
}

test(`[${backend}] relying-party verification with xml-crypto refuses wrapped, tampered, re-keyed and DTD-carrying assertions`, async () => {
  const h = await holder();
  const { ticket } = await signIn(h);
  const res = await validate(ticket);
  assert.equal(res.status, 200);
  const xml = res.text;
  const cert = await metadataCertificate();
  const genuine = verifiedAssertion(xml, cert);
  assert.equal(genuine.getElementsByTagNameNS(SAML, 'NameID')[0]!.textContent, h.userId);

  // Signature wrapping: an evil assertion at the root, the genuine signed one hidden inside it.
  const doc = parseXml(xml);
  const evil = doc.createElementNS(SAML, 'saml:Assertion');
  evil.setAttribute('ID', '_evil');
  const subject = doc.createElementNS(SAML, 'saml:NameID');
  subject.appendChild(doc.createTextNode('999999999999'));
  evil.appendChild(subject);
  const advice = doc.createElementNS(SAML, 'saml:Advice');
  const original = doc.documentElement!;
  doc.replaceChild(evil, original);
  advice.appendChild(original);
  evil.appendChild(advice);
  const wrapped = new XMLSerializer().serializeToString(doc);
  assert.throws(() => verifiedAssertion(wrapped, cert), /one enveloped signature|does not cover|not verify/);

  // The same wrapping with the signature moved up to the evil root.
  const doc2 = parseXml(wrapped);
  const sig = doc2.getElementsByTagNameNS(DS, 'Signature')[0]!;
  sig.parentNode!.removeChild(sig);
  doc2.documentElement!.insertBefore(sig, doc2.documentElement!.firstChild);
  assert.throws(() => verifiedAssertion(new XMLSerializer().serializeToString(doc2), cert));

  // Tampering with a signed value.
  assert.throws(() => verifiedAssertion(xml.replace(h.userId, '999999999999'), cert), /does not verify/);
  // A certificate of the attacker's in KeyInfo is ignored: only the metadata certificate counts.
  const attacker = `-----BEGIN CERTIFICATE-----\n${Buffer.from('not the key').toString('base64')}\n-----END CERTIFICATE-----\n`;
  assert.throws(() => verifiedAssertion(xml, attacker));
  // DTDs: external entities and entity expansion never reach the parser.
  const withDtd = xml.replace(
    '<saml:Assertion',
    '<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><saml:Assertion',
  );
  assert.throws(() => verifiedAssertion(withDtd, cert), /DTDs are not accepted/);
  // What OpenCIS produced has no DTD, no comments and exactly one signature.
  assert.ok(!/<!DOCTYPE|<!--/.test(xml));
  assert.equal(xml.match(/<ds:Signature[ >]/g)?.length, 1);
});

test(`[${backend}] CIS1_ASSERTION_REUSE_SECONDS: by default the same assertion is handed again; 0 signs every validation`, async () => {
  const h = await holder();
  const { ticket } = await signIn(h);
  const idOf = (xml: string) => /<saml:Assertion[^>]* ID="([^"]+)"/.exec(xml)?.[1];
  const first = await validate(ticket);
  const second = await validate(ticket);
  assert.equal(first.status, 200, first.text);
  assert.ok(idOf(first.text));
  assert.equal(idOf(second.text), idOf(first.text), 'reused within 30 s (the default)');

  // A node configured not to reuse: every validation a new assertion, for the same ticket.
  const config = loadConfig({
    PUBLIC_URL: ORIGIN,
    DATA_DIR: mkdtempSync(join(tmpdir(), 'opencis-cis1-noreuse-')),
    LOG_LEVEL: 'silent',
    DEMO_DATA: 'false',
    CIS1_ASSERTION_REUSE_SECONDS: '0',
  });
  const strict = await buildApp({
    config,
    db: t.db,
    sealer: testSealer,
    clock,
    logger: false,
    transport: { send: async () => {} },
  });
  try {
    const ids = new Set<string | undefined>();
    for (let i = 0; i < 3; i++) {
      const res = await strict.inject({
        method: 'POST',
        url: '/cis1/validate',
        headers: { 'content-type': 'application/json', ...basicAuth(basic.clientId, basic.secret) },
        payload: JSON.stringify({ ticket }),
      });
      assert.equal(res.statusCode, 200, res.body);
      ids.add(idOf(res.body));
    }
    assert.equal(ids.size, 3, 'signed afresh each time');
  } finally {
    await strict.close();
  }
  assert.throws(() => loadConfig({ CIS1_ASSERTION_REUSE_SECONDS: '31' }), /CIS1_ASSERTION_REUSE_SECONDS/);
});
