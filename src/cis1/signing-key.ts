// @peculiar/x509 needs reflect-metadata loaded before it (STACK.md).
import 'reflect-metadata';
import { createPrivateKey, type KeyObject, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { newSerial, pemOf, wholeSeconds } from '../pki/ca.ts';
import type { Sealer } from '../secrets/sealer.ts';
import { appendAudit } from '../services/audit.ts';
import type { StoreContext } from '../services/context.ts';
import type { StoredSigningKey } from '../storage/repositories/cis1-signing-keys.ts';
import type { Repositories } from '../storage/repositories/index.ts';

/**
 * The key that signs CIS1 role assertions: RSA-2048 with RSA-SHA256, generated at first use and kept sealed in the
 * database, so every node signs with the same key and relying parties pin one certificate from the IdP metadata.
 *
 * The certificate is self-signed, not issued by the OpenCIS CA: SAML relying parties trust the certificate published in
 * the IdP metadata (SAML V2.0 Metadata Interoperability Profile), not a chain; and the CA's register (pki_certificates)
 * holds authentication certificates of people only, so a CA-issued signing certificate would be unknown to its own
 * CRL and OCSP responder.
 */
export interface AssertionSigningKey {
  keyId: string;
  privateKey: KeyObject;
  certificateDer: Buffer;
  certificatePem: string;
  notAfter: Date;
}

const KEY_PURPOSE = 'cis1.signing-key';
/** pg_advisory_xact_lock key serialising key creation across nodes (the CA uses 7272740004). */
const KEY_LOCK = 7_272_740_009;
const VALIDITY_YEARS = 5;
const RSA_PARAMS = {
  name: 'RSASSA-PKCS1-v1_5',
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: 'SHA-256',
} as const;

/** A key id never changes meaning (ids are random), so a loaded key is kept for the life of the process. */
const loaded = new Map<string, AssertionSigningKey>();

function fromRow(row: StoredSigningKey, sealer: Sealer): AssertionSigningKey {
  const der = Buffer.from(row.certificateDer);
  return {
    keyId: row.keyId,
    privateKey: createPrivateKey({
      key: sealer.open(row.privateKeySealed, KEY_PURPOSE),
      format: 'der',
      type: 'pkcs8',
    }),
    certificateDer: der,
    certificatePem: pemOf(der, 'CERTIFICATE'),
    notAfter: new Date(row.notAfter),
  };
}

/** The key with this id (cached), or undefined when there is no such key. */
export async function signingKeyById(
  repos: Repositories,
  sealer: Sealer,
  keyId: string,
): Promise<AssertionSigningKey | undefined> {
  const cached = loaded.get(keyId);
  if (cached) return cached;
  const row = await repos.cis1SigningKeys.findSigningKey(keyId);
  if (!row) return undefined;
  const key = fromRow(row, sealer);
  loaded.set(keyId, key);
  return key;
}

/** The active signing key, created (once, whichever node comes first) when there is none yet. */
export async function activeSigningKey(ctx: StoreContext): Promise<AssertionSigningKey> {
  const repos = ctx.repos;
  const active = await repos.cis1SigningKeys.activeSigningKeyId();
  if (active) return (await signingKeyById(repos, ctx.sealer, active))!;
  return createSigningKey(ctx, ctx.sealer, ctx.clock.now());
}

async function createSigningKey(ctx: StoreContext, sealer: Sealer, now: Date): Promise<AssertionSigningKey> {
  // Generated outside the transaction (it takes a moment); a node that loses the race throws its key away.
  const prepared = await generate(now);
  const keyId = await ctx.transaction(async (tx) => {
    await tx.cis1SigningKeys.lockSigningKeyCreation(KEY_LOCK);
    const existing = await tx.cis1SigningKeys.activeSigningKeyId();
    if (existing) return existing;
    const id = randomBytes(12).toString('base64url');
    await tx.cis1SigningKeys.insertSigningKey({
      keyId: id,
      certificateDer: prepared.der,
      privateKeySealed: sealer.seal(prepared.pkcs8, KEY_PURPOSE),
      notAfter: prepared.notAfter,
      at: now,
    });
    await appendAudit(
      tx,
      { clock: { now: () => now }, actor: { kind: 'system', id: 'system:cis1' }, requestId: null, sealer },
      {
        action: 'cis1.signing_key_created',
        targetType: 'cis1_signing_key',
        targetId: id,
        before: null,
        after: { algorithm: 'RSA-2048', notAfter: prepared.notAfter.toISOString(), selfSigned: true },
      },
    );
    return id;
  });
  return (await signingKeyById(ctx.repos, sealer, keyId))!;
}

async function generate(now: Date): Promise<{ der: Buffer; pkcs8: Buffer; notAfter: Date }> {
  const { subtle } = webcrypto;
  const keys = (await subtle.generateKey(RSA_PARAMS, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const notBefore = wholeSeconds(now);
  const notAfter = new Date(notBefore);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + VALIDITY_YEARS);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: newSerial(),
    name: 'CN=OpenCIS CIS1 assertion signing, O=OpenCIS',
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    der: Buffer.from(certificate.rawData),
    pkcs8: Buffer.from(await subtle.exportKey('pkcs8', keys.privateKey)),
    notAfter,
  };
}
