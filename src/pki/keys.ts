// @peculiar/x509 needs reflect-metadata loaded before it (STACK.md).
import 'reflect-metadata';
import {
  createHash,
  createPrivateKey,
  type KeyObject,
  X509Certificate as NodeCertificate,
  randomBytes,
  webcrypto,
} from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { AppError } from '../domain/errors.ts';

/**
 * CA keys and certificates as X.509 work, without storage: the key algorithms OpenCIS uses, a new self-signed CA, an
 * imported one checked, serial numbers, and the encodings (whole-second times, PEM).
 */
export type CaKeyAlgorithm = 'ECDSA-P256' | 'RSA-2048';

/** Sealer purpose of a CA's private key. */
export const KEY_PURPOSE = 'pki.ca-key';
export const DEFAULT_CA_NAME = 'OpenCIS Issuing CA';
export const ORGANISATION = 'OpenCIS';
const CA_VALIDITY_YEARS = 10;
export const OID_COMMON_NAME = '2.5.4.3';
export const OID_SERIAL_NUMBER = '2.5.4.5';
export const OID_ORGANISATION = '2.5.4.10';

export const KEY_PARAMS = {
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

const { subtle } = webcrypto;

/** X.509 times have whole seconds: store and compare what the certificate says. */
export function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

export function pemOf(der: Buffer, label: 'CERTIFICATE' | 'X509 CRL'): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export interface PreparedAuthority {
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

export async function generateAuthority(
  now: Date,
  algorithm: CaKeyAlgorithm,
  name: string,
): Promise<PreparedAuthority> {
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

export function prepareImport(
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

export function auditView(prepared: PreparedAuthority) {
  const certificate = new x509.X509Certificate(prepared.der);
  return {
    name: prepared.name,
    algorithm: prepared.algorithm,
    subject: certificate.subject,
    notAfter: certificate.notAfter.toISOString(),
    sha256: createHash('sha256').update(prepared.der).digest('hex'),
  };
}
