import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject, type webcrypto, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import * as x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import type { FastifyInstance } from 'fastify';
import * as pkijs from 'pkijs';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { AppError } from '../../src/domain/errors.ts';
import { nationalIdFromSequence } from '../../src/domain/identity/user-id.ts';
import { currentCrl } from '../../src/pki/crl.ts';
import { ocspRespond } from '../../src/pki/ocsp.ts';
import { verifyAuditChain } from '../../src/services/audit-verify.ts';
import {
  type CertificateAuthority,
  ensureCertificateAuthority,
  type IssuedCertificate,
  issueAuthenticationCertificate,
  revokeCertificate,
  revokeCertificatesOfCard,
  verifyAuthenticationCertificate,
} from '../../src/services/certificates.ts';
import type { ServiceContext } from '../../src/services/context.ts';
import type { Database } from '../../src/storage/database.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { TestClock, testContext, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';

const run = promisify(execFile);
const PUBLIC_URL = 'http://opencis.test';

let t: TestDatabase;
let t2: TestDatabase;
let ctx: ServiceContext;
let clock: TestClock;
let app: FastifyInstance;
let base: string;
let dir: string;
let ca: CertificateAuthority;

const alice = nationalIdFromSequence(55_507_310_310n);
const bob = nationalIdFromSequence(55_507_310_311n);
const carol = nationalIdFromSequence(55_507_310_312n);

before(async () => {
  [t, t2] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  // Near the real time: openssl checks validity and OCSP times against the system clock.
  clock = new TestClock(new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000));
  ctx = testContext(t.db, { clock });
  dir = await mkdtemp(join(tmpdir(), 'opencis-pki-'));
  // buildApp registers the PKI routes (registerPkiRoutes) with PUBLIC_URL.
  app = await buildApp({
    config: loadConfig({ PORT: '0', PUBLIC_URL }),
    db: t.db,
    clock,
    sealer: testSealer,
    logger: false,
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
});

after(async () => {
  await app?.close();
  await Promise.all([t?.close(), t2?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------------------------------------------------------
// helpers

function ecKey(): { spki: Buffer; publicKey: KeyObject } {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { spki: publicKey.export({ type: 'spki', format: 'der' }), publicKey };
}

function rsaKey(bits = 2048): { spki: Buffer; publicKey: KeyObject } {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return { spki: publicKey.export({ type: 'spki', format: 'der' }), publicKey };
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof AppError, `expected AppError ${code}, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  });
}

async function file(name: string, content: string | Buffer): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

async function openssl(args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run('openssl', args);
    return stdout + stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return `FAILED\n${e.stdout ?? ''}${e.stderr ?? ''}`;
  }
}

async function auditCount(db: Database, action: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM audit_events WHERE action = $1', [
    action,
  ]);
  return Number(rows[0]!.n);
}

async function postOcsp(der: Buffer, contentType = 'application/ocsp-request'): Promise<Response> {
  return fetch(`${base}/pki/ocsp`, { method: 'POST', headers: { 'content-type': contentType }, body: der });
}

function responseStatus(der: Buffer): number {
  const response = new pkijs.OCSPResponse({ schema: asn1js.fromBER(der).result });
  return response.responseStatus.valueBlock.valueDec;
}

/** Asks our responder about `certPem` with an openssl-built request, and has openssl verify the answer. */
async function opensslOcsp(certPem: string, caPem: string, hash: '-sha1' | '-sha256', via: 'post' | 'get' = 'post') {
  const certPath = await file(`cert-${Math.random().toString(36).slice(2)}.pem`, certPem);
  const caPath = await file('ca-current.pem', caPem);
  const reqPath = `${certPath}.req.der`;
  const respPath = `${certPath}.resp.der`;
  const made = await openssl(['ocsp', hash, '-issuer', caPath, '-cert', certPath, '-reqout', reqPath]);
  assert.doesNotMatch(made, /FAILED/, made);
  const req = await readFile(reqPath);
  const res =
    via === 'post'
      ? await postOcsp(req)
      : await fetch(`${base}/pki/ocsp/${encodeURIComponent(req.toString('base64'))}`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/ocsp-response');
  await writeFile(respPath, Buffer.from(await res.arrayBuffer()));
  const text = await openssl([
    'ocsp',
    '-respin',
    respPath,
    // -cert makes openssl build a fresh request (with a fresh nonce) to compare against: the echoed nonce is checked
    // in the nonce test instead, and end to end with openssl -url.
    '-no_nonce',
    hash,
    '-issuer',
    caPath,
    '-CAfile',
    caPath,
    '-cert',
    certPath,
    '-resp_text',
  ]);
  return { text, req, resp: await readFile(respPath) };
}

/** A CA outside OpenCIS with exactly our CA's subject name, and a certificate it issues that looks like ours. */
async function foreignCertificate(likeThis: IssuedCertificate, userId: string): Promise<Buffer> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const ours = new x509.X509Certificate(ca.certificateDer);
  const rogue = await x509.X509CertificateGenerator.createSelfSigned({
    name: ours.subjectName,
    keys,
    signingAlgorithm: alg,
    notBefore: new Date('2026-01-01T00:00:00Z'),
    notAfter: new Date('2036-01-01T00:00:00Z'),
    extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
  });
  const original = new x509.X509Certificate(likeThis.der);
  const forged = await x509.X509CertificateGenerator.create({
    serialNumber: original.serialNumber,
    subject: original.subjectName,
    issuer: rogue.subjectName,
    notBefore: original.notBefore,
    notAfter: original.notAfter,
    publicKey: ecKey().spki,
    signingKey: keys.privateKey,
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `urn:opencis:user:${userId}` }])],
  });
  return Buffer.from(forged.rawData);
}

// ------------------------------------------------------------------------------------------------------------------
// the CA

test(`[${backend}] the CA is generated once, even when several nodes start at once, and stays the same`, async () => {
  const results = await Promise.all([
    ensureCertificateAuthority(ctx),
    ensureCertificateAuthority(testContext(t.db, { clock })),
    ensureCertificateAuthority(testContext(t.db, { clock })),
  ]);
  ca = results[0];
  for (const r of results) assert.equal(r.id, ca.id);
  const again = await ensureCertificateAuthority(ctx, { algorithm: 'RSA-2048' });
  assert.equal(again.id, ca.id);
  assert.ok(again.certificateDer.equals(ca.certificateDer));
  const { rows } = await t.db.query<{ n: string }>(
    "SELECT count(*)::text AS n FROM pki_authorities WHERE status = 'active'",
  );
  assert.equal(rows[0]!.n, '1');
  assert.equal(await auditCount(t.db, 'pki.ca_created'), 1);

  assert.equal(ca.algorithm, 'ECDSA-P256');
  assert.equal(ca.status, 'active');
  const caPath = await file('ca.pem', ca.certificatePem);
  const text = await openssl(['x509', '-in', caPath, '-noout', '-text', '-subject', '-nameopt', 'RFC2253']);
  assert.match(text, /subject=CN=OpenCIS Issuing CA,O=OpenCIS/);
  assert.match(text, /CA:TRUE, pathlen:0/);
  assert.match(text, /Digital Signature, Certificate Sign, CRL Sign/);
  assert.match(text, /prime256v1/);
  const years = (ca.notAfter.getTime() - ca.notBefore.getTime()) / (365.25 * 86_400_000);
  assert.ok(years > 9.99 && years < 10.01, `${years} years`);

  // The private key is sealed, never stored in the clear.
  const key = await t.db.query<{ private_key_sealed: string }>('SELECT private_key_sealed FROM pki_authorities');
  assert.match(key.rows[0]!.private_key_sealed, /^v1\./);
  assert.doesNotMatch(key.rows[0]!.private_key_sealed, /PRIVATE KEY/);

  const served = await fetch(`${base}/pki/ca.crt`);
  assert.equal(served.status, 200);
  assert.equal(served.headers.get('content-type'), 'application/pkix-cert');
  assert.ok(Buffer.from(await served.arrayBuffer()).equals(ca.certificateDer));
});

// ------------------------------------------------------------------------------------------------------------------
// issuing

let ecCert: IssuedCertificate;
let ecKeyPair: { spki: Buffer; publicKey: KeyObject };
let rsaCert: IssuedCertificate;

test(`[${backend}] an authentication certificate binds an EC P-256 key to the user ID, and nothing else about the person`, async () => {
  ecKeyPair = ecKey();
  ecCert = await issueAuthenticationCertificate(ctx, {
    userId: alice,
    cardId: 'card-alice-1',
    publicKeySpki: ecKeyPair.spki,
    publicUrl: PUBLIC_URL,
  });
  assert.match(ecCert.serial, /^[0-9a-f]{32}$/);
  assert.ok(Number.parseInt(ecCert.serial.slice(0, 2), 16) < 0x80, 'serial is positive');
  assert.match(ecCert.pem, /^-----BEGIN CERTIFICATE-----\n/);
  assert.equal(ecCert.notBefore.toISOString(), clock.now().toISOString());
  assert.equal(ecCert.notAfter.getTime() - ecCert.notBefore.getTime(), 730 * 86_400_000);

  const cert = new x509.X509Certificate(ecCert.der);
  assert.equal(cert.serialNumber, ecCert.serial);
  assert.equal(cert.issuerName.toString(), new x509.X509Certificate(ca.certificateDer).subjectName.toString());
  assert.deepEqual(cert.subjectName.getField('CN'), [alice]);
  assert.deepEqual(cert.subjectName.getField('2.5.4.5'), [alice]);
  assert.deepEqual(cert.subjectName.getField('O'), ['OpenCIS']);
  assert.equal(cert.subjectName.toJSON().length, 3, 'no other subject attributes (no names)');
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  assert.deepEqual(san?.names.toJSON(), [{ type: 'url', value: `urn:opencis:user:${alice}` }]);
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  assert.deepEqual([...(eku?.usages ?? [])], [x509.ExtendedKeyUsage.clientAuth]);
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  assert.equal(ku?.usages, x509.KeyUsageFlags.digitalSignature);
  assert.equal(ku?.critical, true);
  assert.ok(cert.getExtension(x509.SubjectKeyIdentifierExtension));
  assert.ok(cert.getExtension(x509.AuthorityKeyIdentifierExtension));
  assert.ok(Buffer.from(cert.publicKey.rawData).equals(ecKeyPair.spki), 'the certified key is the one given');

  const certPath = await file('alice.pem', ecCert.pem);
  const text = await openssl(['x509', '-in', certPath, '-noout', '-text', '-subject', '-nameopt', 'RFC2253']);
  assert.match(text, new RegExp(`subject=CN=${alice},serialNumber=${alice},O=OpenCIS`));
  assert.match(text, /TLS Web Client Authentication/);
  assert.match(text, /URI:http:\/\/opencis\.test\/pki\/crl/);
  assert.match(text, /OCSP - URI:http:\/\/opencis\.test\/pki\/ocsp/);
  assert.match(text, /CA Issuers - URI:http:\/\/opencis\.test\/pki\/ca\.crt/);
  assert.match(text, /CA:FALSE/);
  const verified = await openssl(['verify', '-CAfile', join(dir, 'ca.pem'), '-purpose', 'sslclient', certPath]);
  assert.match(verified, /: OK/);

  const { rows } = await t.db.query<Record<string, unknown>>('SELECT * FROM pki_certificates WHERE serial = $1', [
    ecCert.serial,
  ]);
  const row = rows[0]!;
  assert.equal(row.user_id, alice);
  assert.equal(row.card_id, 'card-alice-1');
  assert.equal(row.status, 'valid');
  assert.equal(row.authority_id, ca.id);
  assert.equal(row.subject, `CN=${alice}, serialNumber=${alice}, O=OpenCIS`);
  assert.ok(Buffer.from(row.certificate_der as Uint8Array).equals(ecCert.der));
  assert.equal(await auditCount(t.db, 'pki.certificate_issued'), 1);
});

test(`[${backend}] an RSA-2048 key is certified too; other keys, user IDs and validities are refused`, async () => {
  const rsa = rsaKey();
  rsaCert = await issueAuthenticationCertificate(ctx, {
    userId: bob,
    cardId: null,
    publicKeySpki: rsa.spki,
    validityDays: 365,
    publicUrl: `${PUBLIC_URL}/`,
  });
  const cert = new X509Certificate(rsaCert.der);
  assert.equal(cert.publicKey.asymmetricKeyType, 'rsa');
  assert.equal(rsaCert.notAfter.getTime() - rsaCert.notBefore.getTime(), 365 * 86_400_000);
  assert.match(cert.infoAccess ?? '', /OCSP - URI:http:\/\/opencis\.test\/pki\/ocsp/);

  const issue = (spki: Buffer, more: { userId?: string; validityDays?: number } = {}) =>
    issueAuthenticationCertificate(ctx, {
      userId: more.userId ?? carol,
      cardId: null,
      publicKeySpki: spki,
      publicUrl: PUBLIC_URL,
      ...(more.validityDays === undefined ? {} : { validityDays: more.validityDays }),
    });
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'der' });
  const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' });
  await rejectsWith(issue(p384), 'pki.unsupported_public_key');
  await rejectsWith(issue(ed), 'pki.unsupported_public_key');
  await rejectsWith(issue(rsaKey(1024).spki), 'pki.unsupported_public_key');
  await rejectsWith(issue(Buffer.from('not a key')), 'pki.unsupported_public_key');
  await rejectsWith(issue(ecKey().spki, { userId: '555073103101' }), 'person.invalid_user_id');
  await rejectsWith(issue(ecKey().spki, { validityDays: 0 }), 'pki.invalid_validity');
  await rejectsWith(issue(ecKey().spki, { validityDays: 1.5 }), 'pki.invalid_validity');
  assert.equal(await auditCount(t.db, 'pki.certificate_issued'), 2);
});

// ------------------------------------------------------------------------------------------------------------------
// verifying

test(`[${backend}] verifyAuthenticationCertificate accepts our certificates and returns the user, card and key`, async () => {
  const ec = await verifyAuthenticationCertificate(t.repos, ecCert.der, clock.now());
  assert.equal(ec.userId, alice);
  assert.equal(ec.serial, ecCert.serial);
  assert.equal(ec.cardId, 'card-alice-1');
  assert.equal(ec.algorithm, 'ES256');
  assert.ok(ec.publicKey.equals(ecKeyPair.publicKey));

  const rsa = await verifyAuthenticationCertificate(t.repos, rsaCert.der, clock.now());
  assert.equal(rsa.userId, bob);
  assert.equal(rsa.cardId, null);
  assert.equal(rsa.algorithm, 'RS256');
});

test(`[${backend}] a certificate from another CA with the same name, or garbage, is refused`, async () => {
  const forged = await foreignCertificate(ecCert, alice);
  await rejectsWith(verifyAuthenticationCertificate(t.repos, forged, clock.now()), 'pki.certificate_untrusted');
  await rejectsWith(
    verifyAuthenticationCertificate(t.repos, Buffer.from('garbage'), clock.now()),
    'pki.certificate_unreadable',
  );
  await rejectsWith(
    verifyAuthenticationCertificate(t.repos, Buffer.from([0x30, 0x82, 0xff, 0xff, 0x01]), clock.now()),
    'pki.certificate_unreadable',
  );
  await rejectsWith(
    verifyAuthenticationCertificate(t.repos, Buffer.alloc(0), clock.now()),
    'pki.certificate_unreadable',
  );
  // A CA certificate is not an authentication certificate.
  await rejectsWith(
    verifyAuthenticationCertificate(t.repos, ca.certificateDer, clock.now()),
    'pki.certificate_unknown',
  );
});

test(`[${backend}] expired, not yet valid and unrecorded certificates are refused`, async () => {
  await rejectsWith(
    verifyAuthenticationCertificate(t.repos, ecCert.der, new Date(ecCert.notAfter.getTime() + 1000)),
    'pki.certificate_expired',
  );
  await rejectsWith(
    verifyAuthenticationCertificate(t.repos, ecCert.der, new Date(ecCert.notBefore.getTime() - 1000)),
    'pki.certificate_not_yet_valid',
  );
  const short = await issueAuthenticationCertificate(ctx, {
    userId: carol,
    cardId: 'card-carol-old',
    publicKeySpki: ecKey().spki,
    validityDays: 1,
    notBefore: new Date(clock.now().getTime() - 3 * 86_400_000),
    publicUrl: PUBLIC_URL,
  });
  await rejectsWith(verifyAuthenticationCertificate(t.repos, short.der, clock.now()), 'pki.certificate_expired');

  // Signed by our CA but not in the database (say, restored from an older backup): unknown.
  const lost = await issueAuthenticationCertificate(ctx, {
    userId: carol,
    cardId: null,
    publicKeySpki: ecKey().spki,
    publicUrl: PUBLIC_URL,
  });
  await t.db.query('DELETE FROM pki_certificates WHERE serial = $1', [lost.serial]);
  await rejectsWith(verifyAuthenticationCertificate(t.repos, lost.der, clock.now()), 'pki.certificate_unknown');
  await file('lost.pem', lost.pem);
});

// ------------------------------------------------------------------------------------------------------------------
// revoking, CRL

let revokedCert: IssuedCertificate;

test(`[${backend}] a revoked certificate is refused at once; revoking twice is a no-op`, async () => {
  revokedCert = await issueAuthenticationCertificate(ctx, {
    userId: carol,
    cardId: 'card-carol',
    publicKeySpki: ecKey().spki,
    publicUrl: PUBLIC_URL,
  });
  await verifyAuthenticationCertificate(t.repos, revokedCert.der, clock.now());
  assert.equal(await revokeCertificate(ctx, revokedCert.serial, 'keyCompromise'), true);
  await rejectsWith(verifyAuthenticationCertificate(t.repos, revokedCert.der, clock.now()), 'pki.certificate_revoked');
  assert.equal(await revokeCertificate(ctx, revokedCert.serial, 'superseded'), false);
  assert.equal(await auditCount(t.db, 'pki.certificate_revoked'), 1);
  const { rows } = await t.db.query<{ revocation_reason: string; revoked_at: Date }>(
    'SELECT revocation_reason, revoked_at FROM pki_certificates WHERE serial = $1',
    [revokedCert.serial],
  );
  assert.equal(rows[0]!.revocation_reason, 'keyCompromise', 'the first revocation stands');
  assert.equal(new Date(rows[0]!.revoked_at).toISOString(), clock.now().toISOString());

  await rejectsWith(revokeCertificate(ctx, 'abcdef0123456789', 'keyCompromise'), 'pki.certificate_not_found');
  await rejectsWith(revokeCertificate(ctx, "x' OR 1=1 --", 'keyCompromise'), 'pki.certificate_not_found');
  await rejectsWith(
    revokeCertificate(ctx, ecCert.serial, 'certificateHold' as 'keyCompromise'),
    'pki.invalid_revocation_reason',
  );
});

test(`[${backend}] a card's certificates are revoked inside the card service's transaction`, async () => {
  const first = await issueAuthenticationCertificate(ctx, {
    userId: carol,
    cardId: 'card-carol-2',
    publicKeySpki: ecKey().spki,
    publicUrl: PUBLIC_URL,
  });
  const second = await unitOfWork(t.db)((tx) =>
    issueAuthenticationCertificate(tx, ctx, {
      userId: carol,
      cardId: 'card-carol-2',
      publicKeySpki: rsaKey().spki,
      publicUrl: PUBLIC_URL,
    }),
  );
  // A rolled-back card change leaves its certificates valid.
  await assert.rejects(
    unitOfWork(t.db)(async (tx) => {
      await revokeCertificatesOfCard(tx, ctx, 'card-carol-2', 'cessationOfOperation');
      throw new Error('card service failed');
    }),
    /card service failed/,
  );
  await verifyAuthenticationCertificate(t.repos, first.der, clock.now());
  const serials = await unitOfWork(t.db)((tx) =>
    revokeCertificatesOfCard(tx, ctx, 'card-carol-2', 'affiliationChanged'),
  );
  assert.deepEqual(serials, [first.serial, second.serial].sort());
  await rejectsWith(verifyAuthenticationCertificate(t.repos, second.der, clock.now()), 'pki.certificate_revoked');
  assert.deepEqual(
    await unitOfWork(t.db)((tx) => revokeCertificatesOfCard(tx, ctx, 'card-carol-2', 'affiliationChanged')),
    [],
  );
  assert.deepEqual(
    await unitOfWork(t.db)((tx) => revokeCertificatesOfCard(tx, ctx, 'no-such-card', 'unspecified')),
    [],
  );
  // cards.ts style: revoke inside the caller's transaction
  await unitOfWork(t.db)((tx) => revokeCertificate(tx, ctx, second.serial, 'superseded'));
  assert.equal(await auditCount(t.db, 'pki.certificate_revoked'), 3);
});

test(`[${backend}] the CRL lists revoked certificates with reasons, verifies with the CA key and its number increases`, async () => {
  const res = await fetch(`${base}/pki/crl`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/pkix-crl');
  const der = Buffer.from(await res.arrayBuffer());
  const crl = new x509.X509Crl(der);
  assert.equal(await crl.verify({ publicKey: new x509.X509Certificate(ca.certificateDer).publicKey }), true);
  assert.equal(crl.issuer, new x509.X509Certificate(ca.certificateDer).subject);
  const entry = crl.findRevoked(revokedCert.serial);
  assert.ok(entry, 'the revoked serial is listed');
  assert.equal(entry.reason, x509.X509CrlReason.keyCompromise);
  assert.equal(entry.revocationDate.toISOString(), clock.now().toISOString());
  assert.equal(crl.findRevoked(ecCert.serial), null);
  assert.equal(crl.entries.length, 3);
  assert.equal(crl.nextUpdate!.getTime() - crl.thisUpdate.getTime(), 24 * 3_600_000);

  const crlPath = await file('crl.der', der);
  const text = await openssl([
    'crl',
    '-inform',
    'DER',
    '-in',
    crlPath,
    '-CAfile',
    join(dir, 'ca.pem'),
    '-noout',
    '-text',
  ]);
  assert.match(text, /verify OK/);
  assert.match(text, /Key Compromise/);
  assert.match(text, /Affiliation Changed/);
  const number = Number(/X509v3 CRL Number: *\n *(\d+)/.exec(text)?.[1]);
  assert.ok(number >= 1);

  // Unchanged until the next revocation, then made again with a larger number.
  const again = Buffer.from(await (await fetch(`${base}/pki/crl`)).arrayBuffer());
  assert.ok(again.equals(der), 'cached while nothing changed');
  await revokeCertificate(ctx, rsaCert.serial, 'privilegeWithdrawn');
  const next = Buffer.from(await (await fetch(`${base}/pki/crl`)).arrayBuffer());
  const nextText = await openssl(['crl', '-inform', 'DER', '-in', await file('crl2.der', next), '-noout', '-text']);
  const nextNumber = Number(/X509v3 CRL Number: *\n *(\d+)/.exec(nextText)?.[1]);
  assert.ok(nextNumber > number, `${nextNumber} > ${number}`);
  assert.ok(new x509.X509Crl(next).findRevoked(rsaCert.serial));
});

// ------------------------------------------------------------------------------------------------------------------
// OCSP

test(`[${backend}] OCSP answers good, revoked and unknown, verified by openssl (SHA-1 and SHA-256 CertIDs)`, async () => {
  for (const hash of ['-sha1', '-sha256'] as const) {
    const good = await opensslOcsp(ecCert.pem, ca.certificatePem, hash);
    assert.match(good.text, /Response verify OK/, good.text);
    assert.match(good.text, /\.pem: good/, good.text);
    assert.doesNotMatch(good.text, /WARNING|Nonce Verify error/i, good.text);
    assert.match(good.text, /Responder Id: /);

    const revoked = await opensslOcsp(revokedCert.pem, ca.certificatePem, hash);
    assert.match(revoked.text, /Response verify OK/, revoked.text);
    assert.match(revoked.text, /\.pem: revoked/, revoked.text);
    assert.match(revoked.text, /Reason: keyCompromise/, revoked.text);

    const unknown = await opensslOcsp(await readFile(join(dir, 'lost.pem'), 'utf8'), ca.certificatePem, hash);
    assert.match(unknown.text, /Response verify OK/, unknown.text);
    assert.match(unknown.text, /\.pem: unknown/, unknown.text);
  }
  const viaGet = await opensslOcsp(ecCert.pem, ca.certificatePem, '-sha256', 'get');
  assert.match(viaGet.text, /Response verify OK/, viaGet.text);
  assert.match(viaGet.text, /\.pem: good/, viaGet.text);
});

test(`[${backend}] OCSP echoes the nonce, and openssl talking to the responder by URL is satisfied`, async () => {
  const { req, resp } = await opensslOcsp(ecCert.pem, ca.certificatePem, '-sha1');
  const request = new pkijs.OCSPRequest({ schema: asn1js.fromBER(req).result });
  const asked = request.tbsRequest.requestExtensions?.find((e) => e.extnID === '1.3.6.1.5.5.7.48.1.2');
  assert.ok(asked, 'openssl sends a nonce');
  const response = new pkijs.OCSPResponse({ schema: asn1js.fromBER(resp).result });
  const basic = new pkijs.BasicOCSPResponse({
    schema: asn1js.fromBER(response.responseBytes!.response.valueBlock.valueHexView).result,
  });
  const echoed = basic.tbsResponseData.responseExtensions?.find((e) => e.extnID === '1.3.6.1.5.5.7.48.1.2');
  assert.ok(echoed, 'the nonce is echoed');
  assert.ok(
    Buffer.from(echoed.extnValue.valueBlock.valueHexView).equals(Buffer.from(asked.extnValue.valueBlock.valueHexView)),
  );
  const single = basic.tbsResponseData.responses[0]!;
  assert.equal(single.nextUpdate!.getTime() - single.thisUpdate.getTime(), 3_600_000);
  assert.equal(single.thisUpdate.toISOString(), clock.now().toISOString());
  assert.equal(basic.certs?.length, 1, 'the CA certificate is embedded');

  const text = await openssl([
    'ocsp',
    '-url',
    `${base}/pki/ocsp`,
    '-issuer',
    join(dir, 'ca.pem'),
    '-CAfile',
    join(dir, 'ca.pem'),
    '-cert',
    join(dir, 'alice.pem'),
  ]);
  assert.match(text, /Response verify OK/, text);
  assert.match(text, /alice\.pem: good/, text);
  assert.doesNotMatch(text, /WARNING/, text);
});

test(`[${backend}] hostile OCSP requests get malformedRequest or a catalogued 4xx, never a 500`, async () => {
  const malformed = async (res: Response) => {
    assert.equal(res.status, 200, `${res.url}: ${res.status}`);
    assert.equal(res.headers.get('content-type'), 'application/ocsp-response');
    assert.equal(responseStatus(Buffer.from(await res.arrayBuffer())), 1);
  };
  const valid = (await opensslOcsp(ecCert.pem, ca.certificatePem, '-sha1')).req;
  await malformed(await postOcsp(Buffer.from('garbage bytes, not DER')));
  await malformed(await postOcsp(Buffer.alloc(0)));
  await malformed(await postOcsp(Buffer.concat([valid, Buffer.from([0x00])])));
  await malformed(await postOcsp(valid.subarray(0, valid.length - 3)));
  await malformed(await postOcsp(Buffer.from([0x30, 0x00])));
  // 30 000 nested indefinite-length SEQUENCEs (60 KB): deep recursion in any naive parser.
  await malformed(await postOcsp(Buffer.from('3080'.repeat(30_000), 'hex')));
  await malformed(await postOcsp(Buffer.alloc(60_000, 0x30)));
  await malformed(await fetch(`${base}/pki/ocsp/${'A'.repeat(100)}`));
  // A broken percent-encoding is refused by the router itself, in the catalogued shape.
  const badUrl = await fetch(`${base}/pki/ocsp/%E0%A4%A`);
  assert.equal(badUrl.status, 400);
  assert.equal(((await badUrl.json()) as { error: { code: string } }).error.code, 'request.invalid');
  await malformed(await fetch(`${base}/pki/ocsp/A%3D%3D%3D`));
  await malformed(await fetch(`${base}/pki/ocsp/${encodeURIComponent(Buffer.from('garbage').toString('base64'))}`));
  await malformed(await fetch(`${base}/pki/ocsp/not*base64!`));
  await malformed(await fetch(`${base}/pki/ocsp/${'QUJD'.repeat(1500)}`));

  const big = await postOcsp(Buffer.alloc(1_048_576, 0x30));
  assert.equal(big.status, 413);
  assert.equal(((await big.json()) as { error: { code: string } }).error.code, 'request.too_large');
  for (const type of ['application/json', 'text/plain', 'application/octet-stream']) {
    const res = await postOcsp(valid, type);
    assert.equal(res.status, 415, type);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'request.unsupported_media_type');
  }
  const untyped = await fetch(`${base}/pki/ocsp`, { method: 'POST', body: new Uint8Array(valid) });
  assert.ok(untyped.status >= 400 && untyped.status < 500, String(untyped.status));

  // More CertIDs than any client sends: refused as malformed rather than answered.
  const many = new pkijs.OCSPRequest();
  const one = new pkijs.OCSPRequest({ schema: asn1js.fromBER(valid).result }).tbsRequest.requestList[0]!;
  many.tbsRequest.requestList = Array.from({ length: 100 }, () => one);
  await malformed(await postOcsp(Buffer.from(many.toSchema(true).toBER())));

  // A CertID hashed with an algorithm we do not accept (MD5) is answered unknown.
  const md5 = new pkijs.OCSPRequest();
  const id = new pkijs.CertID({
    hashAlgorithm: new pkijs.AlgorithmIdentifier({
      algorithmId: '1.2.840.113549.2.5',
      algorithmParams: new asn1js.Null(),
    }),
    issuerNameHash: new asn1js.OctetString({ valueHex: new Uint8Array(16) }),
    issuerKeyHash: new asn1js.OctetString({ valueHex: new Uint8Array(16) }),
    serialNumber: new asn1js.Integer({ valueHex: Buffer.from(ecCert.serial, 'hex') }),
  });
  md5.tbsRequest.requestList = [new pkijs.Request({ reqCert: id })];
  const answer = Buffer.from(await (await postOcsp(Buffer.from(md5.toSchema(true).toBER()))).arrayBuffer());
  assert.equal(responseStatus(answer), 0);
  const basic = new pkijs.BasicOCSPResponse({
    schema: asn1js.fromBER(
      new pkijs.OCSPResponse({ schema: asn1js.fromBER(answer).result }).responseBytes!.response.valueBlock.valueHexView,
    ).result,
  });
  assert.equal(basic.tbsResponseData.responses[0]!.certStatus.idBlock.tagNumber, 2, 'unknown');

  const health = await fetch(`${base}/health`);
  assert.equal(health.status, 200, 'the server is still fine');
});

// ------------------------------------------------------------------------------------------------------------------
// RSA CA, import, rollover (second database)

test(`[${backend}] an RSA-2048 CA issues, verifies, and signs CRLs and OCSP responses openssl accepts`, async () => {
  const ctx2 = testContext(t2.db, { clock });
  const rsaCa = await ensureCertificateAuthority(ctx2, { algorithm: 'RSA-2048', name: 'OpenCIS Test RSA CA' });
  assert.equal(rsaCa.algorithm, 'RSA-2048');
  assert.equal(new X509Certificate(rsaCa.certificateDer).publicKey.asymmetricKeyDetails?.modulusLength, 2048);
  assert.match(rsaCa.subject, /OpenCIS Test RSA CA/);
  const issued = await issueAuthenticationCertificate(ctx2, {
    userId: alice,
    cardId: 'rsa-card',
    publicKeySpki: ecKey().spki,
    publicUrl: PUBLIC_URL,
  });
  assert.equal((await verifyAuthenticationCertificate(t2.repos, issued.der, clock.now())).userId, alice);
  // A certificate from the first database's CA is foreign here.
  await rejectsWith(verifyAuthenticationCertificate(t2.repos, ecCert.der, clock.now()), 'pki.certificate_untrusted');

  const caPath = await file('rsa-ca.pem', rsaCa.certificatePem);
  const certPath = await file('rsa-issued.pem', issued.pem);
  assert.match(await openssl(['verify', '-CAfile', caPath, certPath]), /: OK/);
  const reqPath = join(dir, 'rsa-req.der');
  await openssl(['ocsp', '-sha256', '-issuer', caPath, '-cert', certPath, '-reqout', reqPath]);
  const resp = await ocspRespond({ repos: t2.repos, sealer: ctx2.sealer }, await readFile(reqPath), clock.now());
  const respPath = await file('rsa-resp.der', resp);
  const text = await openssl([
    'ocsp',
    '-respin',
    respPath,
    '-no_nonce',
    '-sha256',
    '-issuer',
    caPath,
    '-CAfile',
    caPath,
    '-cert',
    certPath,
  ]);
  assert.match(text, /Response verify OK/, text);
  assert.match(text, /rsa-issued\.pem: good/, text);
});

test(`[${backend}] importing a CA: a mismatched key or a non-CA certificate is refused; a real one takes over`, async () => {
  const ctx2 = testContext(t2.db, { clock });
  const before = await ensureCertificateAuthority(ctx2);
  const oldCert = await issueAuthenticationCertificate(ctx2, {
    userId: bob,
    cardId: null,
    publicKeySpki: ecKey().spki,
    publicUrl: PUBLIC_URL,
  });

  const keyPath = join(dir, 'import.key');
  const certPath = join(dir, 'import.pem');
  const made = await openssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    keyPath,
    '-out',
    certPath,
    '-days',
    '3650',
    '-subj',
    '/O=NHS Test/CN=Imported Issuing CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE,pathlen:0',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
  ]);
  assert.doesNotMatch(made, /FAILED/, made);
  const certificatePem = await readFile(certPath, 'utf8');
  const privateKeyPem = await readFile(keyPath, 'utf8');
  const otherKeyPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;

  await rejectsWith(
    ensureCertificateAuthority(ctx2, { import: { certificatePem, privateKeyPem: otherKeyPem } }),
    'pki.ca_import_key_mismatch',
  );
  await rejectsWith(
    ensureCertificateAuthority(ctx2, { import: { certificatePem: ecCert.pem, privateKeyPem } }),
    'pki.ca_import_not_ca',
  );
  await rejectsWith(
    ensureCertificateAuthority(ctx2, { import: { certificatePem: 'nope', privateKeyPem } }),
    'pki.ca_import_invalid',
  );
  await rejectsWith(
    ensureCertificateAuthority(ctx2, { import: { certificatePem, privateKeyPem: 'nope' } }),
    'pki.ca_import_invalid',
  );
  const leafKeyPath = join(dir, 'leaf.key');
  const leafPath = join(dir, 'leaf.pem');
  await openssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    leafKeyPath,
    '-out',
    leafPath,
    '-days',
    '30',
    '-subj',
    '/CN=not a ca',
    '-addext',
    'basicConstraints=critical,CA:FALSE',
  ]);
  await rejectsWith(
    ensureCertificateAuthority(ctx2, {
      import: { certificatePem: await readFile(leafPath, 'utf8'), privateKeyPem: await readFile(leafKeyPath, 'utf8') },
    }),
    'pki.ca_import_not_ca',
  );
  assert.equal((await ensureCertificateAuthority(ctx2)).id, before.id, 'refusals change nothing');

  const imported = await ensureCertificateAuthority(ctx2, { import: { certificatePem, privateKeyPem } });
  assert.notEqual(imported.id, before.id);
  assert.equal(imported.name, 'Imported Issuing CA');
  assert.equal(imported.algorithm, 'ECDSA-P256');
  assert.equal((await ensureCertificateAuthority(ctx2, { import: { certificatePem, privateKeyPem } })).id, imported.id);
  assert.equal((await ensureCertificateAuthority(ctx2)).id, imported.id);
  assert.equal(await auditCount(t2.db, 'pki.ca_imported'), 1);
  const statuses = await t2.db.query<{ id: string; status: string }>('SELECT id, status FROM pki_authorities');
  assert.equal(statuses.rows.find((r) => r.id === before.id)?.status, 'retired');

  const issued = await issueAuthenticationCertificate(ctx2, {
    userId: carol,
    cardId: null,
    publicKeySpki: rsaKey().spki,
    publicUrl: PUBLIC_URL,
  });
  const issuedPath = await file('imported-issued.pem', issued.pem);
  assert.match(await openssl(['verify', '-CAfile', certPath, '-purpose', 'sslclient', issuedPath]), /: OK/);
  assert.equal((await verifyAuthenticationCertificate(t2.repos, issued.der, clock.now())).userId, carol);
  // Certificates of the retired CA still verify until they expire.
  assert.equal((await verifyAuthenticationCertificate(t2.repos, oldCert.der, clock.now())).userId, bob);
  // The imported CA's CRL verifies with openssl.
  const crl = await currentCrl(ctx2, PUBLIC_URL);
  const crlText = await openssl([
    'crl',
    '-inform',
    'DER',
    '-in',
    await file('imported.crl', crl),
    '-CAfile',
    certPath,
    '-noout',
  ]);
  assert.match(crlText, /verify OK/);
});

test(`[${backend}] the audit chain still verifies after all of this`, async () => {
  assert.deepEqual((await verifyAuditChain(t.repos, testSealer.auditKeys)).ok, true);
  assert.deepEqual((await verifyAuditChain(t2.repos, testSealer.auditKeys)).ok, true);
});
