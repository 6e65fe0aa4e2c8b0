import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { repositoriesOn, unitOfWork } from '../../src/storage/repositories/index.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';

/*
 * The credential repositories (issue 16: attempts, challenges, certificate authorities, certificates, CRL state), run
 * unchanged on PGlite and PostgreSQL. The services above them are tested through the API in authenticators*, pki*,
 * webauthn* and card*; this suite pins the statements themselves.
 */
const [A, B, C] = ['0a', '0b', '0c'].map((s) => s.repeat(8));
let t: TestDatabase;
before(async () => {
  t = await createTestDatabase();
});
after(() => t.close());

const at = (iso: string) => new Date(iso);

test(`[${backend}] attempt counters: tries counted in a window, locked at the limit, cleared and given back`, async () => {
  const { attempts } = repositoriesOn(t.db);
  const now = at('2026-11-26T10:00:00Z');
  const windowStart = at('2026-11-26T09:45:00Z');
  assert.equal((await attempts.takeTry('k:user:1', now, windowStart)).failures, 1);
  assert.equal((await attempts.takeTry('k:user:1', now, windowStart)).failures, 2);
  assert.equal(await attempts.lockAtLimit('k:user:1', at('2026-11-26T10:15:00Z'), now, 3), false, 'below the limit');
  assert.equal(await attempts.lockAtLimit('k:user:1', at('2026-11-26T10:15:00Z'), now, 2), true);
  assert.deepEqual(await attempts.lockedUntil('k:user:1'), at('2026-11-26T10:15:00Z'));
  const locked = await attempts.takeTry('k:user:1', now, windowStart);
  assert.deepEqual(locked.locked_until && new Date(locked.locked_until), at('2026-11-26T10:15:00Z'));
  assert.equal(locked.failures, 0, 'no try is counted while the counter is locked');

  await attempts.countFailure('k:ip:1', now, windowStart);
  await attempts.countFailure('k:ip:1', now, windowStart);
  await attempts.giveTryBack(['k:ip:1']);
  assert.equal((await attempts.takeTry('k:ip:1', now, windowStart)).failures, 2);
  await attempts.clearCounters(['k:user:1', 'k:ip:1']);
  assert.equal(await attempts.lockedUntil('k:user:1'), null);
  assert.equal((await attempts.takeTry('k:user:1', now, windowStart)).failures, 1, 'a cleared counter starts again');
});

test(`[${backend}] a challenge is taken once, and not after it expires`, async () => {
  const { challenges } = repositoriesOn(t.db);
  const now = at('2026-11-26T10:00:00Z');
  const expiresAt = at('2026-11-26T10:05:00Z');
  await challenges.insertChallenge({
    challengeHash: 'h1',
    kind: 'card.signin',
    userId: null,
    challenge: 'c1',
    data: '{"kind":"x"}',
    expiresAt,
  });
  assert.equal(await challenges.takeChallenge('h1', 'webauthn.register', now), undefined, 'another kind');
  const taken = await challenges.takeChallenge('h1', 'card.signin', now);
  assert.equal(taken?.challenge, 'c1');
  assert.equal(await challenges.takeChallenge('h1', 'card.signin', now), undefined, 'used');
  await challenges.insertChallenge({
    ...{ challengeHash: 'h2', kind: 'k', userId: null, challenge: 'c2' },
    data: '{}',
    expiresAt,
  });
  assert.equal(await challenges.takeChallenge('h2', 'k', expiresAt), undefined, 'expired');
});

test(`[${backend}] authorities and certificates: one active CA, revocation bumps the CRL state`, async () => {
  const transaction = unitOfWork(t.db);
  const now = at('2026-11-26T10:00:00Z');
  await transaction(async (tx) => {
    await tx.authorities.lockAuthorities();
    assert.equal(await tx.authorities.activeAuthorityCertificate(), undefined);
    await tx.authorities.insertAuthority({
      id: 'ca_test',
      name: 'Test CA',
      algorithm: 'ECDSA-P256',
      der: Buffer.from([0x30, 0x01]),
      sealedKey: 'sealed',
      notAfter: at('2036-11-26T10:00:00Z'),
      now,
    });
  });
  const repos = repositoriesOn(t.db);
  assert.equal(await repos.authorities.activeAuthorityId(), 'ca_test');
  assert.equal(await repos.authorities.authorityIdWithCertificate(Buffer.from([0x30, 0x01])), 'ca_test');
  assert.equal((await repos.authorities.findAuthority('ca_test'))?.key_algorithm, 'ECDSA-P256');

  const cert = {
    authorityId: 'ca_test',
    userId: '555000000001',
    cardId: null,
    subject: 'CN=555000000001',
    notBefore: now,
    notAfter: at('2028-11-26T10:00:00Z'),
    der: Buffer.from([0x30, 0x02]),
    publicKeySha256: 'ab'.repeat(32),
    now,
  };
  await repos.certificates.insertCertificate({ ...cert, serial: A });
  await repos.certificates.insertCertificate({ ...cert, serial: B });
  const days = await repos.certificates.validEndsPerDay(at('2028-11-25T00:00:00Z'), at('2028-11-28T00:00:00Z'));
  assert.deepEqual(days, [{ day: '2028-11-26', n: 2 }]);
  assert.deepEqual(await repos.certificates.expiriesPerDay(now, at('2028-12-01T00:00:00Z'), null), days);

  const before = await repos.certificates.revocationVersion();
  await transaction(async (tx) => {
    assert.deepEqual(await tx.certificates.revokeValidCertificate(A, now, 'keyCompromise'), [
      { serial: A, user_id: '555000000001', card_id: null },
    ]);
    assert.deepEqual(await tx.certificates.revokeValidCertificate(A, now, 'keyCompromise'), [], 'already revoked');
    await tx.certificates.bumpRevocationVersion();
  });
  assert.equal(BigInt(await repos.certificates.revocationVersion()), BigInt(before) + 1n);
  assert.equal(await repos.certificates.certificateExists(A), true);
  assert.equal(await repos.certificates.certificateExists(C), false);
  const statuses = await repos.certificates.statusesOf('ca_test', [A, B, C]);
  assert.deepEqual(statuses.map((s) => [s.serial, s.status]).sort(), [
    [A, 'revoked'],
    [B, 'valid'],
  ]);
  const entries = await repos.certificates.revokedUnexpired('ca_test', now);
  assert.deepEqual(
    entries.map((e) => e.serial),
    [A],
  );
  const first = await repos.certificates.nextCrlNumber();
  const second = await repos.certificates.nextCrlNumber();
  assert.equal(BigInt(second.crl_number), BigInt(first.crl_number) + 1n, 'CRL numbers strictly increase');
  assert.equal((await repos.certificates.verificationRow(B, 'ca_test'))?.status, 'valid');
  assert.equal((await repos.certificates.verificationRows(C))[0]?.user_id, null, 'a serial the CA never issued');

  assert.equal(await repos.authorities.retireActiveAuthority(), 'ca_test');
  assert.equal(await repos.authorities.activeAuthorityId(), undefined);
  assert.deepEqual(await repos.authorities.authorityIds(), [{ id: 'ca_test', status: 'retired' }]);
});
