import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { errorCatalogue, serverErrorCodes } from '../../src/domain/errors.ts';
import { TestClock, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';

/*
 * The OpenAPI document an integrator generates a client from (issue 18, acceptance 3): it validates with a standard
 * linter, says how every /api operation authenticates, and gives the one error body on every 4xx/5xx answer. And the
 * answers match it: no credentials is a 401 with its challenges, CSRF is asked of cookie-authenticated calls only.
 */

let t: TestDatabase;
let app: FastifyInstance;
// biome-ignore lint/suspicious/noExplicitAny: the document is plain JSON walked by key
let doc: any;

before(async () => {
  t = await createTestDatabase();
  app = await buildApp({
    config: loadConfig({ PORT: '0' }),
    db: t.db,
    sealer: testSealer,
    clock: new TestClock(),
    logger: false,
  });
  await app.ready();
  const res = await app.inject({ method: 'GET', url: '/api/openapi.json' });
  assert.equal(res.statusCode, 200);
  doc = res.json();
});
after(async () => {
  await app.close();
  await t.close();
});

const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

function apiOperations(): { label: string; op: Record<string, unknown> & { responses: Record<string, unknown> } }[] {
  const ops = [];
  for (const [path, item] of Object.entries<Record<string, never>>(doc.paths)) {
    if (!path.startsWith('/api/')) continue;
    for (const method of METHODS)
      if (item[method]) ops.push({ label: `${method.toUpperCase()} ${path}`, op: item[method] });
  }
  return ops;
}

test(`[${backend}] the OpenAPI document validates with @apidevtools/swagger-parser`, async () => {
  // It dereferences in place: validate a copy.
  await SwaggerParser.validate(structuredClone(doc));
});

test(`[${backend}] the document names how a call authenticates: the AAL3 session cookie with the CSRF header, or OAuth client credentials`, () => {
  const schemes = doc.components.securitySchemes;
  assert.deepEqual(
    { type: schemes.session.type, in: schemes.session.in, name: schemes.session.name },
    { type: 'apiKey', in: 'cookie', name: 'opencis_session' },
  );
  assert.deepEqual(
    { type: schemes.csrfToken.type, in: schemes.csrfToken.in, name: schemes.csrfToken.name },
    { type: 'apiKey', in: 'header', name: 'csrf-token' },
  );
  assert.equal(schemes.csrfCookie.name, 'opencis_csrf');
  assert.equal(schemes.clientCredentials.type, 'oauth2');
  const flow = schemes.clientCredentials.flows.clientCredentials;
  assert.match(flow.tokenUrl, /\/oidc\/access_token$/, 'the OpenID Connect token endpoint');
  assert.ok(flow.scopes['opencis.ra_api']);
});

test(`[${backend}] every /api operation says which credentials it accepts and has the error schema on every 4xx/5xx`, () => {
  const ops = apiOperations();
  assert.ok(ops.length > 40, `${ops.length} operations`);
  const problems: string[] = [];
  for (const { label, op } of ops) {
    if (!Array.isArray(op.security)) {
      problems.push(`${label}: no security`);
      continue;
    }
    for (const requirement of op.security as Record<string, unknown>[]) {
      for (const name of Object.keys(requirement)) {
        if (!doc.components.securitySchemes[name]) problems.push(`${label}: unknown scheme ${name}`);
      }
    }
    const errors = Object.keys(op.responses).filter((s) => /^[45]/.test(s));
    for (const s of ['400', '403', '404', '500', '503', '4XX', '5XX']) {
      if (!errors.includes(s)) problems.push(`${label}: no ${s} response`);
    }
    if ((op.security as unknown[]).length > 0 && !errors.includes('401')) problems.push(`${label}: no 401 response`);
    for (const s of errors) {
      // biome-ignore lint/suspicious/noExplicitAny: a response object or a reference to one
      let r: any = op.responses[s];
      if (r.$ref) r = doc.components.responses[r.$ref.split('/').pop()];
      if (r?.content?.['application/json']?.schema?.$ref !== '#/components/schemas/Error') {
        problems.push(`${label}: ${s} is not the error schema`);
      }
    }
  }
  assert.deepEqual(problems, []);
  // The error schema is the body the server sends, with every catalogued code, and examples of it.
  const error = doc.components.schemas.Error;
  assert.deepEqual(error.required, ['error']);
  assert.deepEqual(error.properties.error.required, ['code', 'message']);
  // The server's codes, not the card agent's (the server never answers with those).
  assert.deepEqual([...error.properties.error.properties.code.enum].sort(), [...serverErrorCodes].sort());
  assert.ok(error.examples.length > 0);
  assert.ok(doc.components.responses['401'].headers['WWW-Authenticate']);
  // Bodies come with examples to start from.
  for (const [method, path] of [
    ['post', '/api/v1/people/search'],
    ['post', '/api/v1/access-requests'],
    ['post', '/api/v1/organisations'],
    ['post', '/api/v1/organisations/{odsCode}/move'],
    ['patch', '/api/v1/positions/{positionId}'],
  ] as const) {
    const media = doc.paths[path][method].requestBody.content['application/json'];
    assert.ok(media.example ?? media.examples, `${method} ${path}: no example`);
  }
});

test(`[${backend}] a call with no credentials is told to authenticate (401 auth.required with its challenges), not that a form expired`, async () => {
  for (const [method, url] of [
    ['POST', '/api/v1/people/search'],
    ['GET', '/api/v1/access-requests'],
    ['POST', '/api/v1/access-requests'],
  ] as const) {
    const res = await app.inject({ method, url, headers: { 'content-type': 'application/json' }, payload: '{}' });
    assert.equal(res.statusCode, 401, `${method} ${url}: ${res.body}`);
    assert.equal(res.json().error.code, 'auth.required');
    const challenge = String(res.headers['www-authenticate']);
    assert.match(challenge, /Bearer realm="OpenCIS", scope="opencis\.ra_api"/);
    assert.match(challenge, /Cookie realm="OpenCIS", cookie-name="opencis_session"/);
  }
  // A route only a signed-in person may call challenges for the session cookie alone.
  const clients = await app.inject({ method: 'GET', url: '/api/v1/clients' });
  assert.equal(clients.statusCode, 401);
  assert.doesNotMatch(String(clients.headers['www-authenticate']), /Bearer/);
  assert.match(String(clients.headers['www-authenticate']), /cookie-name="opencis_session"/);
  const register = await app.inject({
    method: 'POST',
    url: '/api/v1/clients',
    headers: { 'content-type': 'application/json' },
    payload: '{}',
  });
  assert.equal(register.statusCode, 401, register.body);
  assert.equal(register.json().error.code, 'auth.required');
});

test(`[${backend}] CSRF is asked of cookie-authenticated calls only, and a missing header is named`, async () => {
  // A bearer token (here one that is not valid) carries no ambient credential: no CSRF check, the token is judged.
  const bearer = await app.inject({
    method: 'POST',
    url: '/api/v1/people/search',
    headers: { 'content-type': 'application/json', authorization: 'Bearer not-a-real-access-token' },
    payload: '{"userId":"555073103100"}',
  });
  assert.equal(bearer.statusCode, 401, bearer.body);
  assert.equal(bearer.json().error.code, 'auth.required');
  // With the session cookie, a change without the header is refused before anything else, naming the header.
  const cookie = await app.inject({
    method: 'POST',
    url: '/api/v1/people/search',
    headers: { 'content-type': 'application/json', cookie: 'opencis_session=some-session-token' },
    payload: '{"userId":"555073103100"}',
  });
  assert.equal(cookie.statusCode, 403, cookie.body);
  const body = cookie.json();
  assert.equal(body.error.code, 'auth.csrf_invalid');
  assert.match(body.error.message, /csrf-token/);
  assert.deepEqual(body.error.details, { header: 'csrf-token' });
  // A token that does not match (a page left open too long) keeps the page's message.
  const stale = await app.inject({
    method: 'POST',
    url: '/api/v1/people/search',
    headers: {
      'content-type': 'application/json',
      cookie: 'opencis_session=some-session-token; opencis_csrf=secret',
      'csrf-token': 'stale-token',
    },
    payload: '{"userId":"555073103100"}',
  });
  assert.equal(stale.statusCode, 403);
  assert.equal(stale.json().error.code, 'auth.csrf_invalid');
  assert.equal(stale.json().error.message, errorCatalogue['auth.csrf_invalid'].message);
});
