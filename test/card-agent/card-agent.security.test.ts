import 'reflect-metadata';
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { randomBytes, webcrypto } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as x509 from '@peculiar/x509';
import { type RunningCardAgent, startCardAgent } from '../../src/card-agent/main.ts';
import { openPkcs11Module, personaliseCard, setPasscode, storeCertificate } from '../../src/card-agent/token.ts';
import { cardLoginMessage } from '../../src/domain/credentials/card-login.ts';

/**
 * The passcode lock under concurrent wrong tries (issue 15, acceptance 4): three wrong passcodes in a row lock the card
 * (DOMAIN §6), and a fourth try never reaches it — whether the tries come at once to one agent, mixing sign-in and
 * renewal, or at once to two agents (two processes) working the same virtual smartcard. The count that matters is the
 * number of wrong tries that reached the card: each is reported to the server as a `passcode_incorrect` event, which
 * the agent sends only after the card itself refused the passcode.
 *
 * Before the fix the agents' counter (SoftHSM2 keeps none, so the agent keeps it on the card) was read, tried and written
 * by each process on its own: two agents each read "two wrong so far" and both tried, four wrong tries reached the card,
 * and their counter objects, written and removed under each other, gave spurious `card.error` / `card.absent`.
 * Already covered in card-agent.test.ts: the sequential count (401, 401, 423), the count kept on the card, origins,
 * Host / DNS rebinding, CORS; the CIS1 ticket's callers in cis1.e2e.test.ts.
 */
const dir = mkdtempSync(join(tmpdir(), 'opencis-card-agent-sec-'));
mkdirSync(join(dir, 'tokens'));
writeFileSync(
  join(dir, 'softhsm2.conf'),
  `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`,
);
process.env.SOFTHSM2_CONF = join(dir, 'softhsm2.conf');
const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const LABEL = 'OpenCIS lock test card';
const ORIGIN = 'http://localhost:3000';
const SO_PIN = '13572468';
const UNBLOCK = 'unblock-secret-1';
const PASSCODE = '482915';

/** The card-agent events the server would receive. */
const events: { event: string }[] = [];
let server: { url: string; close(): Promise<void> };
let certificate: string;

before(async () => {
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', LABEL, '--so-pin', SO_PIN, '--pin', '11111111'], {
    stdio: 'ignore',
  });
  // An issued card: key generated on it, a certificate for that key, the holder's passcode.
  const caKeys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const module = openPkcs11Module(MODULE);
  const personalised = await module.withCard(LABEL, (card) =>
    personaliseCard(card, { transportSoPin: SO_PIN, unblockSecret: UNBLOCK }, cardLoginMessage(ORIGIN, 'issue')),
  );
  const publicKey = await webcrypto.subtle.importKey(
    'spki',
    personalised.key.publicKey,
    { name: 'ECDSA', namedCurve: 'P-256' },
    true,
    ['verify'],
  );
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8)
      .toString('hex')
      .replace(/^[89a-f]/, '1'),
    subject: 'CN=555000000011, O=OpenCIS test',
    issuer: 'CN=OpenCIS Test Card CA',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 365 * 86_400_000),
    publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  certificate = Buffer.from(cert.rawData).toString('base64');
  await module.withCard(LABEL, (card) => storeCertificate(card, personalised, Buffer.from(cert.rawData)));
  await module.withCard(LABEL, (card) => setPasscode(card, UNBLOCK, PASSCODE));
  const http = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => {
      text += c.toString();
    });
    req.on('end', () => {
      if (req.url === '/api/v1/card-agent/events') events.push(JSON.parse(text) as { event: string });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  server = {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => http.close(() => resolve())),
  };
});
after(async () => {
  await server?.close();
});

interface Answer {
  status: number;
  code: string | undefined;
}

function call(port: number, path: string, body: unknown): Promise<Answer> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path,
        headers: {
          host: `127.0.0.1:${port}`,
          origin: ORIGIN,
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(payload)),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString();
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            code: text ? (JSON.parse(text) as { error?: { code?: string } }).error?.code : undefined,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const sign = (port: number, passcode: string) =>
  call(port, '/v1/sign', { challenge: randomBytes(32).toString('base64url'), passcode });
const renew = (port: number, passcode: string) => call(port, '/v1/cards/certificate', { certificate, passcode });

async function reportsSettled(): Promise<void> {
  let seen = -1;
  while (seen !== events.length) {
    seen = events.length;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

async function unlock(): Promise<void> {
  await openPkcs11Module(MODULE).withCard(LABEL, (card) => setPasscode(card, UNBLOCK, PASSCODE));
  await reportsSettled();
  events.length = 0;
}

const wrongTriesThatReachedTheCard = () => events.filter((e) => e.event === 'passcode_incorrect').length;

test('twelve wrong passcodes at once to one agent, sign-in and renewal mixed: exactly 3 reach the card, then even the right one is refused', async () => {
  const agent: RunningCardAgent = await startCardAgent({
    modulePath: MODULE,
    tokenLabel: LABEL,
    port: 0,
    allowedOrigins: [ORIGIN],
    serverUrl: server.url,
    log: () => {},
  });
  try {
    await unlock();
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => (i % 2 ? renew : sign)(agent.port, String(100000 + i))),
    );
    assert.equal(answers.filter((a) => a.code === 'card.passcode_incorrect').length, 2);
    assert.equal(answers.filter((a) => a.code === 'card.locked').length, 10);
    assert.deepEqual((await sign(agent.port, PASSCODE)).code, 'card.locked');
    await reportsSettled();
    assert.equal(wrongTriesThatReachedTheCard(), 3);
  } finally {
    await agent.close();
  }
});

function spawnAgent(): Promise<{ port: number; child: ChildProcessWithoutNullStreams }> {
  const child = spawn(
    process.execPath,
    [
      'bin/opencis-card-agent.js',
      '--port',
      '0',
      '--token-label',
      LABEL,
      '--allowed-origin',
      ORIGIN,
      '--server',
      server.url,
    ],
    { env: { ...process.env, OPENCIS_AGENT_MODULE: MODULE } },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve({ port: Number(new URL(m[1]!).port), child });
    });
    child.on('error', reject);
    child.on('close', (code) => reject(new Error(`the agent exited (${code}): ${out}`)));
  });
}

test('wrong passcodes at once to two agents on the same card (two processes): exactly 3 reach the card, no spurious errors', async () => {
  const agents = [await spawnAgent(), await spawnAgent()];
  try {
    for (let round = 0; round < 3; round++) {
      await unlock();
      const answers = await Promise.all(
        agents.flatMap(({ port }, a) =>
          Array.from({ length: 4 }, (_, i) => (i % 2 ? renew : sign)(port, String(200000 + a * 10 + i))),
        ),
      );
      const codes = answers.map((x) => x.code);
      assert.ok(
        codes.every((c) => c === 'card.passcode_incorrect' || c === 'card.locked'),
        `round ${round}: ${codes.join(', ')}`,
      );
      assert.equal(
        codes.filter((c) => c === 'card.passcode_incorrect').length,
        2,
        `round ${round}: ${codes.join(', ')}`,
      );
      for (const { port } of agents) assert.equal((await sign(port, PASSCODE)).code, 'card.locked');
      await reportsSettled();
      assert.equal(wrongTriesThatReachedTheCard(), 3, `round ${round}`);
    }
  } finally {
    for (const { child } of agents) child.kill('SIGTERM');
  }
});

/** A request from a program of another user (uid 65534, "nobody"): it may write any Origin and Host it likes. */
function asAnotherUser(port: number, path: string, origin: string | null): Promise<{ status: number; text: string }> {
  const script = `
    const http = require('node:http');
    const req = http.request({ host: '127.0.0.1', port: ${port}, path: ${JSON.stringify(path)}, method: 'GET',
      headers: { host: '127.0.0.1:${port}'${origin ? `, origin: ${JSON.stringify(origin)}` : ''} } }, (res) => {
      let t = ''; res.on('data', (c) => { t += c; }); res.on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode, text: t })));
    });
    req.on('error', (e) => process.stdout.write(JSON.stringify({ status: 0, text: e.message })));
    req.end();`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { uid: 65534, gid: 65534, cwd: '/' });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', reject);
    child.on('close', () => resolve(JSON.parse(out) as { status: number; text: string }));
  });
}

test('programs of another user on the same computer (a terminal server) get nothing: not the ticket, not the card', async (t) => {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    t.skip('needs root to run a client as another user');
    return;
  }
  const agent = await startCardAgent({
    modulePath: MODULE,
    tokenLabel: LABEL,
    port: 0,
    allowedOrigins: [ORIGIN],
    cis1AllowedOrigins: ['https://pas.example.nhs.uk'],
    serverUrl: server.url,
    log: () => {},
  });
  try {
    // The agent's own user: its local programs and its browser pages are answered.
    const own = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: agent.port, path: '/v1/cis1/ticket', headers: { host: `127.0.0.1:${agent.port}` } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    // (no CIS1 session: 409 cis1.no_session, or 423 cis1.card_locked after the tests above — not 403)
    assert.ok([409, 423].includes(own), `a local program of this user is answered: ${own}`);
    // Another user's program, with no Origin (a "local program"), or forging an allowed Origin: refused.
    for (const [path, origin] of [
      ['/v1/cis1/ticket', null],
      ['/v1/cis1/ticket', 'https://pas.example.nhs.uk'],
      ['/v1/status', ORIGIN],
    ] as const) {
      const res = await asAnotherUser(agent.port, path, origin);
      assert.equal(res.status, 403, `${path} ${origin}: ${res.text}`);
      assert.equal((JSON.parse(res.text) as { error: { code: string } }).error.code, 'agent.other_user');
      assert.doesNotMatch(res.text, /ticket"|certificate"/);
    }
  } finally {
    await agent.close();
  }
});
