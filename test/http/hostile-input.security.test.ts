import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { registerClient } from '../../src/services/clients.ts';
import { registerPerson } from '../../src/services/people.ts';
import { startSession } from '../../src/services/sessions.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { TestClock, testSealer } from '../support/context.ts';
import { backend, createTestDatabase } from '../support/db.ts';
import { databaseDigest as digestOf, REFUSAL_TABLES } from '../support/digest.ts';
import { saveTestOrganisations } from '../support/organisations.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/**
 * Hostile text through every door (issue 15, finding 8; acceptance 7): a NUL, a lone surrogate, percent-encoded bytes
 * that are not UTF-8 and raw bytes that are not UTF-8, in the path, the query, JSON and form bodies (values and keys) of
 * every route the app has, and in the parameters of every OpenID Connect endpoint. Each gets a 4xx with a catalogued
 * code (OAuth's own error at the OIDC endpoints) — never a 500, never `server_error` — and no row changes anywhere.
 * Also: error bodies of JSON routes are JSON whatever Accept says, and JSON nested too deeply is refused.
 */
let s: TestServer;
let cookie: string;
let csrf: string;
let managerId: string;
let rp: { clientId: string; secret: string };

before(async () => {
  s = await startTestServer({ CARD_TRANSPORT_SO_PIN: '87654321' });
  const op = s.operator();
  await saveTestOrganisations(op);
  const manager = await createPosition(op, 'RR8', { name: 'RA Manager', jobRoles: ['R5080'] });
  const person = await registerPerson(op, {
    givenName: 'Hostile',
    familyName: 'Input',
    dateOfBirth: '1970-01-01',
    identityAssuranceLevel: 3,
    email: 'hostile.input@example.nhs.uk',
  });
  managerId = person.userId;
  await assignRoleProfile(op, { userId: managerId, positionId: manager.positionId, startDate: '2020-01-01' });
  // An RA Manager at AAL3 with a CSRF token: every request below gets past sign-in and CSRF, so nothing but the value
  // itself can be the reason it is refused.
  const { token } = await unitOfWork(s.t.db)((tx) =>
    startSession(tx, op, { userId: managerId, aal: 3, amr: ['SMARTCARD'], authenticatorId: 'card:test' }, null, {
      ip: null,
      userAgent: null,
    }),
  );
  const page = await s.app.inject({ method: 'GET', url: '/signin' });
  const csrfCookie = page.cookies.find((c) => c.name === 'opencis_csrf')!;
  csrf = /data-csrf="([^"]+)"/.exec(page.body)![1]!;
  cookie = `opencis_csrf=${csrfCookie.value}; opencis_session=${token}`;
  const registered = await registerClient(op, {
    name: 'Hostile RP',
    redirectUris: ['http://localhost:9/cb'],
    postLogoutRedirectUris: ['http://localhost:9/out'],
    tokenEndpointAuthMethod: 'client_secret_post',
  });
  rp = { clientId: registered.client.clientId, secret: registered.clientSecret! };
});
after(async () => {
  await s?.close();
});

const databaseDigest = (except: readonly string[] = []) => digestOf(s.t.db, except);

/** Every route of the app, from Fastify's own route tree: [method, path] with `:params` and `*` as registered. */
function routes(): [string, string][] {
  const out: [string, string][] = [];
  const stack: { depth: number; path: string }[] = [];
  for (const line of s.app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^([│ ├└─\u00a0]*)(\S.*?) \(([^)]+)\)$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length;
    while (stack.length > 0 && stack.at(-1)!.depth >= depth) stack.pop();
    const path = `${stack.at(-1)?.path ?? ''}${m[2]}`;
    stack.push({ depth, path });
    for (const method of m[3]!.split(', ')) if (['GET', 'POST', 'DELETE'].includes(method)) out.push([method, path]);
  }
  return out;
}

function errorCode(res: LightMyRequestResponse): string | undefined {
  try {
    return (JSON.parse(res.body) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

const NUL = 'x\u0000y';
const SURROGATE = 'x\ud800y';

test(`[${backend}] NUL, lone surrogates and bad encodings in any parameter of any route: 400 request.invalid_text, nothing written`, async () => {
  const all = routes().filter(([, path]) => !path.startsWith('/oidc'));
  assert.ok(all.length > 100, `the route tree lists ${all.length} routes`);
  const digest = await databaseDigest();
  const headers = { cookie, 'csrf-token': csrf };
  const failures: string[] = [];
  let cells = 0;
  const expect = (label: string, res: LightMyRequestResponse) => {
    cells++;
    // The OCSP responder refuses every content type but OCSP's before reading a byte (415): that refusal comes first.
    const [status, code] = label.startsWith('POST /pki/ocsp ')
      ? [415, 'request.unsupported_media_type']
      : [400, 'request.invalid_text'];
    if (res.statusCode !== status || errorCode(res) !== code) {
      failures.push(`${label} → ${res.statusCode} ${res.body.replace(/\s+/g, ' ').slice(0, 120)}`);
    }
  };
  for (const [method, path] of all) {
    const m = method as 'GET' | 'POST' | 'DELETE';
    const plain = path
      .replace(/:userId/g, managerId)
      .replace(/:[A-Za-z]+/g, '1')
      .replace('*', 'x');
    // in a path parameter
    if (path.includes(':')) {
      expect(
        `${m} ${path} [param NUL]`,
        await s.app.inject({ method: m, url: path.replace(/:[A-Za-z]+/g, 'a%00b'), headers }),
      );
    }
    // in the query: NUL, an encoded surrogate, bytes that are not UTF-8, a lone surrogate's escape in a key
    for (const [what, query] of [
      ['query NUL', 'limit=5&reason=a%00b'],
      ['query encoded surrogate', 'familyName=%ED%A0%80'],
      ['query not UTF-8', 'after=%FF%FE'],
      ['query overlong', 'status=%C0%80'],
      ['query key NUL', 'a%00=1'],
    ] as const) {
      expect(`${m} ${path} [${what}]`, await s.app.inject({ method: m, url: `${plain}?${query}`, headers }));
    }
    if (m !== 'POST') continue;
    // in a JSON body: a value, a nested value, a key, a lone surrogate, raw bytes that are not UTF-8
    const json = { ...headers, 'content-type': 'application/json' };
    for (const [what, payload] of [
      ['json NUL', JSON.stringify({ userId: managerId, reason: NUL, email: NUL, code: NUL })],
      ['json nested NUL', JSON.stringify({ documents: [{ type: 'passport', lastChars: NUL }] })],
      ['json key NUL', JSON.stringify({ [NUL]: 'x' })],
      ['json surrogate', JSON.stringify({ familyName: SURROGATE })],
      ['json escaped surrogate', '{"familyName":"\\udc00"}'],
    ] as const) {
      expect(`${m} ${path} [${what}]`, await s.app.inject({ method: m, url: plain, headers: json, payload }));
    }
    expect(
      `${m} ${path} [json not UTF-8]`,
      await s.app.inject({
        method: m,
        url: plain,
        headers: json,
        payload: Buffer.concat([Buffer.from('{"familyName":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]),
      }),
    );
    // in a form body (the console's and portal's forms)
    const form = { cookie, 'content-type': 'application/x-www-form-urlencoded' };
    for (const [what, payload] of [
      ['form NUL', `_csrf=${encodeURIComponent(csrf)}&reason=a%00b&userId=${managerId}`],
      ['form not UTF-8', `_csrf=${encodeURIComponent(csrf)}&familyName=%FF`],
    ] as const) {
      expect(`${m} ${path} [${what}]`, await s.app.inject({ method: m, url: plain, headers: form, payload }));
    }
  }
  console.log(`# ${cells} hostile requests over ${all.length} routes`);
  assert.deepEqual(failures, [], `${failures.length} of ${cells} were not refused as invalid text`);
  assert.equal(await databaseDigest(), digest, 'no row changed');
});

test(`[${backend}] self-service enrolment with a NUL in the email address: 400, not a 500`, async () => {
  // Found by the sweep above on the unchanged code: the address reached SQL unchecked (22021 → internal.error).
  const digest = await databaseDigest();
  for (const [type, payload] of [
    ['application/json', JSON.stringify({ email: `a${NUL}@example.nhs.uk`, code: '12345678', niNumber: 'QQ123456C' })],
    ['application/x-www-form-urlencoded', `_csrf=${encodeURIComponent(csrf)}&email=a%00%40example.nhs.uk&code=1`],
  ] as const) {
    const res = await s.app.inject({
      method: 'POST',
      url: '/enrol/verify',
      headers: { cookie, 'csrf-token': csrf, 'content-type': type },
      payload,
    });
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(errorCode(res), 'request.invalid_text');
  }
  assert.equal(await databaseDigest(), digest);
});

test(`[${backend}] JSON nested deeper than any form of OpenCIS: 400 request.too_deep, nothing written`, async () => {
  const digest = await databaseDigest();
  const deep = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
  for (const [url, payload] of [
    [
      '/api/v1/clients',
      `{"name":"Deep","redirectUris":["https://deep.example/cb"],"jwks":{"keys":[${deep(100_000)}]}}`,
    ],
    ['/api/v1/people/search', `{"familyName":${'['.repeat(200_000)}${']'.repeat(200_000)}}`],
    ['/signin/webauthn/verify', `{"challengeId":"x","response":{"clientExtensionResults":${deep(50)}}}`],
    ['/cis1/session/event', deep(40)],
  ] as const) {
    const res = await s.app.inject({
      method: 'POST',
      url,
      headers: { cookie, 'csrf-token': csrf, 'content-type': 'application/json' },
      payload,
    });
    assert.equal(res.statusCode, 400, `${url}: ${res.body.slice(0, 200)}`);
    assert.equal(errorCode(res), 'request.too_deep', url);
  }
  assert.equal(await databaseDigest(), digest);
});

// ---------------------------------------------------------------------------------------------------------------
// The OpenID Connect endpoints: OAuth errors, never server_error

interface OAuthAnswer {
  status: number;
  type: string;
  error: string | undefined;
  body: string;
}

async function oidc(
  method: 'GET' | 'POST',
  path: string,
  params: Record<string, string>,
  headers: Record<string, string> = {},
  rawQuery = '',
): Promise<OAuthAnswer> {
  const query = new URLSearchParams(params).toString() + rawQuery;
  const res = await s.app.inject({
    method,
    url: method === 'GET' ? `/oidc${path}?${query}` : `/oidc${path}`,
    headers: method === 'POST' ? { 'content-type': 'application/x-www-form-urlencoded', ...headers } : headers,
    ...(method === 'POST' ? { payload: query } : {}),
  });
  let error: string | undefined;
  try {
    error = (JSON.parse(res.body) as { error?: string }).error;
  } catch {
    error = undefined;
  }
  return { status: res.statusCode, type: String(res.headers['content-type'] ?? ''), error, body: res.body };
}

const authorizeParams = (extra: Record<string, string>) => ({
  client_id: rp.clientId,
  response_type: 'code',
  scope: 'openid',
  redirect_uri: 'http://localhost:9/cb',
  state: 'state-1',
  nonce: 'nonce-1',
  code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
  code_challenge_method: 'S256',
  ...extra,
});

test(`[${backend}] OIDC: a NUL (or other invalid text) in any parameter gets the OAuth error, as JSON, never server_error`, async () => {
  // Failed client authentications count against the address (secrets.security.test.ts): nothing else changes.
  const digest = await databaseDigest(REFUSAL_TABLES);
  const token = (extra: Record<string, string>) => ({
    grant_type: 'authorization_code',
    code: 'code-1',
    redirect_uri: 'http://localhost:9/cb',
    code_verifier: 'x'.repeat(43),
    client_id: rp.clientId,
    client_secret: rp.secret,
    ...extra,
  });
  const own = { token: 'abc', client_id: rp.clientId, client_secret: rp.secret };
  const cases: [string, Promise<OAuthAnswer>, number, string[]][] = [
    // token endpoint (body): an unknown client, an unknown code — as for any value nobody has
    ['token: client_id NUL', oidc('POST', '/access_token', token({ client_id: NUL })), 401, ['invalid_client']],
    ['token: code NUL', oidc('POST', '/access_token', token({ code: NUL })), 400, ['invalid_grant']],
    [
      'token: refresh_token NUL',
      oidc('POST', '/access_token', token({ grant_type: 'refresh_token', refresh_token: NUL })),
      400,
      ['invalid_request', 'invalid_grant', 'unauthorized_client'],
    ],
    ['token: client_secret NUL', oidc('POST', '/access_token', token({ client_secret: NUL })), 401, ['invalid_client']],
    // introspection and revocation (body)
    ['introspect: token NUL', oidc('POST', '/introspect', { ...own, token: NUL }), 200, []],
    ['introspect: client_id NUL', oidc('POST', '/introspect', { ...own, client_id: NUL }), 401, ['invalid_client']],
    ['revoke: token NUL', oidc('POST', '/token/revoke', { ...own, token: NUL }), 200, []],
    ['revoke: client_id NUL', oidc('POST', '/token/revoke', { ...own, client_id: NUL }), 401, ['invalid_client']],
    // query parameters: refused at the door
    [
      'authorize: client_id NUL',
      oidc('GET', '/authorize', authorizeParams({ client_id: NUL })),
      400,
      ['invalid_request'],
    ],
    ['authorize: state NUL', oidc('GET', '/authorize', authorizeParams({ state: NUL })), 400, ['invalid_request']],
    ['authorize: nonce NUL', oidc('GET', '/authorize', authorizeParams({ nonce: NUL })), 400, ['invalid_request']],
    [
      'authorize: login_hint NUL',
      oidc('GET', '/authorize', authorizeParams({ login_hint: NUL })),
      400,
      ['invalid_request'],
    ],
    [
      'authorize: redirect_uri NUL',
      oidc('GET', '/authorize', authorizeParams({ redirect_uri: `http://localhost:9/cb${NUL}` })),
      400,
      ['invalid_request'],
    ],
    [
      'authorize: state an encoded surrogate',
      oidc('GET', '/authorize', authorizeParams({}), {}, '&state=%ED%A0%80'),
      400,
      ['invalid_request'],
    ],
    [
      'authorize: nonce not UTF-8',
      oidc('GET', '/authorize', authorizeParams({}), {}, '&nonce=%FF'),
      400,
      ['invalid_request'],
    ],
    ['end session: client_id NUL', oidc('GET', '/connect/endSession', { client_id: NUL }), 400, ['invalid_request']],
    [
      'end session: state NUL',
      oidc('GET', '/connect/endSession', { client_id: rp.clientId, state: NUL }),
      400,
      ['invalid_request'],
    ],
    ['userinfo: access_token NUL', oidc('GET', '/userinfo', { access_token: NUL }), 400, ['invalid_request']],
    [
      'userinfo: bearer that is nobody’s',
      oidc('GET', '/userinfo', {}, { authorization: 'Bearer a%00b' }),
      401,
      ['invalid_token'],
    ],
    ['discovery: query NUL', oidc('GET', '/.well-known/openid-configuration', { x: NUL }), 400, ['invalid_request']],
    // an unknown path: OAuth-shaped JSON, not Koa's plain-text "Not Found"
    ['unknown path', oidc('POST', '/authorize', authorizeParams({})), 404, ['invalid_request']],
  ];
  for (const [label, answer, status, errors] of cases) {
    const a = await answer;
    assert.equal(a.status, status, `${label}: ${a.status} ${a.body.slice(0, 200)}`);
    if (label.startsWith('revoke: token')) {
      // RFC 7009 §2.2: revoking a token nobody has is a success with an empty body.
      assert.equal(a.body, '', label);
      continue;
    }
    assert.match(a.type, /^application\/json/, label);
    if (errors.length > 0) assert.ok(errors.includes(a.error ?? ''), `${label}: ${a.error}`);
    else assert.equal((JSON.parse(a.body) as { active?: boolean }).active, false, label);
    assert.notEqual(a.error, 'server_error', label);
  }
  // A person's browser at the authorization endpoint gets a page saying what is wrong (still 400, never a 500).
  const page = await s.app.inject({
    method: 'GET',
    url: `/oidc/authorize?${new URLSearchParams(authorizeParams({ client_id: NUL }))}`,
    headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' },
  });
  assert.equal(page.statusCode, 400);
  assert.match(String(page.headers['content-type']), /^text\/html/);
  assert.equal(await databaseDigest(REFUSAL_TABLES), digest, 'no row changed');
});

// ---------------------------------------------------------------------------------------------------------------
// Error bodies: JSON from JSON routes whatever Accept says; HTML pages stay HTML

const HOSTILE_ACCEPTS = [
  'text/x-nonsense, text/html',
  'text/html;q=0.1, */*',
  'text/html',
  'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  '*/*',
  '',
];

test(`[${backend}] errors from JSON routes are JSON with a dotted code whatever Accept says`, async () => {
  // CIS1 audits each refusal (cis1.security.test.ts) and counts wrong credentials; nothing else may change.
  const audit = REFUSAL_TABLES;
  const digest = await databaseDigest(audit);
  const cases: [string, 'GET' | 'POST', string, Record<string, string>, string | undefined, number, string][] = [
    [
      'CIS1 validate, no client',
      'POST',
      '/cis1/validate',
      { 'content-type': 'application/json' },
      '{}',
      401,
      'cis1.client_invalid',
    ],
    [
      'CIS1 validate, XML',
      'POST',
      '/cis1/validate',
      { 'content-type': 'application/xml' },
      '<a/>',
      415,
      'request.unsupported_media_type',
    ],
    [
      'CIS1 session, bad JSON',
      'POST',
      '/cis1/session',
      { 'content-type': 'application/json' },
      '{',
      400,
      'request.malformed_json',
    ],
    [
      'OCSP, wrong type',
      'POST',
      '/pki/ocsp',
      { 'content-type': 'text/plain' },
      'x',
      415,
      'request.unsupported_media_type',
    ],
    [
      'OCSP, too large',
      'POST',
      '/pki/ocsp',
      { 'content-type': 'application/ocsp-request' },
      'x'.repeat(70_000),
      413,
      'request.too_large',
    ],
    ['API, unknown route', 'GET', '/api/v1/nothing-here', {}, undefined, 404, 'request.not_found'],
    ['API, no session', 'GET', '/api/v1/access-requests', {}, undefined, 401, 'auth.required'],
    [
      'card agent API, bad grant',
      'POST',
      '/api/v1/card-agent/redeem',
      { 'content-type': 'application/json' },
      '{}',
      403,
      'card.grant_invalid',
    ],
    ['PKI, unknown route', 'GET', '/pki/nothing', {}, undefined, 404, 'request.not_found'],
    ['health, wrong method', 'POST', '/health', { 'content-type': 'application/json' }, '{}', 404, 'request.not_found'],
    [
      'sign-in API, JSON body, no CSRF',
      'POST',
      '/signin/webauthn/options',
      { 'content-type': 'application/json' },
      '{}',
      403,
      'auth.csrf_invalid',
    ],
  ];
  for (const accept of HOSTILE_ACCEPTS) {
    for (const [label, method, url, headers, payload, status, code] of cases) {
      const res = await s.app.inject({
        method,
        url,
        headers: { ...headers, ...(accept ? { accept } : {}) },
        ...(payload !== undefined ? { payload } : {}),
      });
      const what = `${label} with Accept "${accept}"`;
      assert.equal(res.statusCode, status, `${what}: ${res.body.slice(0, 120)}`);
      assert.match(String(res.headers['content-type']), /^application\/json/, what);
      assert.equal(errorCode(res), code, what);
    }
  }
  // OCSP keeps its own media type where RFC 6960 says so: a malformed request is an OCSP response, whatever Accept says.
  for (const accept of HOSTILE_ACCEPTS) {
    const res = await s.app.inject({
      method: 'POST',
      url: '/pki/ocsp',
      headers: { 'content-type': 'application/ocsp-request', accept },
      payload: Buffer.from('not DER'),
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'application/ocsp-response');
  }
  // OIDC JSON endpoints answer OAuth errors as JSON whatever Accept says.
  for (const accept of HOSTILE_ACCEPTS) {
    for (const url of ['/oidc/access_token', '/oidc/introspect', '/oidc/token/revoke']) {
      const res = await s.app.inject({
        method: 'POST',
        url,
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept },
        payload: 'client_id=nobody&client_secret=x&grant_type=authorization_code&token=x',
      });
      assert.match(String(res.headers['content-type']), /^application\/json/, `${url} with Accept "${accept}"`);
      assert.ok((JSON.parse(res.body) as { error?: string }).error, url);
    }
  }
  assert.equal(await databaseDigest(audit), digest);
});

test(`[${backend}] HTML pages stay HTML: a browser gets an error page, a script on the same page area gets JSON`, async () => {
  const browser = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
  const { token } = await unitOfWork(s.t.db)((tx) =>
    startSession(tx, s.operator(), { userId: managerId, aal: 3, amr: ['SMARTCARD'], authenticatorId: 'card:t' }, null, {
      ip: null,
      userAgent: null,
    }),
  );
  for (const url of ['/ra/people/123', '/account/nothing', '/ra/requests/not-a-request']) {
    const res = await s.app.inject({
      method: 'GET',
      url,
      headers: { cookie: `opencis_session=${token}`, accept: browser },
    });
    assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${url}: ${res.statusCode}`);
    assert.match(String(res.headers['content-type']), /^text\/html/, url);
  }
  // The same page area asked by a script (prefers JSON, or sends JSON) gets JSON.
  const script = await s.app.inject({
    method: 'GET',
    url: '/account/nothing',
    headers: { accept: 'text/html;q=0.1, */*' },
  });
  assert.match(String(script.headers['content-type']), /^application\/json/);
  assert.equal(errorCode(script), 'request.not_found');
});

// ---------------------------------------------------------------------------------------------------------------
// TRUST_PROXY for the OpenID Connect provider

async function discovery(server: TestServer, from: string, headers: Record<string, string>) {
  const res = await server.app.inject({
    method: 'GET',
    url: '/oidc/.well-known/openid-configuration',
    remoteAddress: from,
    headers: { host: new URL(server.url).host, ...headers },
  });
  assert.equal(res.statusCode, 200, res.body);
  return res.json() as Record<string, string>;
}

test(`[${backend}] OIDC: a forged X-Forwarded-Proto/Host from an untrusted peer changes no issuer-derived URL or redirect`, async () => {
  const forged = {
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'evil.example',
    'x-forwarded-for': '198.51.100.1',
  };
  // TRUST_PROXY unset (false): nobody's X-Forwarded-* is believed.
  const doc = await discovery(s, '203.0.113.9', forged);
  assert.equal(doc.issuer, `${s.url}/oidc`);
  for (const key of [
    'authorization_endpoint',
    'token_endpoint',
    'userinfo_endpoint',
    'jwks_uri',
    'end_session_endpoint',
  ]) {
    assert.ok(doc[key]?.startsWith(`${s.url}/oidc/`), `${key}: ${doc[key]}`);
  }
  // The logout confirmation form posts back to the provider: to this server, not to the forged host.
  const logout = await s.app.inject({
    method: 'GET',
    url: `/oidc/connect/endSession?client_id=${rp.clientId}`,
    remoteAddress: '203.0.113.9',
    headers: { host: new URL(s.url).host, ...forged },
  });
  assert.equal(logout.statusCode, 200, logout.body.slice(0, 200));
  assert.doesNotMatch(logout.body, /evil\.example|https:\/\//);
  assert.match(logout.body, new RegExp(`action="${s.url}/oidc/connect/endSession/confirm"`));

  // With TRUST_PROXY naming the load balancer, what it forwards is believed — from it only.
  const behind = await startTestServer({ TRUST_PROXY: '10.0.0.5' });
  try {
    const viaProxy = await discovery(behind, '10.0.0.5', {
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'cis.example.nhs.uk',
    });
    assert.equal(viaProxy.token_endpoint, 'https://cis.example.nhs.uk/oidc/access_token');
    const direct = await discovery(behind, '203.0.113.9', forged);
    assert.equal(direct.token_endpoint, `${behind.url}/oidc/access_token`);
  } finally {
    await behind.close();
  }
});

test(`[${backend}] prototype-pollution keys and huge arrays to every POST route: 4xx, never a 500; nothing polluted`, async () => {
  const posts = routes()
    .filter(([m, path]) => m === 'POST' && !path.startsWith('/oidc'))
    .map(([, path]) =>
      path
        .replace(/:userId/g, managerId)
        .replace(/:[A-Za-z]+/g, '1')
        .replace('*', 'x'),
    );
  const json = { cookie, 'csrf-token': csrf, 'content-type': 'application/json' };
  const form = { cookie, 'content-type': 'application/x-www-form-urlencoded' };
  const query = '?__proto__[polluted]=1&constructor.prototype.polluted=1';
  const failures: string[] = [];
  // A poisoned JSON body is refused before any handler (400; the OCSP responder refuses every non-OCSP body: 415).
  const digest = await databaseDigest(REFUSAL_TABLES);
  for (const url of posts) {
    for (const payload of [
      '{"__proto__":{"polluted":true},"userId":"1"}',
      '{"constructor":{"prototype":{"polluted":true}}}',
      '{"documents":[{"__proto__":{"polluted":true}}]}',
    ]) {
      const res = await s.app.inject({ method: 'POST', url: `${url}${query}`, headers: json, payload });
      if (res.statusCode !== (url === '/pki/ocsp' ? 415 : 400)) failures.push(`${url} ${payload} → ${res.statusCode}`);
    }
  }
  assert.equal(await databaseDigest(REFUSAL_TABLES), digest, 'no row changed');
  // Forms and queries keep such keys as plain field names; huge arrays are refused by the schemas' limits. (Routes
  // that take no body — a challenge, signing out — answer as usual.)
  const huge = JSON.stringify({
    familyName: 'Big',
    documents: Array.from({ length: 100_000 }, () => ({})),
    redirectUris: Array(50_000).fill('https://x.example/cb'),
  });
  for (const url of posts) {
    for (const [what, headers, payload] of [
      [
        'form',
        form,
        `_csrf=${encodeURIComponent(csrf)}&__proto__[polluted]=1&constructor[prototype][polluted]=1&__proto__=x`,
      ],
      ['huge arrays', json, huge],
    ] as const) {
      const res = await s.app.inject({ method: 'POST', url: `${url}${query}`, headers, payload });
      if (res.statusCode >= 500) failures.push(`${url} [${what}] → ${res.statusCode} ${res.body.slice(0, 100)}`);
    }
  }
  assert.deepEqual(failures, []);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(Object.hasOwn(Object.prototype, 'polluted'), false);
});

test(`[${backend}] the net under the guard: a value the database refuses (22021, 22P05, 22P02, 54000) is a 400, not a 500`, async () => {
  // A route that hands the database a value the guard never saw (decoded from a header, as Basic credentials are).
  const t = await createTestDatabase();
  const app = await buildApp({
    config: loadConfig({ PORT: '0', DEMO_DATA: 'false', LOG_LEVEL: 'silent' }),
    db: t.db,
    sealer: testSealer,
    clock: new TestClock(),
    logger: false,
  });
  app.get('/test/unchecked/:as', async (req) => {
    const value = Buffer.from(String(req.headers['x-value'] ?? ''), 'base64').toString('utf8');
    const as = (req.params as { as: string }).as;
    if (as === 'indexed') {
      await t.db.transaction(async (tx) => {
        await tx.query('CREATE TEMP TABLE IF NOT EXISTS unchecked_values (v text PRIMARY KEY) ON COMMIT DROP');
        await tx.query('INSERT INTO unchecked_values (v) VALUES ($1)', [value]);
      });
      return { ok: true };
    }
    await t.db.query(`SELECT $1::${as === 'json' ? 'jsonb' : as === 'uuid' ? 'uuid' : 'text'} AS v`, [value]);
    return { ok: true };
  });
  try {
    const incompressible = randomBytes(6_000).toString('base64');
    for (const [as, value, code] of [
      ['text', 'a\u0000b', 'request.invalid_text'],
      ['json', '{"a":"\\u0000"}', 'request.invalid_text'],
      ['json', '{"a":"\\ud800"}', 'request.invalid'],
      ['uuid', 'not-a-uuid', 'request.invalid'],
      ['indexed', incompressible, 'request.invalid'],
    ] as const) {
      const res = await app.inject({
        method: 'GET',
        url: `/test/unchecked/${as}`,
        headers: { 'x-value': Buffer.from(value).toString('base64') },
      });
      assert.equal(res.statusCode, 400, `${as}: ${res.body}`);
      assert.equal(errorCode(res), code, as);
    }
  } finally {
    await app.close();
    await t.close();
  }
});
