// @peculiar/x509 needs reflect-metadata loaded before it (STACK.md).
import 'reflect-metadata';
import { createPublicKey, type KeyObject, type webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { AppError } from '../domain/errors.ts';
import { type LoadedAuthority, signingAlgorithmOf } from './authority.ts';
import { OID_COMMON_NAME, OID_ORGANISATION, OID_SERIAL_NUMBER, ORGANISATION } from './keys.ts';

/** The X.509 of an authentication certificate for a smartcard key (services/certificates.ts records and audits it). */

/** The key to certify, checked: EC P-256 or RSA 2048–8192 bits, re-encoded canonically (pki.unsupported_public_key). */
export function checkedPublicKey(spki: Buffer): Buffer {
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

/** The base URL certificates point to, without a trailing slash. */
export function baseUrl(publicUrl: string): string {
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

/** Signs an authentication certificate for `spki` with the CA's key (the caller has checked the inputs). */
export async function signAuthenticationCertificate(
  authority: LoadedAuthority,
  signingKey: webcrypto.CryptoKey,
  input: { serial: string; userId: string; spki: Buffer; notBefore: Date; notAfter: Date; base: string },
): Promise<Buffer> {
  const { serial, spki, notBefore, notAfter, base } = input;
  const subject = authenticationSubject(input.userId);
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: subject.name,
    issuer: new x509.Name(authority.subjectDer),
    notBefore,
    notAfter,
    publicKey: spki,
    signingKey,
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
  return Buffer.from(certificate.rawData);
}
