import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { AppError } from '../../src/domain/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { TestClock, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';

let t: TestDatabase;
let app: FastifyInstance;
const logLines: string[] = [];

before(async () => {
  t = await createTestDatabase();
  const logger = createLogger('info', { write: (line: string) => logLines.push(line) });
  app = await buildApp({
    config: loadConfig({ PORT: '0' }),
    db: t.db,
    sealer: testSealer,
    clock: new TestClock(),
    logger,
  });
  // routes that exist only to exercise the shared error handling
  app.post('/test/echo', async (req) => ({ got: req.body }));
  app.get('/test/app-error', async () => {
    throw new AppError('person.not_found', { userId: '555073103100' });
  });
  app.get('/test/read-only', async () => {
    throw Object.assign(new Error('cannot execute INSERT in a read-only transaction'), { code: '25006' });
  });
  app.get('/test/crash', async () => {
    throw new Error('secret internals: password=hunter2');
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
});
after(async () => {
  await app.close();
  await t.close();
});

function assertErrorShape(body: unknown, code: string) {
  const b = body as { error: { code: string; message: string } };
  assert.equal(b.error.code, code);
  assert.equal(typeof b.error.message, 'string');
  assert.ok(b.error.message.length > 0);
}

test(`[${backend}] GET /health reports the database, version and migrations`, async () => {
  const res = await app.inject({ method: 'GET', url: '/health' });
  assert.equal(res.statusCode, 200);
  const body = res.json();
  assert.equal(body.status, 'ok');
  assert.equal(body.database.kind, backend);
  assert.equal(body.database.reachable, true);
  assert.equal(body.migrations.pending, 0);
  assert.match(body.version, /^\d+\.\d+\.\d+/);
  assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/);
});

test(`[${backend}] a well-formed x-request-id is kept; a hostile one is replaced`, async () => {
  const kept = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'abc-123' } });
  assert.equal(kept.headers['x-request-id'], 'abc-123');
  const replaced = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'a\u00e9<script>' } });
  assert.notEqual(replaced.headers['x-request-id'], 'a\u00e9<script>');
});

test(`[${backend}] GET /metrics exposes Prometheus metrics labelled by route pattern`, async () => {
  await app.inject({ method: 'GET', url: '/health' });
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  assert.equal(res.statusCode, 200);
  assert.match(res.headers['content-type'] as string, /text\/plain/);
  assert.match(
    res.body,
    /opencis_http_request_duration_seconds_count\{method="GET",route="\/health",status="200"\} \d+/,
  );
  assert.match(res.body, /process_resident_memory_bytes/);
});

test(`[${backend}] the OpenAPI document describes the API`, async () => {
  const res = await app.inject({ method: 'GET', url: '/api/openapi.json' });
  assert.equal(res.statusCode, 200);
  const doc = res.json();
  assert.equal(doc.openapi, '3.1.0');
  assert.ok(doc.paths['/health']);
  assert.ok(doc.paths['/api/v1/rbac/catalogue']);
});

test(`[${backend}] the RBAC catalogue endpoint lists every code DOMAIN.md names`, async () => {
  const res = await app.inject({ method: 'GET', url: '/api/v1/rbac/catalogue' });
  const body = res.json() as { jobRoles: { code: string; roleCode: string }[]; activities: { code: string }[] };
  for (const code of [
    'R8000',
    'R8001',
    'R8003',
    'R8004',
    'R8006',
    'R8008',
    'R8009',
    'R8010',
    'R8012',
    'R8015',
    'R0001',
    'R5105',
    'R0050',
    'R0260',
    'R0270',
    'R5080',
    'R5090',
    'R5110',
    'R5170',
  ]) {
    assert.ok(
      body.jobRoles.some((r) => r.code === code),
      code,
    );
  }
  for (const code of [
    'B0825',
    'B0820',
    'B0380',
    'B0062',
    'B1700',
    'B0083',
    'B1101',
    'B1102',
    'B1103',
    'B1110',
    'B1120',
    'B0089',
    'B0096',
    'B0098',
    'B0267',
    'B1300',
    'B0002',
    'B0272',
    'B0274',
  ]) {
    assert.ok(
      body.activities.some((a) => a.code === code),
      code,
    );
  }
  assert.equal(body.jobRoles.find((r) => r.code === 'R8008')?.roleCode, 'S8001:G8002:R8008');
  assert.equal(body.jobRoles.find((r) => r.code === 'R5080')?.roleCode, 'S0080:G0450:R5080');
});

test(`[${backend}] unknown routes, bad JSON, wrong content type and oversized bodies answer in the one error shape`, async () => {
  const notFound = await app.inject({ method: 'GET', url: '/nope' });
  assert.equal(notFound.statusCode, 404);
  assertErrorShape(notFound.json(), 'request.not_found');

  const badJson = await app.inject({
    method: 'POST',
    url: '/test/echo',
    headers: { 'content-type': 'application/json' },
    payload: '{"a":',
  });
  assert.equal(badJson.statusCode, 400);
  assertErrorShape(badJson.json(), 'request.malformed_json');

  const wrongType = await app.inject({
    method: 'POST',
    url: '/test/echo',
    headers: { 'content-type': 'application/x-evil' },
    payload: 'x',
  });
  assert.equal(wrongType.statusCode, 415);
  assertErrorShape(wrongType.json(), 'request.unsupported_media_type');

  const big = await app.inject({
    method: 'POST',
    url: '/test/echo',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ a: 'x'.repeat(2_000_000) }),
  });
  assert.equal(big.statusCode, 413);
  assertErrorShape(big.json(), 'request.too_large');

  const proto = await app.inject({
    method: 'POST',
    url: '/test/echo',
    headers: { 'content-type': 'application/json' },
    payload: '{"__proto__": {"admin": true}}',
  });
  assert.equal(proto.statusCode, 400);
});

test(`[${backend}] a catalogued error keeps its code and details; an unexpected one hides its internals`, async () => {
  const known = await app.inject({ method: 'GET', url: '/test/app-error' });
  assert.equal(known.statusCode, 404);
  assert.deepEqual(known.json(), {
    error: { code: 'person.not_found', message: 'No person has that user ID.', details: { userId: '555073103100' } },
  });
  const crash = await app.inject({ method: 'GET', url: '/test/crash' });
  assert.equal(crash.statusCode, 500);
  assertErrorShape(crash.json(), 'internal.error');
  assert.doesNotMatch(crash.body, /hunter2|secret|stack/);
});

test(`[${backend}] headers over 16 KB get 431 in the error shape, from a real socket`, async () => {
  const port = (app.server.address() as { port: number }).port;
  const response = await new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(`GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    });
    let data = '';
    socket.on('data', (d) => {
      data += d.toString();
    });
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
  assert.match(response, /^HTTP\/1\.1 431/);
  assert.match(response, /"code":"request.header_too_large"/);
});

test(`[${backend}] logs carry request ids and paths but no query strings or credentials`, async () => {
  logLines.length = 0;
  await app.inject({
    method: 'GET',
    url: '/health?email=someone@example.com&code=123456',
    headers: { authorization: 'Bearer very-secret-token', cookie: 'sid=abc', 'x-request-id': 'log-check-1' },
  });
  const text = logLines.join('');
  assert.match(text, /log-check-1/);
  assert.match(text, /"path":"\/health"/);
  assert.doesNotMatch(text, /someone@example.com|123456|very-secret-token|sid=abc/);
});

test(`[${backend}] a write refused by a read-only database answers 503 service.read_only, not 500`, async () => {
  const res = await app.inject({ method: 'GET', url: '/test/read-only' });
  assert.equal(res.statusCode, 503);
  assertErrorShape(res.json(), 'service.read_only');
  assert.equal(res.headers['retry-after'], '60');
});
