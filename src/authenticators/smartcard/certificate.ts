import { createHash, type KeyObject, X509Certificate as NodeCertificate } from 'node:crypto';
import { AppError } from '../../domain/errors.ts';

/**
 * The cryptographic half of checking a smartcard's authentication certificate (no database): its shape, which of the
 * candidate CAs actually signed it, and what it binds (serial, key). services/certificate-checks.ts reads the status
 * rows and the CAs and asks these questions.
 */
const MAX_CERTIFICATE_BYTES = 16_384;

/**
 * What parsing a presented certificate and checking its CA signature established. None of it can change for the same
 * DER bytes (CA certificates are never deleted or altered), so it is remembered per process; status, validity and the
 * key's binding are still read from the database on every check.
 */
export interface CheckedCertificate {
  authorityId: string;
  serial: string;
  publicKey: KeyObject;
  publicKeySha256: string;
  algorithm: 'ES256' | 'RS256';
}

/** Bounded: the most recently presented certificates (least recently used ones go first). */
const CHECKED_CERTIFICATES_MAX = 2_000;
const checkedCertificates = new Map<string, CheckedCertificate>();

/** The SHA-256 of a presented certificate's DER, after a first look at its shape (pki.certificate_unreadable). */
export function presentedFingerprint(der: Buffer): string {
  if (!Buffer.isBuffer(der) || der.length === 0 || der.length > MAX_CERTIFICATE_BYTES || der[0] !== 0x30) {
    throw new AppError('pki.certificate_unreadable');
  }
  return createHash('sha256').update(der).digest('hex');
}

export function rememberedCertificate(fingerprint: string): CheckedCertificate | undefined {
  return checkedCertificates.get(fingerprint);
}

export function forgetCertificate(fingerprint: string): void {
  checkedCertificates.delete(fingerprint);
}

export function rememberCertificate(fingerprint: string, checked: CheckedCertificate): void {
  checkedCertificates.delete(fingerprint);
  checkedCertificates.set(fingerprint, checked);
  if (checkedCertificates.size > CHECKED_CERTIFICATES_MAX) {
    const oldest = checkedCertificates.keys().next().value;
    if (oldest !== undefined) checkedCertificates.delete(oldest);
  }
}

/** A presented certificate parsed (pki.certificate_unreadable), with its serial as the database keeps it. */
export function parsePresented(der: Buffer): { cert: NodeCertificate; serial: string } {
  let cert: NodeCertificate;
  try {
    cert = new NodeCertificate(der);
  } catch {
    throw new AppError('pki.certificate_unreadable');
  }
  return { cert, serial: cert.serialNumber.toLowerCase() };
}

/** Whether this CA signed the certificate. The subject name alone proves nothing (anyone can mint a CA with the same name): the signature decides. */
export function signedBy(cert: NodeCertificate, authority: { nodeCertificate: NodeCertificate; publicKey: KeyObject }) {
  return cert.issuer === authority.nodeCertificate.subject && verifiesWith(cert, authority.publicKey);
}

/** What a certificate signed by `authorityId` binds. */
export function checkedFrom(cert: NodeCertificate, serial: string, authorityId: string): CheckedCertificate {
  const publicKey = cert.publicKey;
  const publicKeySha256 = createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
  return {
    authorityId,
    serial,
    publicKey,
    publicKeySha256,
    algorithm: publicKey.asymmetricKeyType === 'ec' ? 'ES256' : 'RS256',
  };
}

function verifiesWith(cert: NodeCertificate, key: KeyObject): boolean {
  try {
    return cert.verify(key);
  } catch {
    return false;
  }
}
