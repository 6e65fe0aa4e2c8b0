import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { AppError } from '../../src/domain/errors.ts';
import { assignRoleProfile, createPosition, endRoleProfile } from '../../src/services/access.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { startSession } from '../../src/services/sessions.ts';
import { activeUpstreamProvider, registerUpstreamIdp, setUpstreamIdpStatus } from '../../src/services/upstream-idps.ts';
import { linkUpstreamAccount } from '../../src/services/upstream-links.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { testContext } from '../support/context.ts';
import { backend } from '../support/db.ts';
import { field } from '../support/oidc-flow.ts';
import { freePort, startTestServer, type TestServer } from '../support/server.ts';
import {
  browseTo,
  HostCookieJar,
  type Page,
  signInUpstream,
  startUpstreamIdp,
  type UpstreamIdp,
} from '../support/upstream-idp.ts';

/**
 * Attacks on federated sign-in, each against a real provider (oidc-provider in child processes): answers with the
 * wrong issuer (a provider stating another issuer; a response from another provider, RFC 9207 `iss`), a tampered
 * nonce, a code issued to another client, a callback without or with a foreign flow, an account not linked, a person
 * no longer working where the provider is offered, a provider disabled or down. Each is a page (4xx/503) and no
 * session; never a 500.
 */
const SECRET = 'upstream-client-secret-0123456789';

let server: TestServer;
let good: UpstreamIdp; // the organisation's provider
let twin: UpstreamIdp; // another real provider, same client registration (a mix-up attacker's)
let liar: UpstreamIdp; // a provider that states another issuer than the one it is reached at
let mover: string; // linked, then their role profile ends
let moverRole: string;
let linked: string;

function clients(serverUrl: string) {
  const redirect = [`${serverUrl}/signin/upstream/callback`];
  return [
    {
      client_id: 'opencis',
      client_secret: SECRET,
      redirect_uris: redirect,
      token_endpoint_auth_method: 'client_secret_post',
    },
    {
      client_id: 'other',
      client_secret: SECRET,
      redirect_uris: redirect,
      token_endpoint_auth_method: 'client_secret_post',
    },
  ];
}

before(async () => {
  server = await startTestServer();
  [good, twin] = await Promise.all([
    startUpstreamIdp({ clients: clients(server.url) }),
    startUpstreamIdp({ clients: clients(server.url) }),
  ]);
  liar = await startUpstreamIdp({
    clients: clients(server.url),
    statedIssuer: 'https://login.example.com/other-tenant/v2.0',
  });
  const ctx = server.operator();
  await saveOrganisation(ctx, { odsCode: 'RR8', name: 'Leeds Teaching Hospitals', type: 'trust' });
  await saveOrganisation(ctx, { odsCode: 'RX1', name: 'Nottingham University Hospitals', type: 'trust' });
  const leeds = await createPosition(ctx, 'RR8', { name: 'Ward nurse', jobRoles: ['R8001'] });
  const notts = await createPosition(ctx, 'RX1', { name: 'Ward nurse', jobRoles: ['R8001'] });
  const person = async (n: number, positionId: string) => {
    const p = await registerPerson(ctx, {
      givenName: 'Fed',
      familyName: `Attack${'abcdef'[n]}`,
      dateOfBirth: `1982-04-0${n}`,
      identityAssuranceLevel: 3,
    });
    const role = await assignRoleProfile(ctx, { userId: p.userId, positionId, startDate: '2020-01-01' });
    return { userId: p.userId, roleId: role.personRoleId };
  };
  linked = (await person(1, leeds.positionId)).userId;
  const m = await person(2, leeds.positionId);
  mover = m.userId;
  moverRole = m.roleId;
  const elsewhere = (await person(3, notts.positionId)).userId;
  const register = (idpId: string, issuer: string) =>
    registerUpstreamIdp(ctx, {
      idpId,
      name: idpId,
      issuer,
      clientId: 'opencis',
      clientSecret: SECRET,
      allowedOdsCodes: ['RR8'],
    });
  await register('good', good.issuer);
  await register('twin', twin.issuer);
  await register('liar', liar.issuer);
  await register('down', `http://127.0.0.1:${await freePort()}`);
  await register('off', good.issuer);
  await setUpstreamIdpStatus(ctx, 'off', 'disabled');
  const idp = await activeUpstreamProvider(ctx, 'good');
  await linkUpstreamAccount(ctx, idp, { userId: linked, subject: 'linked.person' });
  await linkUpstreamAccount(ctx, idp, { userId: mover, subject: 'mover.person' });
  // Someone at RX1 cannot be linked to a provider offered to RR8 only, by anyone.
  await assert.rejects(linkUpstreamAccount(ctx, idp, { userId: elsewhere, subject: 'elsewhere' }), (err: unknown) => {
    assert.ok(err instanceof AppError && err.code === 'upstream.organisation_not_allowed');
    return true;
  });
});

after(async () => {
  await Promise.all([good?.stop(), twin?.stop(), liar?.stop()]);
  await server?.close();
});

/** The sign-in page's form for a provider, pressed: the browser is sent to it (or shown OpenCIS's page). */
async function press(idpId: string, jar: HostCookieJar): Promise<Page> {
  const signin = await browseTo(`${server.url}/signin?return=/account`, jar);
  const csrf = field(signin.html, '_csrf');
  return browseTo(`${server.url}/signin/upstream/${idpId}`, jar, {
    method: 'POST',
    form: { _csrf: csrf, return: '/account' },
  });
}

/** Presses the provider's button and returns the authorization request OpenCIS sends the browser to (unfollowed). */
async function startFlow(idpId: string, jar: HostCookieJar): Promise<string> {
  const signin = await browseTo(`${server.url}/signin?return=/account`, jar);
  const res = await fetch(`${server.url}/signin/upstream/${idpId}`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: jar.header(server.url), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: field(signin.html, '_csrf'), return: '/account' }).toString(),
  });
  jar.absorb(server.url, res);
  assert.equal(res.status, 303);
  return res.headers.get('location')!;
}

/** Signs in at a provider and stops at OpenCIS's callback, without following it. */
async function untilCallback(atProvider: Page, jar: HostCookieJar, login: string): Promise<string> {
  const at = await signInUpstream(atProvider, jar, login, `${server.url}/signin/upstream/callback`);
  assert.ok(at.url.startsWith(`${server.url}/signin/upstream/callback?`), at.url);
  return at.url;
}

async function sessionsOf(userId: string): Promise<number> {
  const { rows } = await server.t.db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM web_sessions WHERE user_id = $1 AND authenticator_id LIKE 'upstream:%'",
    [userId],
  );
  return rows[0]!.n;
}

function assertRefusedPage(page: Page, status: number, code: string): void {
  assert.equal(page.status, status, `${code}: ${page.status} ${page.url} ${page.html.slice(0, 200)}`);
  assert.match(page.html, /You are not signed in/);
  assert.match(page.html, new RegExp(`<code>${code.replace('.', '\\.')}</code>`));
}

test(`[${backend}] the baseline: a linked account signs in (AAL2, NHSMAIL) — the attacks below start from this flow`, async () => {
  const jar = new HostCookieJar();
  const landed = await signInUpstream(await press('good', jar), jar, 'linked.person');
  assert.equal(landed.url, `${server.url}/account`);
  assert.match(landed.html, /NHSMAIL<\/span> at assurance level <span id="session-aal">AAL2/);
});

test(`[${backend}] wrong iss: a provider stating another issuer is refused at discovery; a response from another provider (RFC 9207 iss) is refused`, async () => {
  const before = await sessionsOf(linked);
  assertRefusedPage(await press('liar', new HostCookieJar()), 400, 'upstream.response_invalid');
  // Mix-up: the flow is started with "good"; the browser is sent instead to "twin" with the same request (same client
  // ID, redirect URI, state, nonce, PKCE), signs in there, and twin's answer arrives at OpenCIS's callback.
  const jar = new HostCookieJar();
  const mixed = (await startFlow('good', jar)).replace(good.issuer, twin.issuer);
  const atTwin = await browseTo(mixed, jar);
  const callback = await untilCallback(atTwin, jar, 'linked.person');
  assert.equal(new URL(callback).searchParams.get('iss'), twin.issuer);
  assertRefusedPage(await browseTo(callback, jar), 400, 'upstream.response_invalid');
  assert.equal(await sessionsOf(linked), before, 'no session');
});

test(`[${backend}] wrong nonce: the authorization request tampered on its way to the provider → refused`, async () => {
  const before = await sessionsOf(linked);
  const jar = new HostCookieJar();
  const request = new URL(await startFlow('good', jar));
  request.searchParams.set('nonce', 'attacker-chosen-nonce');
  const callback = await untilCallback(await browseTo(request.toString(), jar), jar, 'linked.person');
  assertRefusedPage(await browseTo(callback, jar), 400, 'upstream.response_invalid');
  assert.equal(await sessionsOf(linked), before);
});

test(`[${backend}] a code issued to another client (client_id tampered in the request) → refused by the provider, a page here`, async () => {
  const jar = new HostCookieJar();
  const request = new URL(await startFlow('good', jar));
  request.searchParams.set('client_id', 'other');
  const callback = await untilCallback(await browseTo(request.toString(), jar), jar, 'linked.person');
  assertRefusedPage(await browseTo(callback, jar), 400, 'upstream.response_invalid');
});

test(`[${backend}] the callback without this browser's flow, with another state, or replayed → refused`, async () => {
  const jar = new HostCookieJar();
  const callback = await untilCallback(await press('good', jar), jar, 'linked.person');
  // Delivered to another browser (no flow cookie): refused; a wrong state: refused.
  assertRefusedPage(await browseTo(callback, new HostCookieJar()), 400, 'upstream.flow_invalid');
  const wrongState = new URL(callback);
  wrongState.searchParams.set('state', 'not-the-state');
  const jar2 = new HostCookieJar();
  const callback2 = await untilCallback(await press('good', jar2), jar2, 'linked.person');
  const forged = new URL(callback2);
  forged.searchParams.set('state', 'not-the-state');
  assertRefusedPage(await browseTo(forged.toString(), jar2), 400, 'upstream.flow_invalid');
  // A garbage flow cookie.
  const jar3 = new HostCookieJar();
  jar3.set(server.url, 'opencis_upstream', 'v1.junk.junk.junk');
  assertRefusedPage(await browseTo(wrongState.toString(), jar3), 400, 'upstream.flow_invalid');
  // The real callback, once (it works), then again (the flow cookie is gone, the code used).
  const ok = await browseTo(callback, jar);
  assert.equal(ok.url, `${server.url}/account`);
  assertRefusedPage(await browseTo(callback, jar), 400, 'upstream.flow_invalid');
});

test(`[${backend}] an account not linked to any record: a page saying so, and the refusal audited`, async () => {
  const jar = new HostCookieJar();
  const page = await signInUpstream(await press('good', jar), jar, 'stranger.account');
  assertRefusedPage(page, 403, 'upstream.not_linked');
  assert.match(page.html, /Ask your Registration Authority to link it/);
  const { rows } = await server.t.db.query(
    "SELECT 1 FROM audit_events WHERE action = 'signin.failed' AND after->>'subject' = 'stranger.account'",
  );
  assert.equal(rows.length, 1);
});

test(`[${backend}] a person whose role at the provider's organisation has ended cannot sign in through it`, async () => {
  await endRoleProfile(testContext(server.t.db, { clock: server.clock }), moverRole, 'moved to another trust');
  const jar = new HostCookieJar();
  assertRefusedPage(
    await signInUpstream(await press('good', jar), jar, 'mover.person'),
    403,
    'upstream.organisation_not_allowed',
  );
  assert.equal(await sessionsOf(mover), 0);
});

test(`[${backend}] a provider that is down, before the sign-in or at the callback: a 503 page, never a 500`, async () => {
  assertRefusedPage(await press('down', new HostCookieJar()), 503, 'upstream.unavailable');
  // Up when the person is sent there, down when its answer comes back (the code cannot be redeemed).
  const flaky = await startUpstreamIdp({ clients: clients(server.url) });
  await registerUpstreamIdp(server.operator(), {
    idpId: 'flaky',
    name: 'Flaky',
    issuer: flaky.issuer,
    clientId: 'opencis',
    clientSecret: SECRET,
    allowedOdsCodes: ['RR8'],
  });
  await linkUpstreamAccount(server.operator(), await activeUpstreamProvider(server.operator(), 'flaky'), {
    userId: linked,
    subject: 'linked.flaky',
  });
  const jar = new HostCookieJar();
  const callback = await untilCallback(await press('flaky', jar), jar, 'linked.flaky');
  await flaky.stop();
  assertRefusedPage(await browseTo(callback, jar), 503, 'upstream.unavailable');
});

test(`[${backend}] a disabled or unknown provider: no sign-in, a page`, async () => {
  assertRefusedPage(await press('off', new HostCookieJar()), 404, 'upstream.idp_not_found');
  assertRefusedPage(await press('NOPE', new HostCookieJar()), 404, 'upstream.idp_not_found');
  const signin = await browseTo(`${server.url}/signin`, new HostCookieJar());
  assert.doesNotMatch(signin.html, /upstream\/off"/, 'a disabled provider is not offered');
});

test(`[${backend}] linking: only for a person signed in, into their own record; an RA outside the person's organisations is refused`, async () => {
  // No session: the account page sends to sign in, and the link endpoint starts nothing.
  const anon = await browseTo(`${server.url}/signin`, new HostCookieJar());
  const res = await fetch(`${server.url}/account/upstream/good/link`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: field(anon.html, '_csrf') }).toString(),
  });
  assert.ok(res.status === 403 || res.status === 303, String(res.status));
  assert.ok(!(res.headers.get('location') ?? '').startsWith(good.issuer));
  // A link flow started by A, finished in a browser where B is signed in: refused (the flow names A).
  const jarA = new HostCookieJar();
  const a = await unitOfWork(server.t.db)((tx) =>
    startSession(tx, server.operator(), { userId: linked, aal: 2, amr: ['TOTP'], authenticatorId: 'test' }, null, {
      ip: null,
      userAgent: null,
    }),
  );
  jarA.set(server.url, 'opencis_session', a.token);
  const account = await browseTo(`${server.url}/account`, jarA);
  // "good" is linked already for this person: the page offers no second link; the other RR8 providers are offered.
  assert.doesNotMatch(account.html, /upstream\/good\/link/);
  const form = /<form method="post" action="(\/account\/upstream\/twin\/link)">([\s\S]*?)<\/form>/.exec(account.html);
  assert.ok(form);
  const atTwin = await browseTo(new URL(form[1]!, server.url).toString(), jarA, {
    method: 'POST',
    form: { _csrf: field(form[2]!, '_csrf') },
  });
  const callback = await untilCallback(atTwin, jarA, 'someone.else');
  const b = await unitOfWork(server.t.db)((tx) =>
    startSession(tx, server.operator(), { userId: mover, aal: 2, amr: ['TOTP'], authenticatorId: 'test' }, null, {
      ip: null,
      userAgent: null,
    }),
  );
  jarA.set(server.url, 'opencis_session', b.token);
  assertRefusedPage(await browseTo(callback, jarA), 400, 'upstream.flow_invalid');
  const { rows } = await server.t.db.query("SELECT 1 FROM upstream_links WHERE subject = 'someone.else'");
  assert.equal(rows.length, 0, 'nothing linked');
  // An RA Agent at RX1 cannot link anyone at RR8.
  const ra = await createPosition(server.operator(), 'RX1', { name: 'RA Agent', jobRoles: ['R5090'] });
  const raPerson = await registerPerson(server.operator(), {
    givenName: 'Far',
    familyName: 'Away',
    dateOfBirth: '1970-07-07',
    identityAssuranceLevel: 3,
  });
  await assignRoleProfile(server.operator(), {
    userId: raPerson.userId,
    positionId: ra.positionId,
    startDate: '2020-01-01',
  });
  const page = await server.app.inject({ method: 'GET', url: '/signin' });
  const csrfCookie = page.cookies.find((c) => c.name === 'opencis_csrf')!;
  const csrf = /data-csrf="([^"]+)"/.exec(page.body)![1]!;
  const s = await unitOfWork(server.t.db)((tx) =>
    startSession(
      tx,
      server.operator(),
      { userId: raPerson.userId, aal: 3, amr: ['SMARTCARD'], authenticatorId: 't' },
      null,
      {
        ip: null,
        userAgent: null,
      },
    ),
  );
  const refused = await server.app.inject({
    method: 'POST',
    url: `/api/v1/people/${mover}/upstream-links`,
    headers: {
      cookie: `opencis_csrf=${csrfCookie.value}; opencis_session=${s.token}`,
      'csrf-token': csrf,
      'content-type': 'application/json',
    },
    payload: JSON.stringify({ idpId: 'twin', subject: 'mover.twin' }),
  });
  assert.equal(refused.statusCode, 403, refused.body);
  assert.equal((refused.json() as { error: { code: string } }).error.code, 'auth.forbidden');
  const none = await server.t.db.query("SELECT 1 FROM upstream_links WHERE subject = 'mover.twin'");
  assert.equal(none.rows.length, 0);
});
