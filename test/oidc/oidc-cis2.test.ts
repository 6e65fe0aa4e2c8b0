import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { type CryptoKey, decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { registerClient } from '../../src/services/clients.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { backend } from '../support/db.ts';
import {
  CALLBACK,
  CookieJar,
  client,
  exchange,
  field,
  follow,
  postForm,
  query,
  radios,
  type Started,
  signIn,
  start,
} from '../support/oidc-flow.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/**
 * The CIS2 compatibility profile (docs/cis2.md), bullet by bullet of issue "CIS2 drop-in", on a server whose issuer has
 * CIS2's shape (…/openam/oauth2/realms/root/realms/NHSIdentity/realms/Healthcare): a relying party configured as for
 * CIS2 — no PKCE, private_key_jwt with RS512, the default scopes — signs in unmodified; refresh tokens rotate; acr is
 * the value asked for and met; the ID token carries CIS2's claims with their types.
 */
const CIS2_PATH = '/openam/oauth2/realms/root/realms/NHSIdentity/realms/Healthcare';

let server: TestServer;
let issuer: string;
let nurse: { userId: string; roleIds: string[] };
let rs512: { clientId: string; key: CryptoKey; kid: string };
let offline: { clientId: string; secret: string };

before(async () => {
  server = await startTestServer({ OIDC_PATH: CIS2_PATH });
  issuer = `${server.url}${CIS2_PATH}`;
  const ctx = server.operator();
  await saveOrganisation(ctx, { odsCode: 'RR8', name: 'Leeds Teaching Hospitals', type: 'trust' });
  const p = await registerPerson(ctx, {
    title: 'Dr',
    givenName: 'Nia',
    middleNames: 'Mai',
    familyName: 'Cis-Two',
    dateOfBirth: '1984-05-06',
    email: 'nia.cistwo@example.nhs.uk',
    identityAssuranceLevel: 3,
  });
  const roleIds: string[] = [];
  for (const name of ['Ward nurse', 'Matron']) {
    const pos = await createPosition(ctx, 'RR8', { name, jobRoles: ['R8001'], activities: ['B0825'] });
    roleIds.push(
      (await assignRoleProfile(ctx, { userId: p.userId, positionId: pos.positionId, startDate: '2020-01-01' }))
        .personRoleId,
    );
  }
  nurse = { userId: p.userId, roleIds };

  // Registered as an RA Manager would for a CIS2 application: only its name, redirect URI and public key (RS512).
  const pair = await generateKeyPair('RS512', { extractable: true, modulusLength: 2048 });
  const kid = 'mbs-key-1';
  const reg = await registerClient(ctx, {
    name: 'Breast screening',
    redirectUris: [CALLBACK],
    jwks: { keys: [{ ...(await exportJWK(pair.publicKey)), kid, alg: 'RS512', use: 'sig' }] },
  });
  rs512 = { clientId: reg.client.clientId, key: pair.privateKey, kid };
  const off = await registerClient(ctx, {
    name: 'Offline EPR',
    redirectUris: [CALLBACK],
    tokenEndpointAuthMethod: 'client_secret_basic',
    scopes: ['openid', 'profile', 'offline_access'],
  });
  offline = { clientId: off.client.clientId, secret: off.clientSecret! };
});

after(() => server?.close());

async function configRs512(): Promise<client.Configuration> {
  return client.discovery(
    new URL(issuer),
    rs512.clientId,
    {},
    client.PrivateKeyJwt({ key: rs512.key, kid: rs512.kid }),
    {
      execute: [client.allowInsecureRequests],
    },
  );
}

async function configOffline(): Promise<client.Configuration> {
  return client.discovery(new URL(issuer), offline.clientId, {}, client.ClientSecretBasic(offline.secret), {
    execute: [client.allowInsecureRequests],
  });
}

/**
 * A whole sign-in, failing on any page on the way but /signin after prompt=login, where the person signs in afresh
 * (a sign-in from before the request does not do for prompt=login).
 */
async function signInAt(
  config: client.Configuration,
  jar: CookieJar,
  params: Record<string, string>,
  options: { pkce?: boolean } = {},
): Promise<{ tokens: Awaited<ReturnType<typeof exchange>>; started: Started; hops: string[] }> {
  const started = await start(config, params, options);
  let landed = await follow(started.url, jar);
  if (params.prompt === 'login' && new URL(landed.url).pathname === '/signin') {
    await signIn(server, nurse.userId, 3, ['SMARTCARD'], jar);
    landed = await follow(new URL(query(landed.url).get('return')!, server.url).toString(), jar);
  }
  assert.ok(landed.url.startsWith(CALLBACK), `expected the callback, got ${landed.url} (${landed.status})`);
  return { tokens: await exchange(config, started, landed.url), started, hops: landed.hops };
}

function leftHalfSha256(value: string): string {
  return createHash('sha256').update(value).digest().subarray(0, 16).toString('base64url');
}

test(`[${backend}] a CIS2-shaped issuer path: discovery and every endpoint under it, with CIS2's endpoint names`, async () => {
  const res = await fetch(`${issuer}/.well-known/openid-configuration`);
  assert.equal(res.status, 200);
  const d = (await res.json()) as Record<string, unknown>;
  assert.equal(d.issuer, issuer);
  assert.equal(d.authorization_endpoint, `${issuer}/authorize`);
  assert.equal(d.token_endpoint, `${issuer}/access_token`);
  assert.equal(d.userinfo_endpoint, `${issuer}/userinfo`);
  assert.equal(d.jwks_uri, `${issuer}/connect/jwk_uri`);
  assert.equal(d.end_session_endpoint, `${issuer}/connect/endSession`);
  assert.equal(d.introspection_endpoint, `${issuer}/introspect`);
  assert.equal(d.revocation_endpoint, `${issuer}/token/revoke`);
  assert.deepEqual(d.response_types_supported, ['code']);
  assert.deepEqual(d.code_challenge_methods_supported, ['S256']);
  assert.deepEqual([...(d.token_endpoint_auth_methods_supported as string[])].sort(), [
    'client_secret_basic',
    'client_secret_post',
    'private_key_jwt',
  ]);
  assert.deepEqual([...(d.token_endpoint_auth_signing_alg_values_supported as string[])].sort(), [
    'ES256',
    'PS256',
    'RS256',
    'RS512',
  ]);
  assert.ok((d.id_token_signing_alg_values_supported as string[]).includes('RS256'));
  const acr = d.acr_values_supported as string[];
  for (const v of [
    'AAL3_ANY',
    'AAL2_OR_AAL3_ANY',
    'AAL2_ANY',
    'AAL3_SMARTCARD',
    'AAL3_FIDO2',
    'AAL2_TOTP',
    'AAL2_NHSMAIL',
  ]) {
    assert.ok(acr.includes(v), v);
  }
  assert.ok(!acr.includes('AAL1_USERPASS'), 'AAL1_USERPASS (passwords) is not offered');
  for (const s of [
    'openid',
    'profile',
    'email',
    'nhsperson',
    'associatedorgs',
    'nationalrbacaccess',
    'selectedrole',
    'changedrole',
  ]) {
    assert.ok((d.scopes_supported as string[]).includes(s), s);
  }
  assert.equal(d.claims_parameter_supported, false);
  assert.equal(d.backchannel_logout_supported, true);
  assert.equal(d.backchannel_logout_session_supported, true);
});

test(`[${backend}] an unmodified CIS2 client: no PKCE, an RS512 private_key_jwt assertion, the default scopes, prompt=login`, async () => {
  const config = await configRs512();
  const jar = await signIn(server, nurse.userId, 3, ['SMARTCARD']);
  const { tokens, started } = await signInAt(
    config,
    jar,
    // manage-breast-screening's request: its scopes, prompt=login, its acr_values, no code_challenge.
    { scope: 'openid profile email nhsperson associatedorgs', prompt: 'login', acr_values: 'AAL2_OR_AAL3_ANY' },
    { pkce: false },
  );
  assert.ok(!new URL(started.url).searchParams.has('code_challenge'));
  const claims = tokens.claims()!;
  assert.equal(claims.sub, nurse.userId);
  assert.equal(claims.acr, 'AAL2_OR_AAL3_ANY');
  assert.equal(claims.authentication_assurance_level, 3);
  assert.equal(claims.id_assurance_level, 3);
  const info = await client.fetchUserInfo(config, tokens.access_token, nurse.userId);
  assert.equal(info.email, 'nia.cistwo@example.nhs.uk');
  assert.equal(info.given_name, 'Nia');
  assert.equal(info.family_name, 'Cis-Two');
  assert.deepEqual(info.nhsid_user_orgs, [{ org_code: 'RR8', org_name: 'Leeds Teaching Hospitals' }]);
});

test(`[${backend}] PKCE when the client sends it: held to it (no verifier, or a wrong one → invalid_grant)`, async () => {
  const config = await configRs512();
  const jar = await signIn(server, nurse.userId, 3, ['SMARTCARD']);
  for (const verifier of [undefined, client.randomPKCECodeVerifier()]) {
    const started = await start(config, { scope: 'openid' });
    const landed = await follow(started.url, jar);
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS512', kid: rs512.kid })
      .setIssuer(rs512.clientId)
      .setSubject(rs512.clientId)
      .setAudience(`${issuer}/access_token`)
      .setIssuedAt()
      .setExpirationTime('5m')
      .setJti(randomUUID())
      .sign(rs512.key);
    const res = await postForm(`${issuer}/access_token`, {
      grant_type: 'authorization_code',
      code: query(landed.url).get('code')!,
      redirect_uri: CALLBACK,
      ...(verifier ? { code_verifier: verifier } : {}),
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error, 'invalid_grant');
  }
});

test(`[${backend}] the ID token carries CIS2's claims with their types: name, email, azp, at_hash, s_hash, sid, acr, amr`, async () => {
  const config = await configRs512();
  const jar = await signIn(server, nurse.userId, 3, ['SMARTCARD']);
  const { tokens, started } = await signInAt(config, jar, { scope: 'openid profile email nhsperson' }, { pkce: false });
  const c = decodeJwt(tokens.id_token!);
  assert.equal(c.iss, issuer);
  assert.equal(c.aud, rs512.clientId);
  assert.equal(c.azp, rs512.clientId);
  assert.equal(c.nonce, started.nonce);
  assert.equal(c.at_hash, leftHalfSha256(tokens.access_token));
  assert.equal(c.s_hash, leftHalfSha256(started.state));
  assert.equal(c.c_hash, undefined, 'no c_hash: the code is not returned with an ID token (code flow only)');
  // sid only for clients with a back-channel logout URI (OpenID Connect Back-Channel Logout 1.0 §2.4; oidc-flows tests it)
  assert.equal(c.sid, undefined);
  assert.equal(c.name, 'Nia Cis-Two');
  assert.equal(c.given_name, 'Nia');
  assert.equal(c.family_name, 'Cis-Two');
  assert.equal(c.uid, nurse.userId);
  assert.equal(c.email, 'nia.cistwo@example.nhs.uk');
  assert.equal(c.acr, 'AAL3_ANY', 'no acr_values: the registered default, AAL3_ANY as CIS2');
  assert.deepEqual(c.amr, ['SMARTCARD']);
  assert.equal(typeof c.auth_time, 'number');
  assert.equal(typeof c.iat, 'number');
  assert.equal(typeof c.exp, 'number');
  assert.equal(c.id_assurance_level, 3);
  assert.equal(c.authentication_assurance_level, 3);
  // Without the profile and email scopes, no name or email in the ID token.
  const bare = decodeJwt((await signInAt(config, jar, { scope: 'openid' }, { pkce: false })).tokens.id_token!);
  assert.equal(bare.name, undefined);
  assert.equal(bare.email, undefined);
  assert.equal(bare.azp, rs512.clientId);

  // Userinfo: the same person, claims with the types CIS2 gives them.
  const info = await client.fetchUserInfo(config, tokens.access_token, nurse.userId);
  assert.equal(info.sub, nurse.userId);
  assert.equal(info.nhsid_useruid, nurse.userId);
  assert.equal(info.title, 'Dr');
  assert.equal(info.initials, 'NM');
  assert.equal(info.middle_names, 'Mai');
  assert.equal(info.display_name, 'Nia Cis-Two');
  assert.equal(info.idassurancelevel, 3);
  assert.equal(info.at_hash, undefined, 'binding claims are for the ID token only');
  assert.equal(info.s_hash, undefined);
});

test(`[${backend}] refresh tokens rotate: a new one each time; the used one is refused, and presenting it again revokes the grant`, async () => {
  const config = await configOffline();
  const jar = await signIn(server, nurse.userId, 3, ['SMARTCARD']);
  const { tokens } = await signInAt(config, jar, { scope: 'openid offline_access' });
  const first = tokens.refresh_token!;
  assert.ok(first);
  const second = await client.refreshTokenGrant(config, first);
  assert.ok(second.refresh_token);
  assert.notEqual(second.refresh_token, first, 'a new refresh token');
  assert.equal(second.claims()!.sub, nurse.userId);
  const third = await client.refreshTokenGrant(config, second.refresh_token!);
  assert.notEqual(third.refresh_token, second.refresh_token);
  // The first, used already: refused, and (RFC 9700 §4.14.2) the whole grant is revoked — the newest refresh token and
  // the access token it came with stop working too.
  await assert.rejects(client.refreshTokenGrant(config, first), (err: Error & { error?: string }) => {
    assert.equal(err.error, 'invalid_grant');
    return true;
  });
  await assert.rejects(client.refreshTokenGrant(config, third.refresh_token!));
  assert.equal((await client.tokenIntrospection(config, third.access_token)).active, false);
});

test(`[${backend}] acr after single sign-on is the value this request asked for and the session meets, not the first one`, async () => {
  const config = await configRs512();
  const jar = await signIn(server, nurse.userId, 3, ['SMARTCARD']);
  const first = await signInAt(config, jar, { acr_values: 'AAL3_SMARTCARD' }, { pkce: false });
  assert.equal(first.tokens.claims()!.acr, 'AAL3_SMARTCARD');
  for (const [asked, expected] of [
    ['AAL2_OR_AAL3_ANY', 'AAL2_OR_AAL3_ANY'],
    ['AAL3_ANY', 'AAL3_ANY'],
    ['AAL3_FIDO2 AAL3_SMARTCARD', 'AAL3_SMARTCARD'],
    ['AAL3_SMARTCARD', 'AAL3_SMARTCARD'],
  ] as const) {
    const next = await signInAt(config, jar, { acr_values: asked }, { pkce: false });
    assert.ok(!next.hops.some((h) => new URL(h).pathname === '/signin'), `${asked}: no new sign-in`);
    assert.equal(next.tokens.claims()!.acr, expected, asked);
    assert.deepEqual(next.tokens.claims()!.amr, ['SMARTCARD']);
    assert.equal(next.tokens.claims()!.auth_time, first.tokens.claims()!.auth_time);
  }
  // prompt=none too (a silent check at another relying party): the value asked for.
  const silent = await signInAt(
    config,
    jar,
    { acr_values: 'AAL2_ANY AAL2_OR_AAL3_ANY', prompt: 'none' },
    { pkce: false },
  );
  assert.equal(silent.tokens.claims()!.acr, 'AAL2_OR_AAL3_ANY');
});

test(`[${backend}] AAL1_USERPASS (not offered) gets unmet_authentication_requirements, with prompt=none too; AAL2_NHSMAIL asks for an upstream sign-in`, async () => {
  const config = await configRs512();
  for (const prompt of [undefined, 'none']) {
    for (const jar of [new CookieJar(), await signIn(server, nurse.userId, 3, ['SMARTCARD'])]) {
      const started = await start(
        config,
        { acr_values: 'AAL1_USERPASS', ...(prompt ? { prompt } : {}) },
        { pkce: false },
      );
      const landed = await follow(started.url, jar);
      assert.ok(landed.url.startsWith(CALLBACK), landed.url);
      assert.equal(query(landed.url).get('error'), 'unmet_authentication_requirements');
      assert.equal(query(landed.url).get('state'), started.state);
    }
  }
  const jar = await signIn(server, nurse.userId, 3, ['SMARTCARD']);
  const nhsmail = await follow((await start(config, { acr_values: 'AAL2_NHSMAIL' }, { pkce: false })).url, jar);
  assert.equal(new URL(nhsmail.url).pathname, '/signin');
  assert.equal(query(nhsmail.url).get('via'), 'upstream');
  assert.equal(query(nhsmail.url).get('aal'), null);
});

test(`[${backend}] changedrole (CIS2's scope to change role, with prompt=login) shows the role list again`, async () => {
  const config = await configRs512();
  const jar = await signIn(server, nurse.userId, 3, ['SMARTCARD'], new CookieJar(), new Date(Date.now() - 60_000));
  const scope = 'openid profile email nationalrbacaccess associatedorgs';
  const first = await start(config, { scope: `${scope} selectedrole` }, { pkce: false });
  const list = await follow(first.url, jar);
  assert.equal(list.status, 200, list.url);
  assert.deepEqual(radios(list.html).sort(), [...nurse.roleIds].sort());
  const chosen = await follow(`${list.url}/role`, jar, {
    method: 'POST',
    form: { _csrf: field(list.html, '_csrf'), personRoleId: nurse.roleIds[0]! },
  });
  assert.equal((await exchange(config, first, chosen.url)).claims()!.selected_roleid, nurse.roleIds[0]);
  // Change role: prompt=login → sign in afresh, then the list again.
  const change = await start(config, { scope: `${scope} changedrole`, prompt: 'login' }, { pkce: false });
  const toSignIn = await follow(change.url, jar);
  assert.equal(new URL(toSignIn.url).pathname, '/signin', toSignIn.url);
  await signIn(server, nurse.userId, 3, ['SMARTCARD'], jar);
  const again = await follow(new URL(query(toSignIn.url).get('return')!, server.url).toString(), jar);
  assert.deepEqual(radios(again.html).sort(), [...nurse.roleIds].sort());
  const switched = await follow(`${again.url}/role`, jar, {
    method: 'POST',
    form: { _csrf: field(again.html, '_csrf'), personRoleId: nurse.roleIds[1]! },
  });
  const tokens = await exchange(config, change, switched.url);
  assert.equal(tokens.claims()!.selected_roleid, nurse.roleIds[1]);
  assert.equal(
    (await client.fetchUserInfo(config, tokens.access_token, nurse.userId)).selected_roleid,
    nurse.roleIds[1],
  );
});
