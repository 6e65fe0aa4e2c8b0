import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { postgresAdapterFactory } from '../../src/oidc/adapter.ts';
import { cis2Claims, cis2ClaimsForGrant, saveGrantContext } from '../../src/oidc/claims.ts';
import { currentRequest, takeDeferredConsume } from '../../src/oidc/read-together.ts';
import { redisAdapterFactory } from '../../src/oidc/redis-adapter.ts';
import { assignRoleProfile, createPosition, endRoleProfile } from '../../src/services/access.ts';
import { BUNDLED_CATALOGUE, loadCatalogue, readCatalogueFile } from '../../src/services/catalogue.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import type { Database } from '../../src/storage/database.ts';
import { repositoriesOn } from '../../src/storage/repositories/index.ts';
import { testContext } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';

/**
 * The OpenID Connect provider's storage: the artefact adapter (on PGlite it keeps what it wrote, so it must never answer
 * with something the table no longer holds) and the claims, read in one statement per token.
 */
let t: TestDatabase;
let counted: { db: Database; statements: string[] };

before(async () => {
  t = await createTestDatabase();
  const statements: string[] = [];
  const raw = t.db;
  counted = {
    statements,
    db: {
      kind: raw.kind,
      query: (sql, params) => {
        statements.push(sql);
        return raw.query(sql, params);
      },
      transaction: (fn) => raw.transaction(fn),
      exec: (sql) => raw.exec(sql),
      close: () => raw.close(),
    },
  };
});
after(() => t.close());

async function row(model: string, id: string) {
  const { rows } = await t.db.query<{ consumed: boolean }>(
    'SELECT consumed_at IS NOT NULL AS consumed FROM oidc_payloads WHERE model = $1 AND id = $2',
    [model, id],
  );
  return rows[0];
}

test(`[${backend}] an artefact consumed, destroyed or revoked is seen so at once, by every provider on the database`, async () => {
  // Two adapter factories on one database: two providers in one process (a key reload builds a new one).
  const a = postgresAdapterFactory(counted.db);
  const b = postgresAdapterFactory(counted.db);
  const code = { accountId: '900000000001', grantId: 'grant-1', clientId: 'c', kind: 'AuthorizationCode' };
  await a('AuthorizationCode').upsert('code-1', code, 60);
  await a('AccessToken').upsert('at-1', { ...code, kind: 'AccessToken' }, 3600);
  await a('AccessToken').upsert('at-2', { ...code, grantId: 'grant-2', kind: 'AccessToken' }, 3600);
  await a('Session').upsert('sess-1', { accountId: '900000000001', uid: 'uid-1', kind: 'Session' }, 3600);

  assert.deepEqual(await b('AuthorizationCode').find('code-1'), code);
  assert.equal((await b('Session').findByUid('uid-1'))?.accountId, '900000000001');

  await a('AuthorizationCode').consume('code-1');
  const consumed = await b('AuthorizationCode').find('code-1');
  assert.equal(typeof consumed?.consumed, 'number', 'the second use of a code is seen as a replay');
  assert.equal((await row('AuthorizationCode', 'code-1'))?.consumed, true);

  await b('AccessToken').revokeByGrantId('grant-1');
  assert.equal(await a('AccessToken').find('at-1'), undefined, 'a revoked grant takes its tokens with it');
  assert.equal(await a('AuthorizationCode').find('code-1'), undefined);
  assert.equal(await row('AccessToken', 'at-1'), undefined);
  assert.equal((await a('AccessToken').find('at-2'))?.grantId, 'grant-2', 'another grant is untouched');

  await b('Session').destroy('sess-1');
  assert.equal(await a('Session').find('sess-1'), undefined);
  assert.equal(await a('Session').findByUid('uid-1'), undefined, 'a signed-out session is not found by its uid');

  // Saved again: the new payload, never the one before.
  await a('Session').upsert('sess-2', { accountId: '900000000001', uid: 'uid-2', authorizations: {} }, 3600);
  await b('Session').upsert('sess-2', { accountId: '900000000001', uid: 'uid-2', authorizations: { c: {} } }, 3600);
  assert.deepEqual((await a('Session').findByUid('uid-2'))?.authorizations, { c: {} });
});

test(`[${backend}] consuming is atomic: of racing uses of one code exactly one wins; the others revoke its grant`, async () => {
  const a = postgresAdapterFactory(counted.db);
  const b = postgresAdapterFactory(counted.db);
  const code = { accountId: '900000000002', grantId: 'grant-race', clientId: 'c', kind: 'AuthorizationCode' };
  await a('AuthorizationCode').upsert('code-race', code, 60);
  await a('AccessToken').upsert('at-race', { ...code, kind: 'AccessToken' }, 3600);
  const results = await Promise.allSettled([
    a('AuthorizationCode').consume('code-race'),
    b('AuthorizationCode').consume('code-race'),
    a('AuthorizationCode').consume('code-race'),
  ]);
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results));
  for (const r of results.filter((x) => x.status === 'rejected')) {
    assert.equal((r as PromiseRejectedResult).reason.error, 'invalid_grant');
  }
  assert.equal(await a('AccessToken').find('at-race'), undefined, 'the grant is revoked on a replay');
  await assert.rejects(
    b('AuthorizationCode').consume('code-race'),
    (e: { error?: string }) => e.error === 'invalid_grant',
  );
});

test(`[${backend}] consuming is atomic in Redis too`, async () => {
  const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  const prefix = `opencis-test:${process.pid}:${randomBytes(4).toString('hex')}:`;
  try {
    const a = redisAdapterFactory(redis, prefix);
    const other = new Redis('redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 });
    await other.connect();
    const b = redisAdapterFactory(other, prefix);
    try {
      const code = { accountId: '900000000003', grantId: 'grant-r', clientId: 'c', kind: 'AuthorizationCode' };
      await a('AuthorizationCode').upsert('code-r', code, 60);
      await a('AccessToken').upsert('at-r', { ...code, kind: 'AccessToken' }, 3600);
      const results = await Promise.allSettled([
        a('AuthorizationCode').consume('code-r'),
        b('AuthorizationCode').consume('code-r'),
        b('AuthorizationCode').consume('code-r'),
      ]);
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results));
      assert.equal(await a('AccessToken').find('at-r'), undefined, 'the grant is revoked on a replay');
    } finally {
      other.disconnect();
    }
  } finally {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  }
});

test(`[${backend}] an expired artefact is not found`, async () => {
  const a = postgresAdapterFactory(counted.db);
  await a('AuthorizationCode').upsert('code-short', { accountId: '900000000001', grantId: 'g-short' }, 1);
  assert.ok(await a('AuthorizationCode').find('code-short'));
  await new Promise((r) => setTimeout(r, 1_100));
  assert.equal(await a('AuthorizationCode').find('code-short'), undefined);
});

test(`[${backend}] reading back an artefact this node wrote: from memory on PGlite (one process), from the table on PostgreSQL`, async () => {
  const a = postgresAdapterFactory(counted.db);
  await a('Grant').upsert('grant-read', { accountId: '900000000001', clientId: 'c', kind: 'Grant' }, 3600);
  counted.statements.length = 0;
  assert.equal((await a('Grant').find('grant-read'))?.clientId, 'c');
  assert.equal(counted.statements.length, backend === 'pglite' ? 0 : 1);
  // What no adapter on this database wrote is always read from the table.
  assert.equal(await a('Grant').find('grant-never-written'), undefined);
  assert.equal(counted.statements.length, backend === 'pglite' ? 1 : 2);
});

test(`[${backend}] claims: one statement each; ended role profiles never appear; a new catalogue's names at once`, async () => {
  const ctx = testContext(t.db);
  const clock = { now: () => new Date() };
  await saveOrganisation(ctx, { odsCode: 'RX1', name: 'Claims Trust', type: 'trust' });
  const person = await registerPerson(ctx, {
    givenName: 'Ada',
    middleNames: 'Byron King',
    familyName: 'Lovelace',
    dateOfBirth: '1980-12-10',
    identityAssuranceLevel: 3,
  });
  const nurse = await createPosition(ctx, 'RX1', { name: 'Nurse', jobRoles: ['R8001'], activities: ['B0825'] });
  const kept = await assignRoleProfile(ctx, {
    userId: person.userId,
    positionId: nurse.positionId,
    startDate: '2020-01-01',
  });
  const ended = await assignRoleProfile(ctx, {
    userId: person.userId,
    positionId: nurse.positionId,
    startDate: '2020-01-01',
  });
  await endRoleProfile(ctx, ended.personRoleId, 'moved on');
  await saveGrantContext(t.repos, 'grant-claims', person.userId, { aal: 3, personRoleId: kept.personRoleId });

  counted.statements.length = 0;
  const idToken = await cis2ClaimsForGrant(
    repositoriesOn(counted.db),
    person.userId,
    clock.now(),
    'id_token',
    'grant-claims',
  );
  // The ID token's set: identity and assurance, and the profile and email claims (the library keeps those only with
  // their scopes).
  assert.deepEqual(idToken, {
    sub: person.userId,
    id_assurance_level: 3,
    authentication_assurance_level: 3,
    selected_roleid: kept.personRoleId,
    name: `${person.givenName} ${person.familyName}`,
    given_name: person.givenName,
    family_name: person.familyName,
    uid: person.userId,
  });
  assert.equal(counted.statements.length, 1);

  await cis2ClaimsForGrant(repositoriesOn(counted.db), person.userId, clock.now(), 'userinfo', 'grant-claims'); // catalogue names kept
  counted.statements.length = 0;
  const info = await cis2ClaimsForGrant(
    repositoriesOn(counted.db),
    person.userId,
    clock.now(),
    'userinfo',
    'grant-claims',
  );
  assert.equal(counted.statements.length, 1, 'userinfo claims in one statement');
  assert.equal(info.initials, 'ABK');
  assert.equal(info.selected_roleid, kept.personRoleId);
  const roles = info.nhsid_nrbac_roles as { person_roleid: string; activities: string[]; activity_codes: string[] }[];
  assert.deepEqual(
    roles.map((r) => r.person_roleid),
    [kept.personRoleId],
    'the ended role profile is not there',
  );
  assert.deepEqual(roles[0]!.activity_codes, ['B0825']);
  const before = roles[0]!.activities[0]!;
  assert.notEqual(before, 'B0825', 'activities are named');
  assert.deepEqual(info.nhsid_user_orgs, [{ org_code: 'RX1', org_name: 'Claims Trust' }]);
  // With a grant context the caller already has (none here): the same claims without the grant's two.
  const { authentication_assurance_level: _aal, selected_roleid: _role, ...withoutGrant } = info;
  assert.deepEqual(await cis2Claims(t.repos, person.userId, clock.now(), 'userinfo', null), withoutGrant);

  // A new national release renames B0825: the next claims use the new name, with no restart or wait.
  const { catalogue } = await readCatalogueFile(BUNDLED_CATALOGUE);
  const renamed = {
    ...catalogue,
    version: `${catalogue.version}-test`,
    activities: catalogue.activities.map((a) => (a.code === 'B0825' ? { ...a, name: 'Renamed in test' } : a)),
  };
  // (Loaded after the one the test database was made with, which was loaded at the real time of that: a clock ahead.)
  const later = { now: () => new Date(Date.now() + 60_000) };
  await loadCatalogue({ ...ctx, clock: later }, { catalogue: renamed, checksum: 'test-release' });
  const after = await cis2ClaimsForGrant(t.repos, person.userId, clock.now(), 'userinfo', 'grant-claims');
  const renamedRoles = after.nhsid_nrbac_roles as { activities: string[] }[];
  assert.deepEqual(renamedRoles[0]!.activities, ['Renamed in test']);
});

/**
 * Runs `fn` as the provider runs a request: inside oidc-provider's own request context (`Provider.ctx`, the library's
 * AsyncLocalStorage — imported by file, the same module the library uses), for the given route.
 */
async function inRequest<T>(route: 'token' | 'userinfo' | 'introspection', fn: () => Promise<T>): Promise<T> {
  const { default: als } = (await import('../../node_modules/oidc-provider/lib/helpers/als.js' as string)) as {
    default: import('node:async_hooks').AsyncLocalStorage<object>;
  };
  return als.run({ oidc: { route } }, fn);
}

/** The artefacts of one sign-in: a session, its grant, a code and an access token bound to both. */
async function signInArtefacts(adapter: (model: string) => import('oidc-provider').Adapter, tag: string) {
  const accountId = '900000000009';
  const grantId = `grant-${tag}`;
  const sessionUid = `uid-${tag}`;
  await adapter('Session').upsert(`sess-${tag}`, { accountId, uid: sessionUid, authorizations: {} }, 3600);
  await adapter('Grant').upsert(grantId, { accountId, clientId: 'c', kind: 'Grant' }, 3600);
  const token = { accountId, grantId, sessionUid, clientId: 'c', expiresWithSession: true };
  await adapter('AuthorizationCode').upsert(`code-${tag}`, { ...token, kind: 'AuthorizationCode' }, 60);
  await adapter('AccessToken').upsert(`at-${tag}`, { ...token, kind: 'AccessToken' }, 3600);
  return { grantId, sessionUid };
}

test(`[${backend}] within one request a token's grant and session are read with it, once; the next request reads again`, {
  skip: backend === 'pglite' ? 'PGlite answers what this process wrote from memory (the test above)' : false,
}, async () => {
  const a = postgresAdapterFactory(counted.db);
  const { grantId, sessionUid } = await signInArtefacts(a, 'rt');
  const request = async () => {
    counted.statements.length = 0;
    const token = await a('AccessToken').find('at-rt');
    const grant = await a('Grant').find(grantId);
    const session = await a('Session').findByUid(sessionUid);
    return { token, grant, session, statements: [...counted.statements] };
  };
  const first = await inRequest('introspection', request);
  assert.equal(first.token?.grantId, grantId);
  assert.equal(first.grant?.clientId, 'c');
  assert.equal(first.session?.accountId, '900000000009');
  assert.equal(first.statements.length, 1, first.statements.join('\n'));
  assert.match(first.statements[0]!, /oidc_read_together/);

  // Taken once: a second read of the grant in the same request goes to the table.
  await inRequest('introspection', async () => {
    await a('AccessToken').find('at-rt');
    await a('Grant').find(grantId);
    counted.statements.length = 0;
    assert.equal((await a('Grant').find(grantId))?.clientId, 'c');
    assert.equal(counted.statements.length, 1);
  });
  // A write in the request drops what was read together: the session is read from the table after it.
  await inRequest('introspection', async () => {
    await a('AccessToken').find('at-rt');
    await a('Session').upsert(
      'sess-rt',
      { accountId: '900000000009', uid: sessionUid, authorizations: { c: {} } },
      3600,
    );
    counted.statements.length = 0;
    assert.deepEqual((await a('Session').findByUid(sessionUid))?.authorizations, { c: {} });
    assert.equal(counted.statements.length, 1);
  });
  // Outside a request nothing is read together.
  counted.statements.length = 0;
  await a('AccessToken').find('at-rt');
  assert.doesNotMatch(counted.statements.join('\n'), /oidc_read_together/);

  // Between two requests another node ends the session and revokes the grant: the next request sees it.
  await t.db.query("DELETE FROM oidc_payloads WHERE model = 'Session' AND id = 'sess-rt'");
  await t.db.query("DELETE FROM oidc_payloads WHERE model = 'Grant' AND id = $1", [grantId]);
  const next = await inRequest('introspection', request);
  assert.equal(next.grant, undefined);
  assert.equal(next.session, undefined);
  // An expired or missing token: nothing.
  assert.equal(await inRequest('userinfo', () => a('AccessToken').find('at-never')), undefined);
  await a('AccessToken').upsert('at-short', { accountId: '900000000009', grantId, kind: 'AccessToken' }, 1);
  await new Promise((r) => setTimeout(r, 1_100));
  assert.equal(await inRequest('userinfo', () => a('AccessToken').find('at-short')), undefined);
  // A consumed code is found as consumed (the library refuses it as a replay).
  await a('AuthorizationCode').consume('code-rt');
  const replay = await inRequest('token', () => a('AuthorizationCode').find('code-rt'));
  assert.equal(typeof replay?.consumed, 'number');
});

test(`[${backend}] Redis: within one request a token's grant and session come in one round trip; the next request reads again`, async () => {
  const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  // Through a keyPrefix, as REDIS_URL may give one: the keys the script derives must carry it too.
  const keyPrefix = `opencis-test:${process.pid}:${randomBytes(4).toString('hex')}:`;
  const prefixed = new Redis('redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1, keyPrefix });
  await prefixed.connect();
  const calls: string[] = [];
  const spied = new Proxy(prefixed, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || !['get', 'mget', 'eval', 'multi', 'del', 'lrange'].includes(String(prop))) {
        return value;
      }
      return (...args: unknown[]) => {
        calls.push(String(prop));
        return value.apply(target, args);
      };
    },
  });
  try {
    const a = redisAdapterFactory(spied);
    const { grantId, sessionUid } = await signInArtefacts(a, 'rr');
    const request = async () => {
      calls.length = 0;
      const token = await a('AccessToken').find('at-rr');
      const grant = await a('Grant').find(grantId);
      const session = await a('Session').findByUid(sessionUid);
      return { token, grant, session, calls: [...calls] };
    };
    const first = await inRequest('userinfo', request);
    assert.equal(first.token?.grantId, grantId);
    assert.equal(first.grant?.clientId, 'c');
    assert.equal(first.session?.accountId, '900000000009');
    assert.deepEqual(first.calls, ['eval'], 'one round trip');
    // Another node ends the session between two requests: the next one does not find it.
    const sessionKeys = await redis.keys(`${keyPrefix}*Session:sess-rr`);
    assert.equal(sessionKeys.length, 1);
    await redis.del(...sessionKeys);
    const next = await inRequest('userinfo', request);
    assert.equal(next.grant?.clientId, 'c');
    assert.equal(next.session, undefined);
    // A consumed code reads as consumed.
    await a('AuthorizationCode').consume('code-rr');
    const replay = await inRequest('token', () => a('AuthorizationCode').find('code-rr'));
    assert.equal(typeof replay?.consumed, 'number');
    assert.equal(await inRequest('token', () => a('AuthorizationCode').find('code-never')), undefined);
  } finally {
    const keys = await redis.keys(`${keyPrefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    prefixed.disconnect();
    redis.disconnect();
  }
});

test(`[${backend}] within a request a code's use is recorded with the token it gives, atomically: of two racing requests one gets a token`, {}, async () => {
  const a = postgresAdapterFactory(counted.db);
  const b = postgresAdapterFactory(counted.db);
  await signInArtefacts(a, 'dc');
  const token = { accountId: '900000000009', grantId: 'grant-dc', clientId: 'c', kind: 'AccessToken' };

  // One request: the use costs no statement of its own; the token's write records it.
  const statements = await inRequest('token', async () => {
    assert.equal(typeof (await a('AuthorizationCode').find('code-dc'))?.consumed, 'undefined');
    counted.statements.length = 0;
    await a('AuthorizationCode').consume('code-dc');
    assert.equal(counted.statements.length, 0, 'deferred to the next write');
    await a('AccessToken').upsert('at-dc-1', token, 3600);
    return [...counted.statements];
  });
  assert.equal(statements.length, 1);
  assert.match(statements[0]!, /WITH used AS/);
  assert.equal((await row('AuthorizationCode', 'code-dc'))?.consumed, true);
  assert.ok(await a('AccessToken').find('at-dc-1'));

  // The code again (its use read before the first request's commit, as a racing request would): no token is written,
  // the request is refused as a replay and the grant revoked — the first request's token with it.
  await assert.rejects(
    inRequest('token', async () => {
      await b('AuthorizationCode').consume('code-dc');
      await b('AccessToken').upsert('at-dc-2', token, 3600);
    }),
    (e: { error?: string }) => e.error === 'invalid_grant',
  );
  assert.equal(await row('AccessToken', 'at-dc-2'), undefined, 'no token for the replay');
  assert.equal(await row('AccessToken', 'at-dc-1'), undefined, 'the grant revoked');

  // Racing: two requests with one code at once — exactly one writes its token.
  await signInArtefacts(a, 'dr');
  const raced = { ...token, grantId: 'grant-dr' };
  const results = await Promise.allSettled(
    [a, b, a].map((adapter, i) =>
      inRequest('token', async () => {
        await adapter('AuthorizationCode').consume('code-dr');
        await adapter('AccessToken').upsert(`at-dr-${i}`, raced, 3600);
      }),
    ),
  );
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results));
  for (const r of results.filter((x) => x.status === 'rejected')) {
    assert.equal((r as PromiseRejectedResult).reason.error, 'invalid_grant');
  }

  // A request that writes nothing after the use (it failed): the use is recorded when it ends (provider.ts does this).
  await signInArtefacts(a, 'dn');
  await inRequest('token', async () => {
    await a('AuthorizationCode').consume('code-dn');
    assert.equal((await row('AuthorizationCode', 'code-dn'))?.consumed, false, 'not yet');
    await takeDeferredConsume(currentRequest())?.now();
  });
  assert.equal((await row('AuthorizationCode', 'code-dn'))?.consumed, true);
});
