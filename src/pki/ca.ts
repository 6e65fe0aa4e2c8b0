// @peculiar/x509 needs reflect-metadata loaded before it (STACK.md).
import 'reflect-metadata';
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  X509Certificate as NodeCertificate,
  randomBytes,
  randomInt,
  randomUUID,
  webcrypto,
} from 'node:crypto';
import * as x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import { DAY_MS, expiryCandidates, leastBusyExpiry } from '../domain/credentials/expiry-spread.ts';
import { ukDate } from '../domain/dates.ts';
import { AppError } from '../domain/errors.ts';
import { isNationalId } from '../domain/identity/user-id.ts';
import type { Sealer } from '../secrets/sealer.ts';
import { appendAudit } from '../services/audit.ts';
import type { ServiceContext } from '../services/context.ts';
import type { Queryable } from '../storage/database.ts';
import type { AuthorityRow } from '../storage/repositories/authorities.ts';
import type { VerificationRow } from '../storage/repositories/certificates.ts';
import { type Repositories, reposOf } from '../storage/repositories/index.ts';

/**
 * The OpenCIS certificate authority: one active CA (generated at first start or imported), the authentication
 * certificates it issues to smartcards, their revocation, and the check smartcard sign-in runs on a presented
 * certificate. The database is the source of truth for status: CRL and OCSP (crl.ts, ocsp.ts) read the same rows.
 */

export type CaKeyAlgorithm = 'ECDSA-P256' | 'RSA-2048';

/** RFC 5280 §5.3.1 CRLReason names used for revocation. certificateHold is left out: an OpenCIS revocation is final. */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;
export type RevocationReason = keyof typeof REVOCATION_REASONS;

export function isRevocationReason(value: string): value is RevocationReason {
  return Object.hasOwn(REVOCATION_REASONS, value);
}

/** A CA as callers see it. */
export interface CertificateAuthority {
  id: string;
  name: string;
  algorithm: CaKeyAlgorithm;
  status: 'active' | 'retired';
  subject: string;
  certificateDer: Buffer;
  certificatePem: string;
  notBefore: Date;
  notAfter: Date;
}

/** A CA parsed once and kept in memory: its certificate never changes for a given id (ids are random). */
export interface LoadedAuthority extends Omit<CertificateAuthority, 'status'> {
  certificate: x509.X509Certificate;
  nodeCertificate: NodeCertificate;
  publicKey: KeyObject;
  /** The subject Name exactly as encoded in the CA certificate (issuer of everything it signs; OCSP CertID). */
  subjectDer: Buffer;
  /** The subjectPublicKey BIT STRING contents (OCSP CertID issuerKeyHash, responder key hash). */
  subjectPublicKey: Buffer;
  /** Hex key identifier for the authority key identifier extension of what it signs. */
  keyIdentifier: string;
  sealedKey: string;
}

const KEY_PURPOSE = 'pki.ca-key';
const DEFAULT_CA_NAME = 'OpenCIS Issuing CA';
const ORGANISATION = 'OpenCIS';
const CA_VALIDITY_YEARS = 10;
const MAX_VALIDITY_DAYS = 3_650;
const MAX_CERTIFICATE_BYTES = 16_384;
const OID_COMMON_NAME = '2.5.4.3';
const OID_SERIAL_NUMBER = '2.5.4.5';
const OID_ORGANISATION = '2.5.4.10';

const KEY_PARAMS = {
  'ECDSA-P256': {
    generate: { name: 'ECDSA', namedCurve: 'P-256' },
    import: { name: 'ECDSA', namedCurve: 'P-256' },
    sign: { name: 'ECDSA', hash: 'SHA-256' },
  },
  'RSA-2048': {
    generate: {
      name: 'RSASSA-PKCS1-v1_5',
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: 'SHA-256',
    },
    import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
  },
} as const;

export function signingAlgorithmOf(authority: LoadedAuthority): { name: string; hash: string } {
  return { ...KEY_PARAMS[authority.algorithm].sign };
}

// ---------------------------------------------------------------------------------------------------------------
// Loading CAs (cached)

const loaded = new Map<string, LoadedAuthority>();
type CryptoKey = webcrypto.CryptoKey;
const { subtle } = webcrypto;
const signingKeys = new Map<string, Promise<CryptoKey>>();

/** X.509 times have whole seconds: store and compare what the certificate says. */
export function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

export function pemOf(der: Buffer, label: 'CERTIFICATE' | 'X509 CRL'): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Subject Name and subjectPublicKey bytes exactly as encoded in a certificate (re-encoding could change them). */
function rawCertificateParts(der: Buffer): { subjectDer: Buffer; subjectPublicKey: Buffer } {
  const parsed = asn1js.fromBER(der);
  const tbs = (parsed.result as asn1js.Sequence).valueBlock.value[0] as asn1js.Sequence;
  const fields = tbs.valueBlock.value;
  const first = fields[0]!;
  const offset = first.idBlock.tagClass === 3 && first.idBlock.tagNumber === 0 ? 1 : 0;
  const subject = fields[offset + 4]!;
  const spki = fields[offset + 5] as asn1js.Sequence;
  const bitString = spki.valueBlock.value[1] as asn1js.BitString;
  return {
    subjectDer: Buffer.from(subject.valueBeforeDecodeView),
    subjectPublicKey: Buffer.from(bitString.valueBlock.valueHexView),
  };
}

function parseAuthority(row: AuthorityRow): LoadedAuthority {
  const der = Buffer.from(row.certificate_der);
  const certificate = new x509.X509Certificate(der);
  const nodeCertificate = new NodeCertificate(der);
  const { subjectDer, subjectPublicKey } = rawCertificateParts(der);
  const ski = certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  return {
    id: row.id,
    name: row.name,
    algorithm: row.key_algorithm,
    subject: certificate.subject,
    certificateDer: der,
    certificatePem: pemOf(der, 'CERTIFICATE'),
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
    certificate,
    nodeCertificate,
    publicKey: nodeCertificate.publicKey,
    subjectDer,
    subjectPublicKey,
    // RFC 5280 §4.2.1.2 method 1 when the CA certificate carries no SKI of its own.
    keyIdentifier: ski?.keyId ?? createHash('sha1').update(subjectPublicKey).digest('hex'),
    sealedKey: row.private_key_sealed,
  };
}

async function authorityFromCache(q: Queryable | Repositories, id: string): Promise<LoadedAuthority> {
  const cached = loaded.get(id);
  if (cached) return cached;
  const row = await reposOf(q).authorities.findAuthority(id);
  if (!row) throw new Error(`certificate authority ${id} disappeared`);
  const authority = parseAuthority(row);
  loaded.set(id, authority);
  return authority;
}

function publicView(authority: LoadedAuthority, status: 'active' | 'retired'): CertificateAuthority {
  return {
    id: authority.id,
    name: authority.name,
    algorithm: authority.algorithm,
    status,
    subject: authority.subject,
    certificateDer: authority.certificateDer,
    certificatePem: authority.certificatePem,
    notBefore: authority.notBefore,
    notAfter: authority.notAfter,
  };
}

/** Every CA, active first: the ones whose certificates may still be presented, checked by CRL and OCSP. */
export async function loadAuthorities(
  q: Queryable | Repositories,
): Promise<{ authority: LoadedAuthority; status: 'active' | 'retired' }[]> {
  const repos = reposOf(q);
  const rows = await repos.authorities.authorityIds();
  const out: { authority: LoadedAuthority; status: 'active' | 'retired' }[] = [];
  for (const r of rows) out.push({ authority: await authorityFromCache(repos, r.id), status: r.status });
  return out;
}

/** The active CA, or null before the first ensureCertificateAuthority. */
export async function activeAuthority(q: Queryable | Repositories): Promise<LoadedAuthority | null> {
  const repos = reposOf(q);
  const id = await repos.authorities.activeAuthorityId();
  return id ? authorityFromCache(repos, id) : null;
}

export async function requireActiveAuthority(q: Queryable | Repositories): Promise<LoadedAuthority> {
  const authority = await activeAuthority(q);
  if (!authority) throw new AppError('pki.ca_unavailable');
  return authority;
}

/** The CA's private key as a non-extractable WebCrypto key, unsealed once per process. */
export function authoritySigningKey(authority: LoadedAuthority, sealer: Sealer): Promise<CryptoKey> {
  let key = signingKeys.get(authority.id);
  if (!key) {
    key = subtle.importKey(
      'pkcs8',
      sealer.open(authority.sealedKey, KEY_PURPOSE),
      KEY_PARAMS[authority.algorithm].import,
      false,
      ['sign'],
    );
    key.catch(() => signingKeys.delete(authority.id));
    signingKeys.set(authority.id, key);
  }
  return key;
}

// ---------------------------------------------------------------------------------------------------------------
// Creating or importing the CA

export interface EnsureCertificateAuthorityOptions {
  /** Key algorithm of a generated CA (default ECDSA-P256). Ignored when importing. */
  algorithm?: CaKeyAlgorithm;
  /** Display name; for a generated CA also its common name. Default "OpenCIS Issuing CA". */
  name?: string;
  /** An existing CA to use instead of generating one (certificate PEM, private key PEM: PKCS#8, SEC1 or PKCS#1). */
  import?: { certificatePem: string; privateKeyPem: string };
}

interface PreparedAuthority {
  name: string;
  algorithm: CaKeyAlgorithm;
  der: Buffer;
  pkcs8: Buffer;
}

/** A fresh positive serial number with 126 random bits; the top bits are fixed so the DER length never varies. */
export function newSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x3f) | 0x40;
  return bytes.toString('hex');
}

function caName(commonName: string): x509.Name {
  // DER order O then CN: shown as "CN=…, O=OpenCIS" in the RFC 4514 form openssl and most tools print.
  return new x509.Name([{ [OID_ORGANISATION]: [ORGANISATION] }, { [OID_COMMON_NAME]: [commonName] }]);
}

async function generateAuthority(now: Date, algorithm: CaKeyAlgorithm, name: string): Promise<PreparedAuthority> {
  const params = KEY_PARAMS[algorithm];
  const keys = (await subtle.generateKey(params.generate, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const notBefore = wholeSeconds(now);
  const notAfter = new Date(notBefore);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_VALIDITY_YEARS);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: newSerial(),
    name: caName(name),
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: params.sign,
    extensions: [
      // pathLen 0: this CA signs end-entity certificates only.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    name,
    algorithm,
    der: Buffer.from(certificate.rawData),
    pkcs8: Buffer.from(await subtle.exportKey('pkcs8', keys.privateKey)),
  };
}

function importInvalid(reason: string): AppError {
  return new AppError('pki.ca_import_invalid', { reason });
}

function prepareImport(
  input: { certificatePem: string; privateKeyPem: string },
  name: string | undefined,
  now: Date,
): PreparedAuthority {
  let nodeCert: NodeCertificate;
  let key: KeyObject;
  let cert: x509.X509Certificate;
  try {
    nodeCert = new NodeCertificate(input.certificatePem);
    cert = new x509.X509Certificate(nodeCert.raw);
  } catch {
    throw importInvalid('the certificate is not a PEM X.509 certificate');
  }
  try {
    key = createPrivateKey({ key: input.privateKeyPem, format: 'pem' });
  } catch {
    throw importInvalid('the private key is not an unencrypted PEM private key');
  }
  const details = key.asymmetricKeyDetails;
  const algorithm: CaKeyAlgorithm | null =
    key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1'
      ? 'ECDSA-P256'
      : key.asymmetricKeyType === 'rsa' && details?.modulusLength === 2048
        ? 'RSA-2048'
        : null;
  if (!algorithm) throw importInvalid('the key must be EC P-256 or RSA 2048');
  // RFC 5280 §4.2.1.9 / §4.2.1.3: a CA certificate has cA=TRUE and, when key usage is present, keyCertSign and cRLSign.
  const usage = cert.getExtension(x509.KeyUsagesExtension);
  const needed = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;
  if (!nodeCert.ca || (usage && (usage.usages & needed) !== needed)) throw new AppError('pki.ca_import_not_ca');
  if (!nodeCert.checkPrivateKey(key)) throw new AppError('pki.ca_import_key_mismatch');
  // Five minutes' grace for a CA certificate made moments ago on a machine whose clock runs a little ahead.
  if (cert.notAfter <= now || cert.notBefore.getTime() > now.getTime() + 5 * 60_000) {
    throw importInvalid('the certificate is not valid now');
  }
  return {
    name: name ?? cert.subjectName.getField('CN')[0] ?? cert.subject,
    algorithm,
    der: Buffer.from(nodeCert.raw),
    pkcs8: key.export({ type: 'pkcs8', format: 'der' }),
  };
}

async function insertAuthority(tx: Repositories, ctx: ServiceContext, prepared: PreparedAuthority): Promise<string> {
  const id = `ca_${randomUUID()}`;
  const certificate = new x509.X509Certificate(prepared.der);
  await tx.authorities.insertAuthority({
    id,
    name: prepared.name,
    algorithm: prepared.algorithm,
    der: prepared.der,
    sealedKey: ctx.sealer.seal(prepared.pkcs8, KEY_PURPOSE),
    notAfter: certificate.notAfter,
    now: ctx.clock.now(),
  });
  return id;
}

function auditView(prepared: PreparedAuthority) {
  const certificate = new x509.X509Certificate(prepared.der);
  return {
    name: prepared.name,
    algorithm: prepared.algorithm,
    subject: certificate.subject,
    notAfter: certificate.notAfter.toISOString(),
    sha256: createHash('sha256').update(prepared.der).digest('hex'),
  };
}

/**
 * Returns the active CA. At first start generates one (self-signed root, 10 years) or, given `import`, installs that
 * one; importing a different CA later retires the current one (its certificates still verify until they expire).
 * Two nodes starting at once end with one active CA: creation runs under an advisory lock, and a partial unique index
 * allows one active row.
 */
export async function ensureCertificateAuthority(
  ctx: ServiceContext,
  options: EnsureCertificateAuthorityOptions = {},
): Promise<CertificateAuthority> {
  const imported = options.import ? prepareImport(options.import, options.name, ctx.clock.now()) : null;
  if (!imported) {
    const current = await activeAuthority(ctx.db);
    if (current) return publicView(current, 'active');
  }
  const id = await ctx.transaction(async (tx) => {
    await tx.authorities.lockAuthorities();
    const current = await tx.authorities.activeAuthorityCertificate();
    if (!imported) {
      if (current) return current.id;
      const prepared = await generateAuthority(
        ctx.clock.now(),
        options.algorithm ?? 'ECDSA-P256',
        options.name ?? DEFAULT_CA_NAME,
      );
      const created = await insertAuthority(tx, ctx, prepared);
      await appendAudit(tx, ctx, {
        action: 'pki.ca_created',
        targetType: 'certificate_authority',
        targetId: created,
        before: null,
        after: auditView(prepared),
      });
      return created;
    }
    if (current && Buffer.from(current.certificate_der).equals(imported.der)) return current.id;
    if (current) await tx.authorities.retireAuthority(current.id);
    let target = await tx.authorities.authorityIdWithCertificate(imported.der);
    if (target) await tx.authorities.activateAuthority(target);
    else target = await insertAuthority(tx, ctx, imported);
    await appendAudit(tx, ctx, {
      action: 'pki.ca_imported',
      targetType: 'certificate_authority',
      targetId: target,
      before: current ? { activeAuthorityId: current.id } : null,
      after: auditView(imported),
    });
    return target;
  });
  return publicView(await authorityFromCache(ctx.db, id), 'active');
}

/**
 * CA rotation: generates a new CA and makes it the active one on every node at once (the active CA is read from the
 * database at each issue); the current one is retired — its certificates keep verifying until they expire and its CRL
 * and OCSP keep answering. Nothing stops: cards in use keep working, new cards and renewals get the new CA. Anyone who
 * checks card certificates themselves must trust the new CA certificate (GET /pki/ca.crt, `opencis ca show --pem`)
 * before cards renewed by it reach them.
 */
export async function rotateCertificateAuthority(
  ctx: ServiceContext,
  options: { algorithm?: CaKeyAlgorithm; name?: string } = {},
): Promise<CertificateAuthority> {
  const prepared = await generateAuthority(
    ctx.clock.now(),
    options.algorithm ?? 'ECDSA-P256',
    options.name ?? DEFAULT_CA_NAME,
  );
  const id = await ctx.transaction(async (tx) => {
    await tx.authorities.lockAuthorities();
    const retired = await tx.authorities.retireActiveAuthority();
    const created = await insertAuthority(tx, ctx, prepared);
    await appendAudit(tx, ctx, {
      action: 'pki.ca_rotated',
      targetType: 'certificate_authority',
      targetId: created,
      before: retired ? { activeAuthorityId: retired } : null,
      after: auditView(prepared),
    });
    return created;
  });
  return publicView(await authorityFromCache(ctx.db, id), 'active');
}

/** Every CA this database knows, active first, as shown to operators. */
export async function listCertificateAuthorities(q: Queryable | Repositories): Promise<CertificateAuthority[]> {
  return (await loadAuthorities(q)).map(({ authority, status }) => publicView(authority, status));
}

// ---------------------------------------------------------------------------------------------------------------
// Issuing

export interface IssueAuthenticationCertificateInput {
  userId: string;
  cardId: string | null;
  /** DER SubjectPublicKeyInfo of the key generated on the card: EC P-256 or RSA ≥ 2048 bits. */
  publicKeySpki: Buffer;
  /** Default 730 (about two years, DOMAIN §6). Capped at the CA's own expiry. */
  validityDays?: number;
  /**
   * Expiry waves: end on the least busy day within ± this many days of the nominal end (CARD_EXPIRY_SPREAD_DAYS).
   * Default 0: exactly validityDays.
   */
  expirySpreadDays?: number;
  notBefore?: Date;
  /** Base URL the certificate points relying parties to: `${publicUrl}/pki/crl`, `${publicUrl}/pki/ocsp`. */
  publicUrl: string;
}

export interface IssuedCertificate {
  serial: string;
  der: Buffer;
  pem: string;
  notBefore: Date;
  notAfter: Date;
}

function checkedPublicKey(spki: Buffer): Buffer {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    throw new AppError('pki.unsupported_public_key');
  }
  const details = key.asymmetricKeyDetails;
  const ok =
    (key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1') ||
    (key.asymmetricKeyType === 'rsa' &&
      details?.modulusLength !== undefined &&
      details.modulusLength >= 2048 &&
      details.modulusLength <= 8192);
  if (!ok) throw new AppError('pki.unsupported_public_key');
  // Re-export: what we certify is exactly the key node understood, in canonical DER.
  return key.export({ type: 'spki', format: 'der' });
}

function baseUrl(publicUrl: string): string {
  const url = new URL(publicUrl);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('publicUrl must be an http(s) URL');
  return url.href.replace(/\/+$/, '');
}

/** Subject of an authentication certificate: the user ID and nothing else about the person — certificates are public. */
export function authenticationSubject(userId: string): { name: x509.Name; text: string } {
  return {
    name: new x509.Name([
      { [OID_ORGANISATION]: [ORGANISATION] },
      { [OID_SERIAL_NUMBER]: [userId] },
      { [OID_COMMON_NAME]: [userId] },
    ]),
    text: `CN=${userId}, serialNumber=${userId}, O=${ORGANISATION}`,
  };
}

/**
 * Issues and records an authentication certificate bound to a 12-digit user ID (and the card holding the key).
 * `(ctx, input)` runs its own transaction; `(tx, ctx, input)` runs inside the caller's (card services), so the card
 * and its certificate commit together.
 */
export function issueAuthenticationCertificate(
  ctx: ServiceContext,
  input: IssueAuthenticationCertificateInput,
): Promise<IssuedCertificate>;
export function issueAuthenticationCertificate(
  tx: Queryable | Repositories,
  ctx: ServiceContext,
  input: IssueAuthenticationCertificateInput,
): Promise<IssuedCertificate>;
export function issueAuthenticationCertificate(
  first: ServiceContext | Queryable | Repositories,
  second: ServiceContext | IssueAuthenticationCertificateInput,
  third?: IssueAuthenticationCertificateInput,
): Promise<IssuedCertificate> {
  if (third) return issueIn(reposOf(first as Queryable | Repositories), second as ServiceContext, third);
  const ctx = first as ServiceContext;
  return ctx.transaction((tx) => issueIn(tx, ctx, second as IssueAuthenticationCertificateInput));
}

async function issueIn(
  tx: Repositories,
  ctx: ServiceContext,
  input: IssueAuthenticationCertificateInput,
): Promise<IssuedCertificate> {
  if (!isNationalId(input.userId)) throw new AppError('person.invalid_user_id');
  if (
    input.cardId !== null &&
    (typeof input.cardId !== 'string' || input.cardId.length < 1 || input.cardId.length > 100)
  ) {
    throw new AppError('request.invalid', { field: 'cardId' });
  }
  const days = input.validityDays ?? 730;
  if (!Number.isInteger(days) || days < 1 || days > MAX_VALIDITY_DAYS) {
    throw new AppError('pki.invalid_validity', { validityDays: days });
  }
  const spread = input.expirySpreadDays ?? 0;
  if (!Number.isInteger(spread) || spread < 0 || spread > 60 || spread >= days) {
    throw new AppError('pki.invalid_validity', { expirySpreadDays: spread });
  }
  const spki = checkedPublicKey(input.publicKeySpki);
  const base = baseUrl(input.publicUrl);
  const authority = await requireActiveAuthority(tx);
  const notBefore = wholeSeconds(input.notBefore ?? ctx.clock.now());
  const nominal = new Date(notBefore.getTime() + days * 86_400_000);
  const wanted = spread === 0 ? nominal : await leastBusyEnd(tx, nominal, spread);
  // A certificate should not outlive its issuer: relying parties would reject the chain anyway.
  const notAfter = new Date(Math.min(wanted.getTime(), authority.notAfter.getTime()));
  if (notAfter <= notBefore) throw new AppError('pki.invalid_validity', { reason: 'the CA expires first' });

  const subject = authenticationSubject(input.userId);
  const serial = newSerial();
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: subject.name,
    issuer: new x509.Name(authority.subjectDer),
    notBefore,
    notAfter,
    publicKey: spki,
    signingKey: await authoritySigningKey(authority, ctx.sealer),
    signingAlgorithm: signingAlgorithmOf(authority),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `urn:opencis:user:${input.userId}` }], false),
      await x509.SubjectKeyIdentifierExtension.create(spki),
      new x509.AuthorityKeyIdentifierExtension(authority.keyIdentifier),
      new x509.CRLDistributionPointsExtension([`${base}/pki/crl`]),
      new x509.AuthorityInfoAccessExtension({ ocsp: [`${base}/pki/ocsp`], caIssuers: [`${base}/pki/ca.crt`] }),
    ],
  });
  const der = Buffer.from(certificate.rawData);
  const publicKeySha256 = createHash('sha256').update(spki).digest('hex');
  await tx.certificates.insertCertificate({
    serial,
    authorityId: authority.id,
    userId: input.userId,
    cardId: input.cardId,
    subject: subject.text,
    notBefore,
    notAfter,
    der,
    publicKeySha256,
    now: ctx.clock.now(),
  });
  await appendAudit(tx, ctx, {
    action: 'pki.certificate_issued',
    targetType: 'person',
    targetId: input.userId,
    before: null,
    after: {
      serial,
      authorityId: authority.id,
      cardId: input.cardId,
      notBefore: notBefore.toISOString(),
      notAfter: notAfter.toISOString(),
      publicKeySha256,
    },
  });
  return { serial, der, pem: pemOf(der, 'CERTIFICATE'), notBefore, notAfter };
}

/** The least busy expiry day within ± spread days of the nominal end (domain/credentials/expiry-spread.ts). */
async function leastBusyEnd(tx: Repositories, nominal: Date, spread: number): Promise<Date> {
  const candidates = expiryCandidates(nominal, spread);
  const rows = await tx.certificates.validEndsPerDay(
    new Date(candidates[0]!.getTime() - DAY_MS),
    new Date(candidates.at(-1)!.getTime() + DAY_MS),
  );
  const load = new Map(rows.map((r) => [r.day, Number(r.n)]));
  return leastBusyExpiry(candidates, ukDate, load, (n) => randomInt(n));
}

// ---------------------------------------------------------------------------------------------------------------
// Revoking

function checkedReason(reason: string): RevocationReason {
  if (!isRevocationReason(reason)) throw new AppError('pki.invalid_revocation_reason', { reason });
  return reason;
}

async function recordRevocations(
  tx: Repositories,
  ctx: Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'>,
  revoked: { serial: string; user_id: string; card_id: string | null }[],
  reason: RevocationReason,
  at: Date,
): Promise<void> {
  if (revoked.length === 0) return;
  // Every node's cached CRL is stale from this commit on.
  await tx.certificates.bumpRevocationVersion();
  for (const r of revoked) {
    await appendAudit(tx, ctx, {
      action: 'pki.certificate_revoked',
      targetType: 'person',
      targetId: r.user_id,
      before: { serial: r.serial, status: 'valid' },
      after: { serial: r.serial, status: 'revoked', cardId: r.card_id, reason, revokedAt: at.toISOString() },
    });
  }
}

async function revokeIn(
  tx: Repositories,
  ctx: Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'>,
  serial: string,
  reason: RevocationReason,
): Promise<boolean> {
  const why = checkedReason(reason);
  const normalised = serial.toLowerCase();
  if (!/^[0-9a-f]{1,40}$/.test(normalised)) throw new AppError('pki.certificate_not_found');
  const at = wholeSeconds(ctx.clock.now());
  const rows = await tx.certificates.revokeValidCertificate(normalised, at, why);
  if (rows.length === 0) {
    if (!(await tx.certificates.certificateExists(normalised))) throw new AppError('pki.certificate_not_found');
    return false;
  }
  await recordRevocations(tx, ctx, rows, why, at);
  return true;
}

/**
 * Revokes one certificate: `(ctx, serial, reason)` in its own transaction, `(tx, ctx, serial, reason)` inside the
 * caller's. Returns false when it was already revoked — revoking twice is a no-op, not an error; throws
 * pki.certificate_not_found for a serial OpenCIS never issued.
 */
export function revokeCertificate(ctx: ServiceContext, serial: string, reason: RevocationReason): Promise<boolean>;
export function revokeCertificate(
  tx: Queryable | Repositories,
  ctx: Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'>,
  serial: string,
  reason: RevocationReason,
): Promise<boolean>;
export function revokeCertificate(
  first: ServiceContext | Queryable | Repositories,
  second: Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'> | string,
  third: string,
  fourth?: RevocationReason,
): Promise<boolean> {
  if (fourth !== undefined) {
    return revokeIn(
      reposOf(first as Queryable | Repositories),
      second as Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'>,
      third,
      fourth,
    );
  }
  const ctx = first as ServiceContext;
  return ctx.transaction((tx) => revokeIn(tx, ctx, second as string, third as RevocationReason));
}

/**
 * Revokes every still-valid certificate on a card, inside the card service's own transaction (lost, stolen, damaged
 * or returned card). Returns the serials it revoked; none is not an error.
 */
export async function revokeCertificatesOfCard(
  q: Queryable | Repositories,
  ctx: Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'>,
  cardId: string,
  reason: RevocationReason,
): Promise<string[]> {
  const why = checkedReason(reason);
  const at = wholeSeconds(ctx.clock.now());
  const tx = reposOf(q);
  const rows = await tx.certificates.revokeValidCertificatesOfCard(cardId, at, why);
  rows.sort((a, b) => (a.serial < b.serial ? -1 : 1));
  await recordRevocations(tx, ctx, rows, why, at);
  return rows.map((r) => r.serial);
}

// ---------------------------------------------------------------------------------------------------------------
// Verifying (smartcard sign-in hot path)

export interface VerifiedAuthenticationCertificate {
  userId: string;
  serial: string;
  cardId: string | null;
  publicKey: KeyObject;
  algorithm: 'ES256' | 'RS256';
  notAfter: Date;
}

/**
 * What parsing a presented certificate and checking its CA signature established. None of it can change for the same
 * DER bytes (CA certificates are never deleted or altered), so it is remembered per process; status, validity and the
 * key's binding are still read from the database on every check.
 */
interface CheckedCertificate {
  authorityId: string;
  serial: string;
  publicKey: KeyObject;
  publicKeySha256: string;
  algorithm: 'ES256' | 'RS256';
}

/** Bounded: the most recently presented certificates (least recently used ones go first). */
const CHECKED_CERTIFICATES_MAX = 2_000;
const checkedCertificates = new Map<string, CheckedCertificate>();

function rememberChecked(fingerprint: string, checked: CheckedCertificate): void {
  checkedCertificates.delete(fingerprint);
  checkedCertificates.set(fingerprint, checked);
  if (checkedCertificates.size > CHECKED_CERTIFICATES_MAX) {
    const oldest = checkedCertificates.keys().next().value;
    if (oldest !== undefined) checkedCertificates.delete(oldest);
  }
}

/** Parses a certificate never seen before and finds the OpenCIS CA whose signature it carries, with its status row. */
async function checkNewCertificate(
  q: Repositories,
  der: Buffer,
): Promise<{ checked: CheckedCertificate; row: VerificationRow }> {
  let cert: NodeCertificate;
  try {
    cert = new NodeCertificate(der);
  } catch {
    throw new AppError('pki.certificate_unreadable');
  }
  const serial = cert.serialNumber.toLowerCase();
  const rows = await q.certificates.verificationRows(serial);
  let row: VerificationRow | undefined;
  for (const candidate of rows) {
    const authority = await authorityFromCache(q, candidate.authority_id);
    // The subject name alone proves nothing (anyone can mint a CA with the same name): the signature decides.
    if (cert.issuer === authority.nodeCertificate.subject && verifiesWith(cert, authority.publicKey)) {
      row = candidate;
      break;
    }
  }
  if (!row) throw new AppError('pki.certificate_untrusted');
  const publicKey = cert.publicKey;
  const publicKeySha256 = createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
  return {
    checked: {
      authorityId: row.authority_id,
      serial,
      publicKey,
      publicKeySha256,
      algorithm: publicKey.asymmetricKeyType === 'ec' ? 'ES256' : 'RS256',
    },
    row,
  };
}

/**
 * Checks a presented authentication certificate: signed by an OpenCIS CA (active or retired), known, within its
 * validity at `at` (or after it, with `allowExpired`: only for renewal at the RA desk), not revoked. Status comes from
 * the database — the same rows OCSP answers from — in one query, on every call. CA certificates and keys are parsed once per process, and so is each presented certificate (parsing it
 * and checking its CA signature are remembered for the last CHECKED_CERTIFICATES_MAX certificates, by SHA-256 of the
 * DER): a repeat sign-in with the same card costs the one indexed status query.
 */
export async function verifyAuthenticationCertificate(
  handle: Queryable | Repositories,
  der: Buffer,
  at: Date,
  options: { allowExpired?: boolean } = {},
): Promise<VerifiedAuthenticationCertificate> {
  if (!Buffer.isBuffer(der) || der.length === 0 || der.length > MAX_CERTIFICATE_BYTES || der[0] !== 0x30) {
    throw new AppError('pki.certificate_unreadable');
  }
  const q = reposOf(handle);
  const fingerprint = createHash('sha256').update(der).digest('hex');
  let checked = checkedCertificates.get(fingerprint);
  let row: VerificationRow | undefined;
  if (checked) {
    row = await q.certificates.verificationRow(checked.serial, checked.authorityId);
    if (!row) checkedCertificates.delete(fingerprint);
  }
  if (!checked || !row) {
    // Not seen before — or its CA is not in this database (one process on several databases: tests): check it all.
    ({ checked, row } = await checkNewCertificate(q, der));
  }
  rememberChecked(fingerprint, checked);
  if (!row.user_id || !row.not_before || !row.not_after) throw new AppError('pki.certificate_unknown');
  if (checked.publicKeySha256 !== row.public_key_sha256) throw new AppError('pki.certificate_unknown');
  if (at < new Date(row.not_before)) throw new AppError('pki.certificate_not_yet_valid');
  if (at > new Date(row.not_after) && !options.allowExpired) throw new AppError('pki.certificate_expired');
  if (row.status !== 'valid') throw new AppError('pki.certificate_revoked');
  return {
    userId: row.user_id,
    serial: checked.serial,
    cardId: row.card_id,
    publicKey: checked.publicKey,
    algorithm: checked.algorithm,
    notAfter: new Date(row.not_after),
  };
}

function verifiesWith(cert: NodeCertificate, key: KeyObject): boolean {
  try {
    return cert.verify(key);
  } catch {
    return false;
  }
}
