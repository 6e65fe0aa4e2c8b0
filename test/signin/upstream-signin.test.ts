import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { registerClient } from '../../src/services/clients.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { startSession } from '../../src/services/sessions.ts';
import { activeUpstreamProvider, registerUpstreamIdp } from '../../src/services/upstream-idps.ts';
import { linkUpstreamAccount } from '../../src/services/upstream-links.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { backend } from '../support/db.ts';
import { CALLBACK, client, exchange, field, query, RP, type Started, start } from '../support/oidc-flow.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import {
  browseTo,
  HostCookieJar,
  type Page,
  signInUpstream,
  startUpstreamIdp,
  type UpstreamIdp,
} from '../support/upstream-idp.ts';

/**
 * Federated sign-in for CIS2's AAL2_NHSMAIL (DOMAIN §6–7): an organisation's own OpenID Connect provider — here the
 * real oidc-provider in a child process, as NHSmail is Entra ID — registered by the operator for that organisation;
 * a person's account there linked to their record by an RA or by themselves; the sign-in is AAL2 with amr NHSMAIL, and
 * acr_values=AAL2_NHSMAIL selects it.
 */
const UPSTREAM_SECRET = 'upstream-client-secret-0123456789';

let server: TestServer;
let upstream: UpstreamIdp;
let rp: { clientId: string; secret: string };
let nurse: string; // works at RR8 (the provider is offered there)
let selfLinker: string; // RR8 too; links their own account
let agent: string; // RA Agent at RR8

before(async () => {
  server = await startTestServer();
  upstream = await startUpstreamIdp({
    clients: [
      {
        client_id: 'opencis',
        client_secret: UPSTREAM_SECRET,
        redirect_uris: [`${server.url}/signin/upstream/callback`],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
  });
  const ctx = server.operator();
  await saveOrganisation(ctx, { odsCode: 'RR8', name: 'Leeds Teaching Hospitals', type: 'trust' });
  await saveOrganisation(ctx, { odsCode: 'RR8AA', name: 'St James Site', type: 'site', parentOdsCode: 'RR8' });
  const ward = await createPosition(ctx, 'RR8AA', { name: 'Ward nurse', jobRoles: ['R8001'], activities: ['B0825'] });
  const ra = await createPosition(ctx, 'RR8', { name: 'RA Agent', jobRoles: ['R5090'] });
  let n = 0;
  const person = async (positionId: string) => {
    n++;
    const p = await registerPerson(ctx, {
      givenName: 'Fed',
      familyName: `Erated${'abcdef'[n]}`,
      dateOfBirth: `1981-03-0${n}`,
      email: `fed.${n}@example.nhs.uk`,
      identityAssuranceLevel: 3,
    });
    await assignRoleProfile(ctx, { userId: p.userId, positionId, startDate: '2020-01-01' });
    return p.userId;
  };
  nurse = await person(ward.positionId);
  selfLinker = await person(ward.positionId);
  agent = await person(ra.positionId);
  await registerUpstreamIdp(ctx, {
    idpId: 'nhsmail',
    name: 'NHSmail',
    issuer: upstream.issuer,
    clientId: 'opencis',
    clientSecret: UPSTREAM_SECRET,
    subjectClaim: 'oid',
    allowedOdsCodes: ['RR8'],
  });
  const reg = await registerClient(ctx, {
    name: 'Vaccinations',
    redirectUris: [CALLBACK],
    tokenEndpointAuthMethod: 'client_secret_basic',
  });
  rp = { clientId: reg.client.clientId, secret: reg.clientSecret! };
});

after(async () => {
  await upstream?.stop();
  await server?.close();
});

async function rpConfig(): Promise<client.Configuration> {
  return client.discovery(new URL(`${server.url}/oidc`), rp.clientId, {}, client.ClientSecretBasic(rp.secret), {
    execute: [client.allowInsecureRequests],
  });
}

/** From OpenCIS's sign-in page, the "Sign in with NHSmail" button: to the provider's login page. */
async function pressUpstreamButton(signinPage: Page, jar: HostCookieJar): Promise<Page> {
  assert.match(signinPage.html, /Sign in with NHSmail/);
  const form = /<form method="post" action="(\/signin\/upstream\/nhsmail)">([\s\S]*?)<\/form>/.exec(signinPage.html);
  assert.ok(form, 'the upstream sign-in form');
  return browseTo(new URL(form[1]!, server.url).toString(), jar, {
    method: 'POST',
    form: { _csrf: field(form[2]!, '_csrf'), return: field(form[2]!, 'return') },
  });
}

/** A relying party's AAL2_NHSMAIL sign-in, the person signing in at the provider as `login`. */
async function nhsmailSignIn(login: string, jar = new HostCookieJar(), params: Record<string, string> = {}) {
  const config = await rpConfig();
  const started: Started = await start(config, { acr_values: 'AAL2_NHSMAIL', scope: 'openid profile', ...params });
  const signin = await browseTo(started.url, jar, { stopAt: RP });
  assert.equal(new URL(signin.url).pathname, '/signin', signin.url);
  assert.equal(query(signin.url).get('via'), 'upstream');
  const atProvider = await pressUpstreamButton(signin, jar);
  assert.ok(atProvider.url.startsWith(upstream.issuer), atProvider.url);
  const landed = await signInUpstream(atProvider, jar, login, RP);
  return { config, started, landed, jar };
}

test(`[${backend}] an RA links the person's NHSmail account; AAL2_NHSMAIL signs them in through it: AAL2, amr NHSMAIL`, async () => {
  const idp = await activeUpstreamProvider(server.operator(), 'nhsmail');
  await linkUpstreamAccount(server.operator(), idp, { userId: nurse, subject: 'oid-nurse.one' });
  const { config, started, landed } = await nhsmailSignIn('nurse.one');
  assert.ok(landed.url.startsWith(CALLBACK), `${landed.url} ${landed.status} ${landed.html.slice(0, 300)}`);
  const tokens = await exchange(config, started, landed.url);
  const claims = tokens.claims()!;
  assert.equal(claims.sub, nurse);
  assert.equal(claims.acr, 'AAL2_NHSMAIL');
  assert.deepEqual(claims.amr, ['NHSMAIL']);
  assert.equal(claims.authentication_assurance_level, 2);
  // The OpenCIS session: AAL2, NHSMAIL, through that link; the sign-in is in the audit trail.
  const { rows } = await server.t.db.query<{ aal: number; amr: string[]; authenticator_id: string }>(
    'SELECT aal, amr, authenticator_id FROM web_sessions WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1',
    [nurse],
  );
  assert.equal(rows[0]!.aal, 2);
  assert.deepEqual(rows[0]!.amr, ['NHSMAIL']);
  assert.match(rows[0]!.authenticator_id, /^upstream:upl_/);
  const audit = await server.t.db.query(
    "SELECT 1 FROM audit_events WHERE action = 'session.started' AND target_id = $1 AND after->>'authenticatorId' LIKE 'upstream:%'",
    [nurse],
  );
  assert.equal(audit.rows.length, 1);
});

test(`[${backend}] an NHSmail session meets AAL2_OR_AAL3_ANY, not AAL3_ANY (step-up to AAL3 asked)`, async () => {
  const { config, started, landed, jar } = await nhsmailSignIn('nurse.one');
  await exchange(config, started, landed.url);
  const met = await start(config, { acr_values: 'AAL2_OR_AAL3_ANY' });
  const metLanded = await browseTo(met.url, jar, { stopAt: RP });
  assert.ok(metLanded.url.startsWith(CALLBACK), metLanded.url);
  const c = (await exchange(config, met, metLanded.url)).claims()!;
  assert.equal(c.acr, 'AAL2_OR_AAL3_ANY');
  assert.deepEqual(c.amr, ['NHSMAIL']);
  const strong = await browseTo((await start(config, { acr_values: 'AAL3_ANY' })).url, jar, { stopAt: RP });
  assert.equal(new URL(strong.url).pathname, '/signin');
  assert.equal(query(strong.url).get('aal'), '3');
  assert.doesNotMatch(strong.html, /Sign in with NHSmail/, 'not offered where AAL3 is needed');
});

test(`[${backend}] the person links their own NHSmail account from their account page, then signs in with it`, async () => {
  const jar = new HostCookieJar();
  const { token } = await unitOfWork(server.t.db)((tx) =>
    startSession(tx, server.operator(), { userId: selfLinker, aal: 2, amr: ['TOTP'], authenticatorId: 'test' }, null, {
      ip: null,
      userAgent: null,
    }),
  );
  jar.set(server.url, 'opencis_session', token);
  const account = await browseTo(`${server.url}/account`, jar);
  assert.equal(account.status, 200);
  const form = /<form method="post" action="(\/account\/upstream\/nhsmail\/link)">([\s\S]*?)<\/form>/.exec(
    account.html,
  );
  assert.ok(form, 'a "Link your NHSmail account" button');
  const csp = await fetch(`${server.url}/account`, { headers: { cookie: jar.header(server.url) } });
  assert.match(csp.headers.get('content-security-policy') ?? '', new RegExp(`form-action 'self' ${upstream.issuer}`));
  const atProvider = await browseTo(new URL(form[1]!, server.url).toString(), jar, {
    method: 'POST',
    form: { _csrf: field(form[2]!, '_csrf') },
  });
  assert.ok(atProvider.url.startsWith(upstream.issuer), atProvider.url);
  const back = await signInUpstream(atProvider, jar, 'self.linker');
  assert.equal(back.url, `${server.url}/account`);
  assert.match(back.html, /NHSmail account oid-self\.linker/);
  const linked = await server.t.db.query<{ linked_by: string }>(
    "SELECT linked_by FROM upstream_links WHERE user_id = $1 AND status = 'active'",
    [selfLinker],
  );
  assert.equal(linked.rows[0]!.linked_by, `person:${selfLinker}`);
  // A fresh browser: signing in through it is signing in as that person.
  const { config, started, landed } = await nhsmailSignIn('self.linker');
  assert.equal((await exchange(config, started, landed.url)).claims()!.sub, selfLinker);
});

test(`[${backend}] the RA API: an RA Agent links and unlinks within their organisation's subtree; unlinking ends those sessions`, async () => {
  const page = await server.app.inject({ method: 'GET', url: '/signin' });
  const csrfCookie = page.cookies.find((c) => c.name === 'opencis_csrf')!;
  const csrf = /data-csrf="([^"]+)"/.exec(page.body)![1]!;
  const { token } = await unitOfWork(server.t.db)((tx) =>
    startSession(tx, server.operator(), { userId: agent, aal: 3, amr: ['SMARTCARD'], authenticatorId: 'test' }, null, {
      ip: null,
      userAgent: null,
    }),
  );
  const headers = { cookie: `opencis_csrf=${csrfCookie.value}; opencis_session=${token}`, 'csrf-token': csrf };
  const person = await registerPerson(server.operator(), {
    givenName: 'Linked',
    familyName: 'Byra',
    dateOfBirth: '1990-09-09',
    identityAssuranceLevel: 3,
  });
  const ward = await createPosition(server.operator(), 'RR8', { name: 'Porter', jobRoles: ['R8001'] });
  await assignRoleProfile(server.operator(), {
    userId: person.userId,
    positionId: ward.positionId,
    startDate: '2020-01-01',
  });
  const created = await server.app.inject({
    method: 'POST',
    url: `/api/v1/people/${person.userId}/upstream-links`,
    headers: { ...headers, 'content-type': 'application/json' },
    payload: JSON.stringify({ idpId: 'nhsmail', subject: 'oid-linked.byra' }),
  });
  assert.equal(created.statusCode, 201, created.body);
  const { link } = created.json() as { link: { linkId: string } };
  const listed = await server.app.inject({
    method: 'GET',
    url: `/api/v1/people/${person.userId}/upstream-links`,
    headers,
  });
  assert.deepEqual(
    (listed.json() as { links: { subject: string }[] }).links.map((l) => l.subject),
    ['oid-linked.byra'],
  );
  // Signed in through it, then the RA removes the link: that session ends.
  const { config, started, landed, jar } = await nhsmailSignIn('linked.byra');
  await exchange(config, started, landed.url);
  const removed = await server.app.inject({
    method: 'DELETE',
    url: `/api/v1/people/${person.userId}/upstream-links/${link.linkId}`,
    headers,
  });
  assert.equal(removed.statusCode, 204, removed.body);
  const next = await browseTo((await start(config, { acr_values: 'AAL2_NHSMAIL' })).url, jar, { stopAt: RP });
  assert.equal(new URL(next.url).pathname, '/signin', 'the session through the removed link has ended');
  const again = await nhsmailSignIn('linked.byra');
  assert.equal(again.landed.status, 403);
  assert.match(again.landed.html, /not linked to a Care Identity record/);
});
