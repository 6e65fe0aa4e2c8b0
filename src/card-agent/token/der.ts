/**
 * The DER the card agent reads itself: a P-256 public key from a card's CKA_EC_POINT, and a certificate's subject
 * (the CKA_SUBJECT PKCS#11 wants next to a certificate).
 */
import { createPublicKey } from 'node:crypto';
import { CardError } from './errors.ts';

/** CKA_EC_POINT is a DER OCTET STRING around the uncompressed point (04 || x || y): the point is the last 65 bytes. */
export function p256PublicKeyFromEcPoint(ecPoint: Buffer): Buffer {
  const point = ecPoint.subarray(ecPoint.length - 65);
  if (point.length !== 65 || point[0] !== 0x04) throw new CardError('card.unsupported_key');
  return createPublicKey({
    key: {
      kty: 'EC',
      crv: 'P-256',
      x: point.subarray(1, 33).toString('base64url'),
      y: point.subarray(33, 65).toString('base64url'),
    },
    format: 'jwk',
  }).export({ type: 'spki', format: 'der' });
}

/** One DER element at `offset`: where its content starts and where it ends. */
function derElement(der: Buffer, offset: number): { tag: number; content: number; end: number } {
  const tag = der[offset];
  let lengthByte = der[offset + 1];
  if (tag === undefined || lengthByte === undefined) throw new Error('truncated DER');
  let content = offset + 2;
  let length = lengthByte;
  if (lengthByte & 0x80) {
    const count = lengthByte & 0x7f;
    if (count < 1 || count > 4) throw new Error('unsupported DER length');
    length = 0;
    for (let i = 0; i < count; i++) {
      lengthByte = der[content + i];
      if (lengthByte === undefined) throw new Error('truncated DER');
      length = length * 256 + lengthByte;
    }
    content += count;
  }
  if (content + length > der.length) throw new Error('truncated DER');
  return { tag, content, end: content + length };
}

/** The subject Name of a DER certificate (tbsCertificate: [0] version?, serial, signature, issuer, validity, subject). */
export function certificateSubject(certificate: Buffer): Buffer {
  const outer = derElement(certificate, 0);
  const tbs = derElement(certificate, outer.content);
  let at = tbs.content;
  if (derElement(certificate, at).tag === 0xa0) at = derElement(certificate, at).end;
  for (let i = 0; i < 4; i++) at = derElement(certificate, at).end; // serial, signature, issuer, validity
  const subject = derElement(certificate, at);
  return certificate.subarray(at, subject.end);
}
