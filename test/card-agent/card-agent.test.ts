import 'reflect-metadata';
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { createPublicKey, randomBytes, verify, type webcrypto, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as x509 from '@peculiar/x509';
import pkcs11js from 'pkcs11js';
import { type RunningCardAgent, startCardAgent } from '../../src/card-agent/main.ts';
import { AUTHENTICATION_LABEL, openPkcs11Module } from '../../src/card-agent/token.ts';
import { cardLoginMessage } from '../../src/domain/credentials/card-login.ts';

// A throwaway SoftHSM2 for this file. SOFTHSM2_CONF must be set before the module is first initialised.
const dir = mkdtempSync(join(tmpdir(), 'opencis-card-agent-'));
mkdirSync(join(dir, 'tokens'));
writeFileSync(
  join(dir, 'softhsm2.conf'),
  `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`,
);
process.env.SOFTHSM2_CONF = join(dir, 'softhsm2.conf');

const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const CARD_LABEL = 'OpenCIS test card';
const TRANSPORT_SO_PIN = '24681357';
const ORIGIN = 'http://localhost:3000';
const PASSCODE = '482915';
const NEW_PASSCODE = '7305162';
const USER_ID = '555000000011';

// ---------------------------------------------------------------------------------------------------------------
// A stand-in for the three OpenCIS server endpoints the agent calls, with a throwaway CA.

type GrantAction = 'issue' | 'set_passcode' | 'unlock';

interface CardEventBody {
  tokenSerial: string;
  event: string;
  certificate: string | null;
}

const standin = {
  url: '',
  grants: new Map<string, { action: GrantAction; userId: string }>(),
  cards: new Map<string, { unblockSecret: string }>(),
  pendingCertificates: new Map<string, { tokenSerial: string; userId: string }>(),
  issuedKeys: [] as Buffer[],
  events: [] as CardEventBody[],
  bodies: [] as string[],
  secrets: [] as string[],
};
let caKeys: webcrypto.CryptoKeyPair;
let caCertificate: x509.X509Certificate;
let closeStandin: () => Promise<void>;

function newGrant(action: GrantAction): string {
  const grant = randomBytes(24).toString('base64url');
  standin.grants.set(grant, { action, userId: USER_ID });
  standin.secrets.push(grant);
  return grant;
}

async function issueCertificate(spki: Buffer, userId: string): Promise<Buffer> {
  const rsa = createPublicKey({ key: spki, format: 'der', type: 'spki' }).asymmetricKeyType === 'rsa';
  const publicKey = await crypto.subtle.importKey(
    'spki',
    spki,
    rsa ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } : { name: 'ECDSA', namedCurve: 'P-256' },
    true,
    ['verify'],
  );
  const now = Date.now();
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8).toString('hex'),
    subject: `CN=${userId}, O=OpenCIS test`,
    issuer: caCertificate.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 2 * 365 * 86_400_000),
    publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
  });
  return Buffer.from(certificate.rawData);
}

function reply(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function standinHandler(req: IncomingMessage, res: ServerResponse): Promise<void> {
  let text = '';
  for await (const chunk of req) text += chunk;
  standin.bodies.push(text);
  const body = JSON.parse(text) as Record<string, string>;
  if (req.url === '/api/v1/card-agent/redeem') {
    const grant = standin.grants.get(body.grant!);
    if (!grant) return reply(res, 404, { error: { code: 'card_grant.not_found', message: 'No such grant.' } });
    standin.grants.delete(body.grant!);
    if (grant.action === 'issue') {
      const unblockSecret = randomBytes(12).toString('hex');
      standin.secrets.push(unblockSecret);
      standin.cards.set(body.tokenSerial!, { unblockSecret });
      standin.pendingCertificates.set(body.grant!, { tokenSerial: body.tokenSerial!, userId: grant.userId });
      return reply(res, 200, {
        action: 'issue',
        userId: grant.userId,
        unblockSecret,
        transportSoPin: TRANSPORT_SO_PIN,
      });
    }
    const card = standin.cards.get(body.tokenSerial!);
    if (!card) return reply(res, 409, { error: { code: 'card.unknown', message: 'Card not issued here.' } });
    return reply(res, 200, { action: grant.action, userId: grant.userId, unblockSecret: card.unblockSecret });
  }
  if (req.url === '/api/v1/card-agent/certificate') {
    const pending = standin.pendingCertificates.get(body.grant!);
    if (!pending || pending.tokenSerial !== body.tokenSerial || body.algorithm !== 'ES256') {
      return reply(res, 409, { error: { code: 'card_grant.not_found', message: 'No such issue.' } });
    }
    standin.pendingCertificates.delete(body.grant!);
    const spki = Buffer.from(body.publicKey!, 'base64');
    const proofOk = verify(
      'sha256',
      cardLoginMessage(new URL(standin.url).origin, body.grant!),
      { key: spki, format: 'der', type: 'spki', dsaEncoding: 'ieee-p1363' },
      Buffer.from(body.proof!, 'base64url'),
    );
    if (!proofOk) return reply(res, 400, { error: { code: 'card.proof_invalid', message: 'Bad proof.' } });
    standin.issuedKeys.push(spki);
    const certificate = await issueCertificate(spki, pending.userId);
    return reply(res, 200, { certificate: certificate.toString('base64') });
  }
  if (req.url === '/api/v1/card-agent/events') {
    standin.events.push(body as unknown as CardEventBody);
    return reply(res, 204);
  }
  reply(res, 404, { error: { code: 'request.not_found', message: 'Not here.' } });
}

// ---------------------------------------------------------------------------------------------------------------
// Talking to the agent like a browser page (node:http, so Host and Origin can be set freely)

interface AgentJson {
  error?: { code: string; message: string; retriesLeft?: number };
  [key: string]: unknown;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  json: AgentJson;
}

function call(
  agent: { port: number },
  method: string,
  path: string,
  options: {
    body?: unknown;
    raw?: string;
    origin?: string | null;
    host?: string;
    headers?: Record<string, string>;
  } = {},
): Promise<Answer> {
  const payload = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const headers: Record<string, string> = {
    host: options.host ?? `127.0.0.1:${agent.port}`,
    ...(options.origin === null ? {} : { origin: options.origin ?? ORIGIN }),
    ...(payload === undefined
      ? {}
      : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
    ...options.headers,
  };
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: agent.port, method, path, headers }, (res) => {
      let text = '';
      res.on('data', (chunk) => {
        text += chunk;
      });
      res.on('end', () => {
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          json: text ? (JSON.parse(text) as AgentJson) : {},
        });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const challenge = () => randomBytes(32).toString('base64url');

function sign(agent: RunningCardAgent, passcode: string, withChallenge = challenge()): Promise<Answer> {
  return call(agent, 'POST', '/v1/sign', { body: { challenge: withChallenge, passcode } });
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out waiting for ${what}`);
}

// ---------------------------------------------------------------------------------------------------------------

let agent: RunningCardAgent;
const agentLog: string[] = [];
let tokenSerial: string;

before(async () => {
  execFileSync('softhsm2-util', [
    '--init-token',
    '--free',
    '--label',
    CARD_LABEL,
    '--so-pin',
    TRANSPORT_SO_PIN,
    '--pin',
    '11111111',
  ]);
  caKeys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  caCertificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=OpenCIS Test Card CA',
    keys: caKeys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
  });
  const server = createServer((req, res) => {
    standinHandler(req, res).catch((err: unknown) => reply(res, 500, { error: { code: 'x', message: String(err) } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  standin.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  closeStandin = () => new Promise((resolve) => server.close(() => resolve()));

  agent = await startCardAgent({
    modulePath: MODULE,
    tokenLabel: CARD_LABEL,
    port: 0,
    allowedOrigins: [ORIGIN, 'https://opencis.example'],
    serverUrl: standin.url,
    log: (line) => agentLog.push(line),
  });
});

after(async () => {
  await agent?.close();
  await closeStandin?.();
  rmSync(dir, { recursive: true, force: true });
});

test('status shows the card in the reader, unlocked, with no certificate before issue', async () => {
  const status = await call(agent, 'GET', '/v1/status');
  assert.equal(status.status, 200);
  assert.equal(status.json.card, 'present');
  assert.equal(status.json.label, CARD_LABEL);
  assert.match(String(status.json.tokenSerial), /^[0-9a-f]{16}$/);
  assert.equal(status.json.locked, false);
  assert.equal(status.json.retriesLeft, 3);
  assert.equal(status.json.certificate, null);
  assert.equal(status.headers['access-control-allow-origin'], ORIGIN);
  assert.equal(status.headers.vary, 'Origin');
  tokenSerial = String(status.json.tokenSerial);
});

test('a card that holds no OpenCIS key cannot sign (409 card.not_issued) and no try is used', async () => {
  const answer = await sign(agent, '11111111');
  assert.equal(answer.status, 409);
  assert.equal(answer.json.error?.code, 'card.not_issued');
  assert.equal((await call(agent, 'GET', '/v1/status')).json.retriesLeft, 3);
});

test('issue: the key pair is generated on the card, the server certifies it on proof of possession, the certificate is stored on the card', async () => {
  const answer = await call(agent, 'POST', '/v1/cards/issue', { body: { grant: newGrant('issue') } });
  assert.equal(answer.status, 200, JSON.stringify(answer.json));
  assert.equal(answer.json.tokenSerial, tokenSerial);
  const certificate = new X509Certificate(Buffer.from(String(answer.json.certificate), 'base64'));
  assert.match(certificate.subject, new RegExp(USER_ID));
  assert.ok(certificate.checkIssued(new X509Certificate(Buffer.from(caCertificate.rawData))));
  assert.equal(standin.issuedKeys.length, 1, 'the stand-in verified the proof and issued once');
  assert.ok(certificate.publicKey.export({ type: 'spki', format: 'der' }).equals(standin.issuedKeys[0]!));
  const status = await call(agent, 'GET', '/v1/status');
  assert.equal(status.json.certificate, answer.json.certificate);
});

test('weak and malformed passcodes are refused before the grant is spent', async () => {
  const grant = newGrant('set_passcode');
  for (const weak of ['000000', '123456', '121212']) {
    const answer = await call(agent, 'POST', '/v1/cards/passcode', { body: { grant, passcode: weak } });
    assert.equal(answer.status, 400, weak);
    assert.equal(answer.json.error?.code, 'card.passcode_weak', weak);
    assert.match(answer.json.error?.message ?? '', /too easy to guess/);
  }
  for (const malformed of ['12a456', '12345', '123456789']) {
    const answer = await call(agent, 'POST', '/v1/cards/passcode', { body: { grant, passcode: malformed } });
    assert.equal(answer.status, 400, malformed);
    assert.equal(answer.json.error?.code, 'card.passcode_format', malformed);
  }
  assert.ok(standin.grants.has(grant), 'the grant was not redeemed');
  const set = await call(agent, 'POST', '/v1/cards/passcode', { body: { grant, passcode: PASSCODE } });
  assert.equal(set.status, 200, JSON.stringify(set.json));
  assert.deepEqual(set.json, { ok: true });
  assert.ok(!standin.grants.has(grant));
});

test('the card signs the challenge bound to the page origin; the signature verifies against its certificate', async () => {
  const c = challenge();
  const answer = await sign(agent, PASSCODE, c);
  assert.equal(answer.status, 200, JSON.stringify(answer.json));
  assert.equal(answer.json.algorithm, 'ES256');
  const certificate = new X509Certificate(Buffer.from(String(answer.json.certificate), 'base64'));
  const signature = Buffer.from(String(answer.json.signature), 'base64url');
  assert.equal(signature.length, 64);
  const key = { key: certificate.publicKey, dsaEncoding: 'ieee-p1363' as const };
  assert.ok(verify('sha256', cardLoginMessage(ORIGIN, c), key, signature));
  assert.ok(!verify('sha256', cardLoginMessage('https://opencis.example', c), key, signature), 'bound to the origin');

  // The page's own origin goes into the signed message, whichever allowed origin asked.
  const other = await call(agent, 'POST', '/v1/sign', {
    origin: 'https://opencis.example',
    body: { challenge: c, passcode: PASSCODE },
  });
  assert.ok(
    verify(
      'sha256',
      cardLoginMessage('https://opencis.example', c),
      key,
      Buffer.from(String(other.json.signature), 'base64url'),
    ),
  );
});

test('the private key lives on the card: private, sensitive, never extractable, its value unreadable', async () => {
  await openPkcs11Module(MODULE).withCard(CARD_LABEL, (card) => {
    card.login('user', PASSCODE);
    const keys = card.findObjects([
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_LABEL, value: AUTHENTICATION_LABEL },
    ]);
    assert.equal(keys.length, 1, 'one OpenCIS key on the card');
    const [token, priv, sensitive, extractable, alwaysSensitive, neverExtractable, signs] = card.attributes(keys[0]!, [
      pkcs11js.CKA_TOKEN,
      pkcs11js.CKA_PRIVATE,
      pkcs11js.CKA_SENSITIVE,
      pkcs11js.CKA_EXTRACTABLE,
      pkcs11js.CKA_ALWAYS_SENSITIVE,
      pkcs11js.CKA_NEVER_EXTRACTABLE,
      pkcs11js.CKA_SIGN,
    ]);
    assert.deepEqual(
      [token, priv, sensitive, extractable, alwaysSensitive, neverExtractable, signs].map((b) => b![0]),
      [1, 1, 1, 0, 1, 1, 1],
    );
    assert.throws(() => card.attributes(keys[0]!, [pkcs11js.CKA_VALUE]), /CKR_ATTRIBUTE_SENSITIVE/);
  });
});

test('malformed passcodes and challenges are refused without reaching the card or using a try', async () => {
  for (const malformed of ['12a456', '12345', '123456789', '']) {
    const answer = await sign(agent, malformed);
    assert.equal(answer.status, 400, malformed);
    assert.equal(answer.json.error?.code, 'card.passcode_format');
  }
  for (const bad of ['short', `${challenge()}=`, `${challenge().slice(0, 42)}+`, '']) {
    const answer = await sign(agent, PASSCODE, bad);
    assert.equal(answer.status, 400, bad);
    assert.equal(answer.json.error?.code, 'agent.invalid_challenge');
  }
  const missing = await call(agent, 'POST', '/v1/sign', { body: { challenge: challenge() } });
  assert.equal(missing.status, 400);
  assert.equal(missing.json.error?.code, 'agent.invalid_request');
  assert.equal((await call(agent, 'GET', '/v1/status')).json.retriesLeft, 3);
  assert.equal(standin.events.length, 0);
});

test('a wrong passcode costs one try; the right one restores all three', async () => {
  const wrong = await sign(agent, '999999');
  assert.equal(wrong.status, 401);
  assert.equal(wrong.json.error?.code, 'card.passcode_incorrect');
  assert.equal(wrong.json.error?.retriesLeft, 2);
  assert.equal((await call(agent, 'GET', '/v1/status')).json.retriesLeft, 2);
  assert.equal((await sign(agent, PASSCODE)).status, 200);
  assert.equal((await call(agent, 'GET', '/v1/status')).json.retriesLeft, 3);
  await until(() => standin.events.length === 1, 'the wrong passcode to be reported');
  standin.events.length = 0;
});

test('three wrong passcodes lock the card (401, 401, 423); then even the right passcode gets 423; the server is told', async () => {
  const statuses = [];
  for (const guess of ['111111', '222222', '333333']) statuses.push(await sign(agent, guess));
  assert.deepEqual(
    statuses.map((s) => [s.status, s.json.error?.code, s.json.error?.retriesLeft]),
    [
      [401, 'card.passcode_incorrect', 2],
      [401, 'card.passcode_incorrect', 1],
      [423, 'card.locked', undefined],
    ],
  );
  const right = await sign(agent, PASSCODE);
  assert.equal(right.status, 423);
  assert.equal(right.json.error?.code, 'card.locked');
  const status = await call(agent, 'GET', '/v1/status');
  assert.equal(status.json.locked, true);
  assert.equal(status.json.retriesLeft, 0);

  await until(() => standin.events.length === 5, 'the events to be reported');
  assert.deepEqual(standin.events.map((e) => e.event).sort(), [
    'locked',
    'locked',
    'passcode_incorrect',
    'passcode_incorrect',
    'passcode_incorrect',
  ]);
  for (const e of standin.events) {
    assert.equal(e.tokenSerial, tokenSerial);
    assert.equal(e.certificate, status.json.certificate);
  }
});

test('the count is kept on the card itself: a second agent sees the card locked', async () => {
  const second = await startCardAgent({
    modulePath: MODULE,
    tokenLabel: CARD_LABEL,
    port: 0,
    allowedOrigins: [ORIGIN],
    serverUrl: standin.url,
    log: () => {},
  });
  try {
    assert.equal((await call(second, 'GET', '/v1/status')).json.locked, true);
  } finally {
    await second.close();
  }
});

test('an unlock grant sets a new passcode and unlocks the card; the old passcode no longer works', async () => {
  const unlock = await call(agent, 'POST', '/v1/cards/passcode', {
    body: { grant: newGrant('unlock'), passcode: NEW_PASSCODE },
  });
  assert.equal(unlock.status, 200, JSON.stringify(unlock.json));
  const status = await call(agent, 'GET', '/v1/status');
  assert.equal(status.json.locked, false);
  assert.equal(status.json.retriesLeft, 3);
  assert.equal((await sign(agent, NEW_PASSCODE)).status, 200);
  assert.equal((await sign(agent, PASSCODE)).status, 401);
  assert.equal((await sign(agent, NEW_PASSCODE)).status, 200);
});

test('server errors reach the page with the server’s code; a grant of the wrong kind is refused', async () => {
  const unknown = await call(agent, 'POST', '/v1/cards/passcode', {
    body: { grant: 'not-a-grant', passcode: PASSCODE },
  });
  assert.equal(unknown.status, 404);
  assert.deepEqual(unknown.json, { error: { code: 'card_grant.not_found', message: 'No such grant.' } });
  const wrongKind = await call(agent, 'POST', '/v1/cards/issue', { body: { grant: newGrant('unlock') } });
  assert.equal(wrongKind.status, 409);
  assert.equal(wrongKind.json.error?.code, 'agent.grant_action_mismatch');
});

test('only allowed origins may use the agent: no Origin, another Origin or "null" get 403', async () => {
  for (const origin of [null, 'http://evil.example', 'http://localhost:3001', 'null', `${ORIGIN}/`]) {
    for (const [method, path] of [
      ['GET', '/v1/status'],
      ['POST', '/v1/sign'],
    ] as const) {
      const answer = await call(agent, method, path, {
        origin,
        ...(method === 'POST' ? { body: { challenge: challenge(), passcode: NEW_PASSCODE } } : {}),
      });
      assert.equal(answer.status, 403, `${method} ${path} from ${origin}`);
      assert.equal(answer.json.error?.code, 'agent.origin_not_allowed');
      assert.equal(answer.headers['access-control-allow-origin'], undefined);
    }
  }
  assert.equal((await call(agent, 'GET', '/v1/status')).json.retriesLeft, 3, 'refused requests never reached the card');
});

test('a request addressed to another host name is refused (DNS rebinding)', async () => {
  for (const host of ['evil.example', `evil.example:${agent.port}`, `127.0.0.1:${agent.port + 1}`, '127.0.0.1']) {
    const answer = await call(agent, 'GET', '/v1/status', { host });
    assert.equal(answer.status, 403, host);
    assert.equal(answer.json.error?.code, 'agent.host_not_allowed');
  }
  assert.equal((await call(agent, 'GET', '/v1/status', { host: `localhost:${agent.port}` })).status, 200);
});

test('CORS preflight is answered for allowed origins only', async () => {
  const preflight = (origin: string) =>
    call(agent, 'OPTIONS', '/v1/sign', {
      origin,
      headers: {
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
        'access-control-request-private-network': 'true',
      },
    });
  const allowed = await preflight(ORIGIN);
  assert.equal(allowed.status, 204);
  assert.equal(allowed.headers['access-control-allow-origin'], ORIGIN);
  assert.equal(allowed.headers.vary, 'Origin');
  assert.equal(allowed.headers['access-control-allow-methods'], 'GET, POST');
  assert.equal(allowed.headers['access-control-allow-headers'], 'content-type');
  assert.equal(allowed.headers['access-control-allow-private-network'], 'true');
  assert.ok(Number(allowed.headers['access-control-max-age']) > 0);
  const refused = await preflight('http://evil.example');
  assert.equal(refused.status, 403);
  assert.equal(refused.json.error?.code, 'agent.origin_not_allowed');
  assert.equal(refused.headers['access-control-allow-origin'], undefined);
});

test('JSON bodies only, at most 16 KiB; unknown paths and methods get the error shape', async () => {
  const big = await call(agent, 'POST', '/v1/sign', {
    body: { challenge: challenge(), passcode: NEW_PASSCODE, padding: 'x'.repeat(17 * 1024) },
  });
  assert.equal(big.status, 413);
  assert.equal(big.json.error?.code, 'agent.body_too_large');
  const badJson = await call(agent, 'POST', '/v1/sign', { raw: '{"challenge":' });
  assert.equal(badJson.status, 400);
  assert.equal(badJson.json.error?.code, 'agent.malformed_json');
  const form = await call(agent, 'POST', '/v1/sign', {
    raw: 'passcode=1',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  assert.equal(form.status, 415);
  assert.equal(form.json.error?.code, 'agent.unsupported_media_type');
  const notFound = await call(agent, 'GET', '/v1/keys');
  assert.equal(notFound.status, 404);
  assert.equal(notFound.json.error?.code, 'agent.not_found');
  const wrongMethod = await call(agent, 'GET', '/v1/sign');
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.json.error?.code, 'agent.method_not_allowed');
  assert.equal((await call(agent, 'GET', '/v1/status')).json.retriesLeft, 3);
});

test('the agent refuses to listen anywhere but 127.0.0.1', async () => {
  for (const host of ['0.0.0.0', '::', '::1', 'localhost', '192.168.1.10']) {
    await assert.rejects(
      startCardAgent({ modulePath: MODULE, host, port: 0, allowedOrigins: [ORIGIN], serverUrl: standin.url }),
      /only on 127\.0\.0\.1/,
      host,
    );
  }
});

test('with no card in the reader: status says absent, signing answers 409 card.absent', async () => {
  const noCard = await startCardAgent({
    modulePath: MODULE,
    tokenLabel: 'Card not inserted',
    port: 0,
    allowedOrigins: [ORIGIN],
    serverUrl: standin.url,
    log: () => {},
  });
  try {
    const status = await call(noCard, 'GET', '/v1/status');
    assert.equal(status.status, 200);
    assert.deepEqual(status.json, {
      card: 'absent',
      tokenSerial: null,
      label: null,
      locked: false,
      retriesLeft: 0,
      certificate: null,
    });
    const answer = await sign(noCard, NEW_PASSCODE);
    assert.equal(answer.status, 409);
    assert.equal(answer.json.error?.code, 'card.absent');
  } finally {
    await noCard.close();
  }
});

// ---------------------------------------------------------------------------------------------------------------
// The command

function runAgentCommand(
  args: string[],
  stdin?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/opencis-card-agent.js', ...args], { env: process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}

function waitForListening(child: ChildProcessWithoutNullStreams): Promise<string> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      const url = /^opencis-card-agent listening on (http:\/\/127\.0\.0\.1:\d+)$/m.exec(stdout)?.[1];
      if (url) resolve(url);
    });
    child.on('close', (code) => reject(new Error(`exited ${code} before listening: ${stdout}`)));
  });
}

test('opencis-card-agent --help exits 0; bad usage exits 2 with a clear message', async () => {
  const help = await runAgentCommand(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--allowed-origin ORIGIN/);
  assert.match(help.stdout, /init-virtual-card/);
  const bad = await runAgentCommand(['--server', standin.url, '--allowed-origin', 'http://localhost:3000/login']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--allowed-origin \(0\): must be an origin/);
});

test('the command prints its listening line, answers, and stops cleanly on SIGTERM', async () => {
  const child = spawn(
    process.execPath,
    [
      'bin/opencis-card-agent.js',
      '--port',
      '0',
      '--token-label',
      CARD_LABEL,
      '--allowed-origin',
      ORIGIN,
      '--server',
      standin.url,
    ],
    { env: { ...process.env, OPENCIS_AGENT_MODULE: MODULE } },
  );
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const url = await waitForListening(child);
  const status = await call({ port: Number(new URL(url).port) }, 'GET', '/v1/status');
  assert.equal(status.json.tokenSerial, tokenSerial);
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});

test('init-virtual-card creates a blank virtual smartcard from the SO PIN on stdin; an RSA card signs RS256', async () => {
  const created = await runAgentCommand(['init-virtual-card', '--label', 'RSA card', '--module', MODULE], '13572468\n');
  assert.equal(created.code, 0, created.stderr);
  const serial = created.stdout.trim();
  assert.match(serial, /^[0-9a-f]{16}$/);
  const again = await runAgentCommand(['init-virtual-card', '--label', 'RSA card'], '13572468\n');
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already exists/);

  const rsaAgent = await startCardAgent({
    modulePath: MODULE,
    tokenLabel: 'RSA card',
    port: 0,
    allowedOrigins: [ORIGIN],
    serverUrl: standin.url,
    log: () => {},
  });
  try {
    const blank = await call(rsaAgent, 'GET', '/v1/status');
    assert.equal(blank.json.tokenSerial, serial);
    assert.equal((await sign(rsaAgent, '24680135')).json.error?.code, 'card.not_issued');

    // A card personalised by other software, with an RSA key: the agent signs with CKM_SHA256_RSA_PKCS.
    await openPkcs11Module(MODULE).withCard('RSA card', (card) => {
      card.login('so', '13572468');
      card.initUserPin('24680135');
    });
    const tool = (...args: string[]) =>
      execFileSync('pkcs11-tool', ['--module', MODULE, '--token-label', 'RSA card', ...args], { stdio: 'pipe' });
    tool('--login', '--pin', '24680135', '--keypairgen', '--key-type', 'rsa:2048', '--id', '02', '--label', 'RSA key');
    tool('--read-object', '--type', 'pubkey', '--id', '02', '-o', join(dir, 'rsa.pub.der'));
    const certificate = await issueCertificate(readFileSync(join(dir, 'rsa.pub.der')), USER_ID);
    writeFileSync(join(dir, 'rsa.crt.der'), certificate);
    tool('--login', '--pin', '24680135', '--write-object', join(dir, 'rsa.crt.der'), '--type', 'cert', '--id', '02');

    const c = challenge();
    const answer = await sign(rsaAgent, '24680135', c);
    assert.equal(answer.status, 200, JSON.stringify(answer.json));
    assert.equal(answer.json.algorithm, 'RS256');
    assert.ok(
      verify(
        'sha256',
        cardLoginMessage(ORIGIN, c),
        new X509Certificate(certificate).publicKey,
        Buffer.from(String(answer.json.signature), 'base64url'),
      ),
    );
  } finally {
    await rsaAgent.close();
  }
});

test('no passcode, PIN, grant or signature is logged, and no passcode ever reaches the server', () => {
  assert.ok(agentLog.length > 20, 'requests were logged');
  assert.ok(agentLog.some((l) => /^POST \/v1\/sign 401 card\.passcode_incorrect \d+ms$/.test(l)));
  const log = agentLog.join('\n');
  for (const secret of [PASSCODE, NEW_PASSCODE, TRANSPORT_SO_PIN, ...standin.secrets]) {
    assert.ok(!log.includes(secret), 'a secret was logged');
  }
  const sentToServer = standin.bodies.join('\n');
  for (const passcode of [PASSCODE, NEW_PASSCODE, '24680135']) assert.ok(!sentToServer.includes(passcode));
});
