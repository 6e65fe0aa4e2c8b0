import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { verifyAuditChain } from '../../src/services/audit-verify.ts';
import {
  type CardConfig,
  certifyCard,
  finishCardSignIn,
  passcodeGrant,
  redeemCardGrant,
  startCardChallenge,
  startCardIssue,
} from '../../src/services/cards.ts';
import {
  ensureCertificateAuthority,
  listCertificateAuthorities,
  rotateCertificateAuthority,
  verifyAuthenticationCertificate,
} from '../../src/services/certificates.ts';
import { registerPerson } from '../../src/services/people.ts';
import { SoftwareCardKey } from '../support/card.ts';
import { cliEnvFor, runOpencis } from '../support/cli.ts';
import { TestClock, testContext, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';

// CA rotation without downtime (issue 7, operations): a new CA becomes active on every node at once; certificates of
// the retired one keep working until they expire. And the `opencis ca` command that drives it.

let t: TestDatabase;
const clock = new TestClock(new Date('2026-11-26T09:00:00Z'));
const ctx = () => testContext(t.db, { clock });
const ORIGIN = 'http://localhost:3000';
const cardConfig: CardConfig = { origin: ORIGIN, publicUrl: ORIGIN, transportSoPin: '87654321' };
let n = 0;

before(async () => {
  t = await createTestDatabase();
  await ensureCertificateAuthority(ctx());
});
after(() => t.close());

async function cardHolder() {
  n++;
  const p = await registerPerson(ctx(), {
    givenName: `Rotate${n}`,
    familyName: 'Holder',
    dateOfBirth: '1984-02-03',
    identityAssuranceLevel: 3,
  });
  const key = new SoftwareCardKey();
  const tokenSerial = `TOKEN-ROT-${n}`;
  const { card, grant } = await startCardIssue(ctx(), cardConfig, { userId: p.userId, kind: 'physical' });
  await redeemCardGrant(ctx(), cardConfig, { grant, tokenSerial });
  const { certificate } = await certifyCard(ctx(), cardConfig, {
    grant,
    tokenSerial,
    publicKey: key.spkiBase64(),
    proof: key.sign(ORIGIN, grant),
  });
  await redeemCardGrant(ctx(), cardConfig, { grant: await passcodeGrant(ctx(), card.cardId), tokenSerial });
  return { userId: p.userId, key, certificate };
}

async function signIn(h: { key: SoftwareCardKey; certificate: Buffer }) {
  const { challengeId, challenge } = await startCardChallenge(ctx(), 'signin');
  return finishCardSignIn(ctx(), cardConfig, {
    challengeId,
    certificate: h.certificate.toString('base64'),
    signature: h.key.sign(ORIGIN, challenge),
    algorithm: 'ES256',
  });
}

test(`[${backend}] rotating the CA: old cards keep signing in, new cards chain to the new CA`, async () => {
  const before = await cardHolder();
  const [oldCa] = await listCertificateAuthorities(t.repos);
  const rotated = await rotateCertificateAuthority(ctx(), { algorithm: 'RSA-2048', name: 'OpenCIS Issuing CA 2' });
  assert.notEqual(rotated.id, oldCa!.id);
  const all = await listCertificateAuthorities(t.repos);
  assert.deepEqual(
    all.map((c) => [c.id, c.status]),
    [
      [rotated.id, 'active'],
      [oldCa!.id, 'retired'],
    ],
  );
  // The card issued before the rotation still signs in; its certificate still verifies.
  assert.equal((await signIn(before)).userId, before.userId);
  await verifyAuthenticationCertificate(t.repos, before.certificate, clock.now());

  // A card issued now chains to the new CA, not the old one.
  const after = await cardHolder();
  const cert = new X509Certificate(after.certificate);
  assert.ok(cert.verify(new X509Certificate(rotated.certificateDer).publicKey));
  assert.equal(cert.verify(new X509Certificate(oldCa!.certificateDer).publicKey), false);
  assert.equal((await signIn(after)).userId, after.userId);

  const { rows } = await t.db.query<{ n: string }>(
    "SELECT count(*) AS n FROM audit_events WHERE action = 'pki.ca_rotated' AND target_id = $1",
    [rotated.id],
  );
  assert.equal(rows[0]!.n, '1');
});

test(`[${backend}] opencis ca show / rotate / import, and what it refuses`, async () => {
  const env = cliEnvFor(t);
  const shown = await runOpencis(['ca', 'show'], env);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /^active /m);

  const pem = await runOpencis(['ca', 'show', '--pem'], env);
  assert.equal(pem.code, 0, pem.stderr);
  const active = new X509Certificate(pem.stdout);
  assert.ok(active.ca);

  const rotated = await runOpencis(['ca', 'rotate', '--name', 'Rotated by CLI'], env);
  assert.equal(rotated.code, 0, rotated.stderr);
  assert.match(rotated.stdout, /CN=Rotated by CLI/);
  const again = await runOpencis(['ca', 'show'], env);
  assert.match(again.stdout, /^active .*CN=Rotated by CLI/m);
  assert.match(again.stdout, /^retired /m);

  // A CA made offline with openssl: EC P-256, cA=TRUE, keyCertSign + cRLSign.
  const dir = mkdtempSync(join(tmpdir(), 'opencis-ca-import-'));
  const key = join(dir, 'ca.key');
  const crt = join(dir, 'ca.crt');
  execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  execFileSync('openssl', [
    'req',
    '-x509',
    '-new',
    '-key',
    key,
    '-subj',
    '/CN=Offline Issuing CA',
    '-days',
    '3650',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-out',
    crt,
  ]);
  const imported = await runOpencis(['ca', 'import', '--certificate', crt, '--key', key], env);
  assert.equal(imported.code, 0, imported.stderr);
  assert.match((await runOpencis(['ca', 'show'], env)).stdout, /^active .*CN=Offline Issuing CA/m);

  // Refused, with a message and a non-zero exit, changing nothing.
  const leaf = join(dir, 'leaf.crt');
  execFileSync('openssl', [
    'req',
    '-x509',
    '-new',
    '-key',
    key,
    '-subj',
    '/CN=Not a CA',
    '-days',
    '30',
    '-addext',
    'basicConstraints=critical,CA:FALSE',
    '-out',
    leaf,
  ]);
  writeFileSync(join(dir, 'big.pem'), 'A'.repeat(200_000));
  writeFileSync(join(dir, 'junk.pem'), '<?xml version="1.0"?><not-a-key/>');
  const refusals: [string[], number, RegExp][] = [
    [['ca', 'rotate', '--algorithm', 'DSA-1024'], 2, /--algorithm is one of/],
    [['ca', 'rotate', '--name', ''], 2, /--name/],
    [['ca', 'import', '--certificate', crt], 2, /--key/],
    [['ca', 'import', '--certificate', join(dir, 'missing.crt'), '--key', key], 2, /cannot read/],
    [['ca', 'import', '--certificate', join(dir, 'big.pem'), '--key', key], 2, /too large/],
    [['ca', 'import', '--certificate', join(dir, 'junk.pem'), '--key', key], 1, /pki\.ca_import_invalid/],
    [['ca', 'import', '--certificate', crt, '--key', join(dir, 'junk.pem')], 1, /pki\.ca_import_invalid/],
    [['ca', 'import', '--certificate', leaf, '--key', key], 1, /pki\.ca_import_not_ca/],
    [['ca', 'frobnicate'], 2, /unknown ca command/],
  ];
  for (const [args, code, message] of refusals) {
    const res = await runOpencis(args, env);
    assert.equal(res.code, code, `${args.join(' ')}: ${res.stdout}${res.stderr}`);
    assert.match(res.stderr, message, args.join(' '));
  }
  assert.match((await runOpencis(['ca', 'show'], env)).stdout, /^active .*CN=Offline Issuing CA/m);
});

test(`[${backend}] the audit chain verifies after all of it`, async () => {
  assert.equal((await verifyAuditChain(t.repos, testSealer.auditKeys)).ok, true);
});
