import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { repositoriesOn, unitOfWork } from '../../src/storage/repositories/index.ts';
import { testContext } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';
import { saveTestOrganisations } from '../support/organisations.ts';

/*
 * The repositories of OIDC, CIS1, audit, jobs and operations (src/storage/repositories/), run unchanged on PGlite and
 * PostgreSQL (TEST_DATABASE). The features' own suites test them through the services; these check each statement's
 * contract directly: what it writes, what it returns, and the single-use and locking rules the services rely on.
 */
let t: TestDatabase;
before(async () => {
  t = await createTestDatabase();
  await saveTestOrganisations(testContext(t.db));
});
after(() => t.close());

const repos = () => repositoriesOn(t.db);

test(`[${backend}] clients: registered, found, listed by owner, re-keyed and switched off`, async () => {
  const r = repos();
  assert.equal((await r.organisations.findOrganisation('RR8'))?.odsCode, 'RR8', 'the owner a client is checked for');
  assert.equal(await r.organisations.findOrganisation('ZZZ99'), undefined);
  assert.equal(await r.clients.clientExists('repo-client-1'), false);
  const at = new Date('2026-11-26T10:00:00Z');
  await r.clients.insertClient({
    clientId: 'repo-client-1',
    name: 'Repository test',
    metadata: { client_id: 'repo-client-1', 'urn:opencis:access_token_ttl': 7200 },
    secretSealed: 'sealed-secret',
    minimumAal: 2,
    createdBy: 'cli:test@host',
    at,
    odsCode: 'RR8',
  });
  assert.equal(await r.clients.clientExists('repo-client-1'), true);
  const found = await r.clients.findClient('repo-client-1');
  assert.equal(found?.name, 'Repository test');
  assert.deepEqual(found?.metadata, { client_id: 'repo-client-1', 'urn:opencis:access_token_ttl': 7200 });
  assert.equal(found?.odsCode, 'RR8');
  assert.equal(found?.status, 'active');
  assert.deepEqual(
    (await r.clients.listClients(['RR8'])).map((c) => c.clientId),
    ['repo-client-1'],
  );
  assert.deepEqual(await r.clients.listClients(['X09']), []);
  assert.ok((await r.clients.listClients(null)).some((c) => c.clientId === 'repo-client-1'));
  assert.ok(((await r.clients.longestAccessTokenTtl()) ?? 0) >= 7200);

  const rekeyed = await r.clients.rekeyClient('repo-client-1', { metadata: { jwks_uri: 'x' }, secretSealed: null, at });
  assert.deepEqual(rekeyed.metadata, { jwks_uri: 'x' });
  assert.equal((await r.clients.clientForProvider('repo-client-1'))?.secretSealed, 'sealed-secret', 'secret kept');

  await r.clients.setClientStatus('repo-client-1', 'disabled', 'cli:test@host', at);
  assert.deepEqual(await r.clients.clientOwnership('repo-client-1'), {
    odsCode: 'RR8',
    status: 'disabled',
    statusChangedBy: 'cli:test@host',
  });
  assert.equal(await r.clients.clientOwnership('nobody'), undefined);
  assert.equal(await r.clients.clientForProvider('nobody'), undefined);
});

test(`[${backend}] artefacts: written, found by id and uid, consumed once, revoked by grant, purged when expired`, async () => {
  const a = repos().oidcArtefacts;
  const values = (id: string, extra: Partial<Parameters<typeof a.upsertArtefact>[0]> = {}) => ({
    model: 'AuthorizationCode',
    id,
    json: JSON.stringify({ jti: id, grantId: 'g-1' }),
    grantId: 'g-1',
    userCode: null,
    uid: `uid-${id}`,
    accountId: '555000000001',
    expiresAt: new Date(Date.now() + 60_000),
    ...extra,
  });
  assert.deepEqual(await a.upsertArtefact(values('code-1')), [{ consumedAt: null }]);
  const byId = await a.findArtefact('AuthorizationCode', 'id', 'code-1');
  const payload = typeof byId?.payload === 'string' ? JSON.parse(byId.payload) : byId?.payload;
  assert.deepEqual(payload, { jti: 'code-1', grantId: 'g-1' });
  assert.ok(await a.findArtefact('AuthorizationCode', 'uid', 'uid-code-1'));
  assert.equal(await a.grantOfArtefact('AuthorizationCode', 'code-1'), 'g-1');

  assert.ok((await a.consumeArtefact('AuthorizationCode', 'code-1')) instanceof Date, 'the first use wins');
  assert.equal(await a.consumeArtefact('AuthorizationCode', 'code-1'), undefined, 'a second use does not');

  // The token written with the use of a code: only while the code is unused.
  await a.upsertArtefact(values('code-2'));
  const token = { ...values('token-1'), model: 'AccessToken' };
  assert.equal((await a.upsertArtefactUsing(token, { model: 'AuthorizationCode', id: 'code-2' })).length, 1);
  const replay = { ...values('token-2'), model: 'AccessToken' };
  assert.equal((await a.upsertArtefactUsing(replay, { model: 'AuthorizationCode', id: 'code-2' })).length, 0);
  assert.equal(await a.findArtefact('AccessToken', 'id', 'token-2'), undefined, 'nothing written on a replay');

  await a.deleteGrantArtefacts('g-1');
  assert.equal(await a.findArtefact('AccessToken', 'id', 'token-1'), undefined);
  assert.equal(await a.findArtefact('AuthorizationCode', 'id', 'code-1'), undefined);

  await a.upsertArtefact(values('old', { grantId: null, expiresAt: new Date(Date.now() - 1_000) }));
  assert.ok((await a.purgeExpiredArtefacts()) >= 1);
  assert.equal(await a.findArtefact('AuthorizationCode', 'id', 'old'), undefined);

  await a.upsertArtefact({
    ...values('sess-1', { grantId: null }),
    model: 'Session',
    json: JSON.stringify({ uid: 'u', authorizations: {} }),
  });
  assert.deepEqual(
    (await a.liveSessionsOf('555000000001')).map((s) => s.id),
    ['sess-1'],
  );
  await a.deleteArtefact('Session', 'sess-1');
  assert.deepEqual(await a.liveSessionsOf('555000000001'), []);
});

test(`[${backend}] signing keys: one ring lock, published then retiring, retired past their overlap`, async () => {
  const at = new Date();
  const kids = await unitOfWork(t.db)(async (tx) => {
    await tx.oidcKeys.lockKeyRing();
    await tx.oidcKeys.insertSigningKey({
      kid: 'repo-kid-1',
      alg: 'RS256',
      publicJwk: { kty: 'RSA' },
      privateJwkSealed: 'sealed',
      at,
      activateAfter: null,
    });
    assert.ok((await tx.oidcKeys.activeAlgorithms()).includes('RS256'));
    return tx.oidcKeys.retireActiveKeys(new Date(at.getTime() - 1_000));
  });
  assert.ok(kids.includes('repo-kid-1'));
  const live = await repos().oidcKeys.liveSigningKeys();
  assert.equal(live.find((k) => k.kid === 'repo-kid-1')?.status, 'retiring');
  await repos().oidcKeys.markKeysRetired(['repo-kid-1']);
  assert.equal(
    (await repos().oidcKeys.liveSigningKeys()).find((k) => k.kid === 'repo-kid-1'),
    undefined,
  );
  const all = await repos().oidcKeys.listSigningKeys(true);
  assert.equal(all.find((k) => k.kid === 'repo-kid-1')?.status, 'retired');
  assert.equal(
    (await repos().oidcKeys.listSigningKeys(false)).find((k) => k.kid === 'repo-kid-1'),
    undefined,
    'retired keys listed with all only',
  );
});

test(`[${backend}] logout: failed deliveries queued once per client and sid, retried, delivered`, async () => {
  const l = repos().oidcLogout;
  const d = { clientId: 'repo-client-1', accountId: '555000000001', sid: 'sid-1', reason: 'signed_out', error: 'x' };
  await l.queueDelivery(d);
  await l.queueDelivery(d);
  await l.queueRpInitiatedDelivery({ ...d, sid: 'sid-2' });
  const due = await t.db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM oidc_logout_deliveries WHERE client_id = 'repo-client-1'",
  );
  assert.equal(due.rows[0]!.n, 2);
  await t.db.query("UPDATE oidc_logout_deliveries SET next_attempt = now() WHERE client_id = 'repo-client-1'");
  const locked = await unitOfWork(t.db)((tx) => tx.oidcLogout.lockDueDeliveries());
  const mine = locked.filter((x) => x.clientId === 'repo-client-1');
  assert.equal(mine.length, 2);
  await l.markDelivered(mine[0]!.deliveryId);
  await l.recordFailedDelivery(mine[1]!.deliveryId, 'still failing', true);
  await l.postponeDelivery(mine[1]!.deliveryId, 60);
  assert.deepEqual(
    (await unitOfWork(t.db)((tx) => tx.oidcLogout.lockDueDeliveries())).filter((x) => x.clientId === 'repo-client-1'),
    [],
  );
  assert.deepEqual(await unitOfWork(t.db)((tx) => tx.oidcLogout.lockPendingSessionEnds(10)), []);
});

test(`[${backend}] jobs: registered once, claimed by one node until its lease ends, finished with a result`, async () => {
  const j = repos().jobs;
  await j.registerJob('repo-job', 60);
  await j.registerJob('repo-job', 120);
  assert.equal(await j.claimDueJob('repo-job', 'node-a', 300), true);
  assert.equal(await j.claimDueJob('repo-job', 'node-b', 300), false, 'leased and no longer due');
  await j.finishJob('repo-job', 'ok', 'node-a');
  const { rows } = await t.db.query<{ every_seconds: number; last_result: string; lease_until: Date | null }>(
    "SELECT every_seconds, last_result, lease_until FROM scheduled_jobs WHERE name = 'repo-job'",
  );
  assert.deepEqual(rows[0], { every_seconds: 120, last_result: 'ok', lease_until: null });
  assert.deepEqual(await repos().roleProfiles.endRoleProfilesBefore('2000-01-01', new Date()), []);
});

test(`[${backend}] audit: lanes advance one at a time, events and seals read back in order`, async () => {
  const before = await repos().audit.laneHeads();
  const lane0 = before.find((h) => h.lane === 0)!;
  await unitOfWork(t.db)(async (tx) => {
    const head = (await tx.audit.advanceLane(0))!;
    assert.equal(head.laneSeq, lane0.position + 1);
    await tx.audit.insertEvent({
      seq: head.seq,
      lane: 0,
      laneSeq: head.laneSeq,
      at: new Date(),
      actor: 'system:test',
      action: 'repo.tested',
      targetType: 'repo_test',
      targetId: 'one',
      before: null,
      after: { ok: true },
      requestId: null,
      reason: null,
      prevHash: head.hash,
      hash: 'f'.repeat(64),
    });
  });
  const trail = await repos().audit.trailOf('repo_test', 'one');
  assert.deepEqual(
    trail.map((e) => e.action),
    ['repo.tested'],
  );
  const after = await repos().audit.laneHeads();
  assert.deepEqual(
    after.find((h) => h.lane === 0),
    { lane: 0, position: lane0.position + 1, hash: 'f'.repeat(64) },
  );
  const page = await repos().audit.lanePage(0, lane0.position, lane0.position + 1, 10);
  assert.equal(page.length, 1);
  assert.ok((await repos().audit.laneTops()).some((x) => x.lane === 0 && x.top === lane0.position + 1));
  assert.equal(await repos().audit.advanceLane(10_000), undefined, 'no such lane');

  const found = await repos().auditSearch.searchEvents({
    orgs: null,
    newStarters: false,
    action: 'repo.tested',
    limit: 5,
  });
  assert.deepEqual(
    found.map((e) => e.target_id),
    ['one'],
  );
  assert.deepEqual(
    await repos().auditSearch.searchEvents({ orgs: ['RR8'], newStarters: false, action: 'repo.tested', limit: 5 }),
    [],
  );

  const last = await repos().audit.lastSeal();
  await unitOfWork(t.db)(async (tx) => {
    await tx.audit.lockSealing();
    await tx.audit.insertSeal({
      id: (last?.id ?? 0) + 1,
      at: new Date().toISOString(),
      tips: [[1, 'a'.repeat(64)]],
      prevHash: last?.hash ?? '0'.repeat(64),
      hash: 'b'.repeat(64),
      keyId: 'k1',
    });
  });
  assert.equal(await repos().audit.hasSignedSeal(), true);
  assert.equal((await repos().audit.sealsAfter(last?.id ?? 0)).length, 1);
  assert.equal((await repos().audit.sealsAfter(0, 1)).length, 1);
});

test(`[${backend}] CIS1 signing keys and operations: one active key, counts and the health check`, async () => {
  const k = repos().cis1SigningKeys;
  assert.equal(await k.findSigningKey('nope'), undefined);
  await unitOfWork(t.db)(async (tx) => {
    await tx.cis1SigningKeys.lockSigningKeyCreation(7_272_740_009);
    if (await tx.cis1SigningKeys.activeSigningKeyId()) return;
    await tx.cis1SigningKeys.insertSigningKey({
      keyId: 'repo-cis1-key',
      certificateDer: Buffer.from([1, 2, 3]),
      privateKeySealed: 'sealed',
      notAfter: new Date('2031-01-01T00:00:00Z'),
      at: new Date(),
    });
  });
  const id = await k.activeSigningKeyId();
  assert.ok(id);
  const key = await k.findSigningKey(id);
  assert.equal(key?.keyId, id);

  const o = repos().operations;
  await o.ping();
  assert.equal(typeof (await repos().people.peopleCount()), 'number');
  assert.deepEqual(Object.keys(await o.outboxCounts()).sort(), ['failed', 'queued']);
  assert.deepEqual(await o.failedNotifications(['RR8'], new Date(0), 10), []);
  assert.equal(await repos().webauthnCredentials.findCredential('nope'), undefined);
  assert.equal(await repos().oidcClaims.claimsState('555999999999', '2026-11-26', null, false), null);
});
