import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import * as OTPAuth from 'otpauth';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { attemptPolicies } from '../../src/services/attempts.ts';
import { registerPerson } from '../../src/services/people.ts';
import { confirmTotpEnrolment, startTotpEnrolment } from '../../src/services/totp.ts';
import { TestClock, testContext, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';

/**
 * Abuse from the network: guessing TOTP codes (from one address, against one person, and spraying many people from one
 * address), slow-loris, oversized headers and bodies, and thousands of connections at once. The server must hold its
 * limits, answer in the error shape, stay up and keep its memory bounded — and nobody else may be locked out.
 */
let t: TestDatabase;
let app: FastifyInstance;
let base: string;
const clock = new TestClock(new Date('2026-11-26T09:00:00Z'));
const op = () => testContext(t.db, { clock });
const apps: Record<string, { userId: string; totp: OTPAuth.TOTP }> = {};

before(async () => {
  t = await createTestDatabase();
  app = await buildApp({
    config: loadConfig({ PORT: '0', DEMO_DATA: 'false', LOG_LEVEL: 'silent' }),
    db: t.db,
    sealer: testSealer,
    clock,
    logger: false,
    transport: { send: async () => {} },
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  let n = 0;
  for (const name of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']) {
    n++;
    const p = await registerPerson(op(), {
      givenName: name,
      familyName: 'Abuse',
      dateOfBirth: `1980-01-${String(n).padStart(2, '0')}`,
      email: `${name}.abuse@example.nhs.uk`,
    });
    const { totpId, secret } = await startTotpEnrolment(op(), { userId: p.userId, issuer: 'OpenCIS' });
    const totp = new OTPAuth.TOTP({
      algorithm: 'SHA1',
      digits: 6,
      period: 30,
      secret: OTPAuth.Secret.fromBase32(secret),
    });
    // Enrolment uses the step before, so the current step stays free for the sign-in below.
    const previous = totp.generate({ timestamp: clock.now().getTime() - 30_000 });
    await confirmTotpEnrolment(op(), { userId: p.userId, totpId, code: previous, ip: null });
    apps[name] = { userId: p.userId, totp };
  }
});
after(async () => {
  await app?.close();
  await t?.close();
});

// ---------------------------------------------------------------------------------------------------------------
// TOTP guessing

let csrf: { cookie: string; token: string } | undefined;
async function signinForm(): Promise<{ cookie: string; token: string }> {
  if (csrf) return csrf;
  const page = await app.inject({ method: 'GET', url: '/signin' });
  const cookie = page.cookies.find((c) => c.name === 'opencis_csrf')!;
  const token = /data-csrf="([^"]+)"/.exec(page.body)![1]!;
  csrf = { cookie: `opencis_csrf=${cookie.value}`, token };
  return csrf;
}

async function totpAttempt(userId: string, code: string, ip: string): Promise<number> {
  const form = await signinForm();
  const res = await app.inject({
    method: 'POST',
    url: '/signin/totp',
    remoteAddress: ip,
    headers: { 'content-type': 'application/json', cookie: form.cookie, 'csrf-token': form.token },
    payload: JSON.stringify({ userId, code }),
  });
  return res.statusCode;
}

const wrong = (right: string) => (right === '000000' ? '111111' : '000000');
const right = (who: string) => apps[who]!.totp.generate({ timestamp: clock.now().getTime() });

test(`[${backend}] a flood of wrong TOTP codes against one person from one address: the limit holds, others are unaffected`, async () => {
  const alice = apps.alice!;
  const statuses: number[] = [];
  for (let i = 0; i < 30; i++) statuses.push(await totpAttempt(alice.userId, wrong(right('alice')), '203.0.113.10'));
  const evaluated = statuses.filter((s) => s !== 429).length;
  assert.equal(evaluated, attemptPolicies.person.limit, `guesses checked before the lock: ${statuses.join(',')}`);
  assert.ok(statuses.slice(attemptPolicies.person.limit).every((s) => s === 429));
  // Alice is locked, whatever the address — even with the right code: the lock protects the person.
  assert.equal(await totpAttempt(alice.userId, right('alice'), '198.51.100.7'), 429);
  // Bob, from the very same address, signs in (the address has 5 failures, far below its own limit).
  assert.equal(await totpAttempt(apps.bob!.userId, right('bob'), '203.0.113.10'), 303);
});

test(`[${backend}] spraying many people from one address locks the address, not the people`, async () => {
  const sprayer = '203.0.113.66';
  const statuses: number[] = [];
  for (let i = 0; i < attemptPolicies.ip.limit + 10; i++) {
    // Well-formed user IDs of nobody in particular: each guess is a first failure for that "person".
    const userId = String(900_000_000_000 + i);
    statuses.push(await totpAttempt(userId, '123456', sprayer));
  }
  assert.equal(statuses.filter((s) => s !== 429).length, attemptPolicies.ip.limit);
  // The address is locked even for a real person with the right code…
  assert.equal(await totpAttempt(apps.carol!.userId, right('carol'), sprayer), 429);
  // …who signs in from anywhere else.
  assert.equal(await totpAttempt(apps.carol!.userId, right('carol'), '192.0.2.44'), 303);
});

test(`[${backend}] concurrent guesses against one person cannot go past the limit`, async () => {
  const dave = apps.dave!;
  const statuses = await Promise.all(
    Array.from({ length: 40 }, (_, i) => totpAttempt(dave.userId, wrong(right('dave')), `198.18.0.${i + 1}`)),
  );
  const evaluated = statuses.filter((s) => s !== 429).length;
  assert.ok(
    evaluated <= attemptPolicies.person.limit,
    `${evaluated} of 40 concurrent guesses were checked (limit ${attemptPolicies.person.limit})`,
  );
  assert.equal(await totpAttempt(dave.userId, right('dave'), '198.18.1.1'), 429);
  // Erin is not affected.
  assert.equal(await totpAttempt(apps.erin!.userId, right('erin'), '198.18.1.1'), 303);
});

// ---------------------------------------------------------------------------------------------------------------
// Oversized requests

function rawExchange(payload: Buffer | string, waitMs = 5_000): Promise<string> {
  return new Promise((resolve) => {
    const { port } = new URL(base);
    const socket = connect(Number(port), '127.0.0.1');
    const chunks: Buffer[] = [];
    const done = () => resolve(Buffer.concat(chunks).toString('latin1'));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {}); // the server may close while we are still writing: what it sent is what counts
    socket.on('close', done);
    socket.setTimeout(waitMs, () => socket.destroy());
    socket.write(payload);
  });
}

function errorOf(response: string): { status: number; code: string | undefined } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);
  const body = response.slice(response.indexOf('\r\n\r\n') + 4);
  try {
    return { status, code: (JSON.parse(body) as { error?: { code?: string } }).error?.code };
  } catch {
    return { status, code: undefined };
  }
}

test(`[${backend}] 1 MB of headers: 431 in the error shape, the server stays up`, async () => {
  const huge = 'x'.repeat(1024 * 1024);
  const response = await rawExchange(`GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Big: ${huge}\r\n\r\n`);
  assert.deepEqual(errorOf(response), { status: 431, code: 'request.header_too_large' });
  const ok = await app.inject({ method: 'GET', url: '/health/live' });
  assert.equal(ok.statusCode, 200);
});

function postBody(path: string, body: Buffer, chunked: boolean): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${base}${path}`,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(body.length) }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      // The server may answer and close before the whole body is sent.
      if (err.code === 'EPIPE' || err.code === 'ECONNRESET') return;
      reject(err);
    });
    if (chunked) {
      for (let i = 0; i < body.length; i += 64 * 1024) req.write(body.subarray(i, i + 64 * 1024));
      req.end();
    } else req.end(body);
  });
}

test(`[${backend}] a 2 MB body: 413 in the error shape (declared length and chunked)`, async () => {
  const body = Buffer.from(JSON.stringify({ familyName: 'x'.repeat(2 * 1024 * 1024) }));
  for (const chunked of [false, true]) {
    const res = await postBody('/api/v1/people/search', body, chunked);
    assert.equal(res.status, 413, `chunked=${chunked}: ${res.text.slice(0, 200)}`);
    assert.equal((JSON.parse(res.text) as { error: { code: string } }).error.code, 'request.too_large');
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Slow-loris and connection floods

test(`[${backend}] slow-loris: connection and request timeouts are set, so a trickling client is cut off`, async () => {
  // buildApp sets connectionTimeout and requestTimeout to 30 s; Node enforces requestTimeout (and headersTimeout) on
  // its connection check, every 30 s by default. Waiting that out here would make the suite slow: the real trickle is
  // in test/faults/slow-loris.test.ts. Here: the settings are in place, and a trickle is still open while within them.
  assert.ok(app.server.requestTimeout > 0 && app.server.requestTimeout <= 30_000, 'requestTimeout set, ≤ 30 s');
  assert.ok(app.server.headersTimeout > 0 && app.server.headersTimeout <= 60_000, 'headersTimeout set');
  assert.ok(app.server.timeout > 0 && app.server.timeout <= 30_000, 'idle socket timeout (connectionTimeout) set');
  const { port } = new URL(base);
  const socket: Socket = connect(Number(port), '127.0.0.1');
  socket.on('error', () => {});
  await new Promise<void>((r) => socket.once('connect', () => r()));
  const head = 'GET /health/live HTTP/1.1\r\nHost: localhost\r\n';
  for (const ch of head.slice(0, 12)) {
    socket.write(ch);
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(socket.destroyed, false);
  socket.destroy();
});

test(`[${backend}] 2,000 connections at once, each with a request: all answered, memory bounded, still serving`, async () => {
  const { port } = new URL(base);
  const COUNT = 2_000;
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  let peak = rssBefore;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 50);
  const sockets: Socket[] = [];
  const answered = await Promise.all(
    Array.from(
      { length: COUNT },
      () =>
        new Promise<number>((resolve) => {
          const s = connect(Number(port), '127.0.0.1');
          sockets.push(s);
          let text = '';
          s.setTimeout(20_000, () => {
            s.destroy();
            resolve(0);
          });
          s.on('error', () => resolve(0));
          s.on('data', (c: Buffer) => {
            text += c.toString('latin1');
            const status = /^HTTP\/1\.1 (\d{3})/.exec(text);
            if (status && text.includes('\r\n\r\n')) resolve(Number(status[1]));
          });
          s.on('connect', () => s.write('GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n'));
        }),
    ),
  );
  clearInterval(sampler);
  const ok = answered.filter((s) => s === 200).length;
  for (const s of sockets) s.destroy();
  const growthMiB = (peak - rssBefore) / 2 ** 20;
  assert.equal(ok, COUNT, `${COUNT - ok} connections got no 200`);
  // The server and these 2,000 client sockets share this process: ~2 × 2,000 sockets and their buffers.
  assert.ok(growthMiB < 150, `RSS grew ${growthMiB.toFixed(0)} MiB`);
  await new Promise((r) => setTimeout(r, 200));
  const res = await app.inject({ method: 'GET', url: '/health/live' });
  assert.equal(res.statusCode, 200);
});
