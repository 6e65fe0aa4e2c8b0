// @peculiar/x509 needs reflect-metadata loaded before it (STACK.md).
import 'reflect-metadata';
import { createHash, type KeyObject, X509Certificate as NodeCertificate, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import { AppError } from '../domain/errors.ts';
import type { Sealer } from '../secrets/sealer.ts';
import type { AuthorityRow } from '../storage/repositories/authorities.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { type CaKeyAlgorithm, KEY_PARAMS, KEY_PURPOSE, pemOf } from './keys.ts';

/**
 * The certificate authorities as the PKI uses them: parsed once per process from their rows (a CA's certificate never
 * changes for a given id), with their signing keys unsealed once. The database is the source of truth for which CA is
 * active; CRL and OCSP (crl.ts, ocsp.ts) and certificate checks read the same rows.
 */
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

export function signingAlgorithmOf(authority: LoadedAuthority): { name: string; hash: string } {
  return { ...KEY_PARAMS[authority.algorithm].sign };
}

const loaded = new Map<string, LoadedAuthority>();
type CryptoKey = webcrypto.CryptoKey;
const { subtle } = webcrypto;
const signingKeys = new Map<string, Promise<CryptoKey>>();

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

export function parseAuthority(row: AuthorityRow): LoadedAuthority {
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

export async function authorityFromCache(repos: Repositories, id: string): Promise<LoadedAuthority> {
  const cached = loaded.get(id);
  if (cached) return cached;
  const row = await repos.authorities.findAuthority(id);
  if (!row) throw new Error(`certificate authority ${id} disappeared`);
  const authority = parseAuthority(row);
  loaded.set(id, authority);
  return authority;
}

export function publicView(authority: LoadedAuthority, status: 'active' | 'retired'): CertificateAuthority {
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
  repos: Repositories,
): Promise<{ authority: LoadedAuthority; status: 'active' | 'retired' }[]> {
  const rows = await repos.authorities.authorityIds();
  const out: { authority: LoadedAuthority; status: 'active' | 'retired' }[] = [];
  for (const r of rows) out.push({ authority: await authorityFromCache(repos, r.id), status: r.status });
  return out;
}

/** The active CA, or null before the first ensureCertificateAuthority. */
export async function activeAuthority(repos: Repositories): Promise<LoadedAuthority | null> {
  const id = await repos.authorities.activeAuthorityId();
  return id ? authorityFromCache(repos, id) : null;
}

export async function requireActiveAuthority(repos: Repositories): Promise<LoadedAuthority> {
  const authority = await activeAuthority(repos);
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

/** Every CA this database knows, active first, as shown to operators. */
export async function listCertificateAuthorities(repos: Repositories): Promise<CertificateAuthority[]> {
  return (await loadAuthorities(repos)).map(({ authority, status }) => publicView(authority, status));
}
