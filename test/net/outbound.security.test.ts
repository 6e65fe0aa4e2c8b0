import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { SignJWT } from 'jose';
import { checkOutboundUri, outboundFetch, outboundPolicy, STRICT_OUTBOUND } from '../../src/net/outbound.ts';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { registerClient } from '../../src/services/clients.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { startSession } from '../../src/services/sessions.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { cliEnvFor, runOpencis } from '../support/cli.ts';
import { testContext } from '../support/context.ts';
import { backend } from '../support/db.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/**
 * SSRF (issue 15 finding 6): the URIs of a relying party that the server itself requests — its jwks_uri (fetched to
 * check its client assertions) and its back-channel logout URI (POSTed to at sign-out) — are chosen by whoever
 * registers it. Here the server runs as in production, with no OUTBOUND_ALLOWED_RANGES: nothing on loopback, private,
 * link-local or metadata addresses may be registered, and nothing there is ever connected to.
 */
let server: TestServer;
let manager: string;
const strict = () => testContext(server.t.db, { clock: server.clock, outbound: undefined });

/** A TCP listener on loopback that counts the connections made to it (the "internal service" the attacker aims at). */
async function internalService(): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
  let n = 0;
  const sockets = new Set<Socket>();
  const srv: Server = createServer((socket) => {
    n++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.end('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"keys":[]}');
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    port: (srv.address() as { port: number }).port,
    connections: () => n,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        srv.close(() => resolve());
      }),
  };
}

before(async () => {
  server = await startTestServer({ OUTBOUND_ALLOWED_RANGES: '', OUTBOUND_ALLOW_HTTP: 'false' });
  const ctx = server.operator();
  await saveOrganisation(ctx, { odsCode: 'RR8', name: 'Test Trust', type: 'trust' });
  const position = await createPosition(ctx, 'RR8', { name: 'RA Manager', jobRoles: ['R5080'] });
  const p = await registerPerson(ctx, {
    givenName: 'Ssrf',
    familyName: 'Manager',
    dateOfBirth: '1980-02-01',
    email: 'ssrf.manager@example.nhs.uk',
    identityAssuranceLevel: 3,
  });
  await assignRoleProfile(ctx, { userId: p.userId, positionId: position.positionId, startDate: '2020-01-01' });
  manager = p.userId;
});
after(() => server?.close());

const PRIVATE_URIS = [
  'https://127.0.0.1/jwks',
  'https://127.1.2.3:8443/jwks',
  'https://localhost/jwks', // a name that resolves to 127.0.0.1
  'https://[::1]/jwks',
  'https://[::ffff:127.0.0.1]/jwks', // IPv4-mapped IPv6
  'https://[0:0:0:0:0:ffff:a9fe:a9fe]/latest/meta-data/', // 169.254.169.254, mapped, in hex
  'https://169.254.169.254/latest/meta-data/iam/security-credentials/',
  'https://0x7f.1/jwks', // 127.0.0.1 written in hex
  'https://2130706433/jwks', // 127.0.0.1 as one number
  'https://10.20.0.5/jwks',
  'https://172.16.4.4/jwks',
  'https://192.168.1.1/jwks',
  'https://100.64.0.1/jwks', // CGNAT
  'https://[fd00::1]/jwks', // ULA
  'https://[fe80::1]/jwks', // link-local
  'https://0.0.0.0/jwks',
  'https://224.0.0.1/jwks',
  'http://rp.example.com/jwks', // plain http
];

async function counts(): Promise<{ clients: string; events: string }> {
  const { rows } = await server.t.db.query<{ clients: string; events: string }>(
    'SELECT (SELECT count(*) FROM oidc_clients)::text AS clients, (SELECT count(*) FROM audit_events)::text AS events',
  );
  return rows[0]!;
}

test(`[${backend}] registering a jwks_uri or back-channel logout URI on a loopback, private, link-local or metadata address (or a name resolving there) is refused naming the field; nothing is saved`, async () => {
  const before = await counts();
  for (const uri of PRIVATE_URIS) {
    await assert.rejects(
      registerClient(strict(), {
        name: 'Internal probe',
        redirectUris: ['https://rp.example.com/cb'],
        tokenEndpointAuthMethod: 'private_key_jwt',
        jwksUri: uri,
      }),
      (err: { code?: string; details?: { problems?: { field: string }[] } }) => {
        assert.equal(err.code, 'request.invalid', uri);
        assert.deepEqual(
          err.details?.problems?.map((p) => p.field),
          ['jwksUri'],
          uri,
        );
        return true;
      },
      `${uri} must be refused`,
    );
    await assert.rejects(
      registerClient(strict(), {
        name: 'Internal probe',
        redirectUris: ['https://rp.example.com/cb'],
        tokenEndpointAuthMethod: 'client_secret_basic',
        backchannelLogoutUri: uri,
      }),
      (err: { code?: string; details?: { problems?: { field: string }[] } }) =>
        err.code === 'request.invalid' && err.details?.problems?.[0]?.field === 'backchannelLogoutUri',
      `${uri} must be refused as a back-channel logout URI`,
    );
  }
  assert.deepEqual(await counts(), before, 'no client and no audit event written');
});

test(`[${backend}] POST /api/v1/clients with a private back-channel logout URI: 400 request.invalid naming the field, nothing saved`, async () => {
  const page = await server.app.inject({ method: 'GET', url: '/signin' });
  const csrfCookie = page.cookies.find((c) => c.name === 'opencis_csrf')!;
  const csrf = /data-csrf="([^"]+)"/.exec(page.body)![1]!;
  const { token } = await unitOfWork(server.t.db)((tx) =>
    startSession(
      tx,
      server.operator(),
      { userId: manager, aal: 3, amr: ['SMARTCARD'], authenticatorId: 'test' },
      null,
      { ip: null, userAgent: null },
    ),
  );
  const before = await counts();
  const res = await server.app.inject({
    method: 'POST',
    url: '/api/v1/clients',
    headers: {
      'content-type': 'application/json',
      cookie: `opencis_csrf=${csrfCookie.value}; opencis_session=${token}`,
      'csrf-token': csrf,
    },
    payload: JSON.stringify({
      name: 'Metadata probe',
      redirectUris: ['https://rp.example.com/cb'],
      tokenEndpointAuthMethod: 'client_secret_basic',
      backchannelLogoutUri: 'https://169.254.169.254/latest/meta-data/',
    }),
  });
  assert.equal(res.statusCode, 400, res.body);
  const body = res.json() as { error: { code: string; details: { problems: { field: string }[] } } };
  assert.equal(body.error.code, 'request.invalid');
  assert.equal(body.error.details.problems[0]?.field, 'backchannelLogoutUri');
  assert.deepEqual(await counts(), before);
});

test(`[${backend}] opencis client register --jwks-uri on loopback: exit 1, request.invalid naming jwksUri`, async () => {
  const env = cliEnvFor(null);
  const res = await runOpencis(
    [
      'client',
      'register',
      '--name',
      'Probe',
      '--redirect-uri',
      'https://rp.example.com/cb',
      '--jwks-uri',
      'https://localhost:9443/jwks',
    ],
    env,
  );
  assert.equal(res.code, 1, res.stdout);
  assert.match(res.stderr, /request\.invalid/);
  assert.match(res.stderr, /jwksUri/);
  const list = await runOpencis(['client', 'list'], env);
  assert.equal(list.code, 0, list.stderr);
  assert.doesNotMatch(list.stdout, /Probe/);
});

/** A client saved without the registration check (registered before it existed, or by hand), aimed at `uri`. */
async function savedClient(metadata: Record<string, unknown>): Promise<string> {
  const clientId = `${randomBytes(6).readUIntBE(0, 6) % 10 ** 12}`.padStart(12, '1').concat('.apps.national');
  await server.t.db.query(
    `INSERT INTO oidc_clients (client_id, name, metadata, minimum_aal, created_by, created_at, updated_at)
     VALUES ($1, 'Old registration', $2, 3, 'test', now(), now())`,
    [
      clientId,
      JSON.stringify({
        client_id: clientId,
        client_name: 'Old registration',
        redirect_uris: ['https://rp.example.com/cb'],
        response_types: ['code'],
        grant_types: ['authorization_code'],
        id_token_signed_response_alg: 'RS256',
        scope: 'openid',
        ...metadata,
      }),
    ],
  );
  return clientId;
}

test(`[${backend}] the server never connects to a jwks_uri on loopback, even for a client saved before the check`, async () => {
  const internal = await internalService();
  try {
    for (const uri of [`https://127.0.0.1:${internal.port}/jwks`, `https://localhost:${internal.port}/jwks`]) {
      const clientId = await savedClient({ token_endpoint_auth_method: 'private_key_jwt', jwks_uri: uri });
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const tokenUrl = `${server.url}/oidc/access_token`;
      const assertion = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuer(clientId)
        .setSubject(clientId)
        .setAudience(tokenUrl)
        .setJti(randomBytes(8).toString('hex'))
        .setIssuedAt()
        .setExpirationTime('1m')
        .sign(privateKey);
      const res = await fetch(tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: 'x',
          redirect_uri: 'https://rp.example.com/cb',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: assertion,
        }),
      });
      assert.equal(res.status, 401, uri);
      assert.equal(((await res.json()) as { error: string }).error, 'invalid_client');
    }
    assert.equal(internal.connections(), 0, 'nothing connected to the internal service');
  } finally {
    await internal.close();
  }
});

test(`[${backend}] the server never POSTs a back-channel logout to loopback, even for a client saved before the check`, async () => {
  const internal = await internalService();
  try {
    for (const uri of [
      `https://127.0.0.1:${internal.port}/logout`,
      `https://localhost:${internal.port}/logout`,
      `http://127.0.0.1:${internal.port}/logout`,
    ]) {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const clientId = await savedClient({
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256', use: 'sig' }] },
        backchannel_logout_uri: uri,
        backchannel_logout_session_required: true,
      });
      const client = (await server.app.oidc.provider().Client.find(clientId)) as unknown as {
        backchannelLogout(sub: string, sid: string): Promise<void>;
      };
      await assert.rejects(client.backchannelLogout('555073103107', 'sid-1'), uri);
    }
    assert.equal(internal.connections(), 0, 'nothing connected to the internal service');
  } finally {
    await internal.close();
  }
});

/** A tiny HTTP server on loopback: answers with `answer`, counts requests. */
async function httpService(answer: (port: number) => { status: number; headers?: Record<string, string> }) {
  let hits = 0;
  const srv = createHttpServer((req, res) => {
    hits++;
    const a = answer(port);
    res.writeHead(a.status, a.headers).end('{"keys":[]}');
    req.resume();
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  return {
    port,
    hits: () => hits,
    close: () => new Promise<void>((resolve) => srv.close(() => resolve())).finally(() => srv.closeAllConnections()),
  };
}

test('a redirect is never followed, not even between allowed addresses', async () => {
  const target = await httpService(() => ({ status: 200 }));
  const redirector = await httpService(() => ({
    status: 302,
    headers: { location: `http://127.0.0.1:${target.port}/jwks` },
  }));
  try {
    const fetchOut = outboundFetch(outboundPolicy('127.0.0.0/8', true));
    assert.equal((await fetchOut(`http://127.0.0.1:${target.port}/jwks`)).status, 200, 'an allowed address is reached');
    await assert.rejects(fetchOut(`http://127.0.0.1:${redirector.port}/jwks`), /redirects are not followed/);
    assert.equal(redirector.hits(), 1);
    assert.equal(target.hits(), 1, 'the redirect target was not requested');
  } finally {
    await target.close();
    await redirector.close();
  }
});

test('a name is checked on what it resolves to when connecting (DNS rebinding): public at registration, loopback later', async () => {
  const internal = await internalService();
  let calls = 0;
  // The attacker's DNS: a public address the first time it is asked, 127.0.0.1 after that.
  const rebinding = (
    _host: string,
    _o: { all: true },
    cb: (e: Error | null, a: { address: string; family: number }[]) => void,
  ) => cb(null, [calls++ === 0 ? { address: '93.184.215.14', family: 4 } : { address: '127.0.0.1', family: 4 }]);
  try {
    const uri = `https://rp.example.test:${internal.port}/jwks`;
    assert.equal(await checkOutboundUri(STRICT_OUTBOUND, uri, rebinding), null, 'accepted at registration');
    await assert.rejects(outboundFetch(STRICT_OUTBOUND, rebinding)(uri), /127\.0\.0\.1 is not a public address/);
    // A name that always resolved to loopback is refused at registration already.
    const loopback = (
      _h: string,
      _o: { all: true },
      cb: (e: Error | null, a: { address: string; family: number }[]) => void,
    ) => cb(null, [{ address: '::ffff:127.0.0.1', family: 6 }]);
    assert.match((await checkOutboundUri(STRICT_OUTBOUND, uri, loopback)) ?? '', /resolves to ::ffff:127\.0\.0\.1/);
    assert.equal(internal.connections(), 0);
  } finally {
    await internal.close();
  }
});
