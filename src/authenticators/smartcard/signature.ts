import { createPublicKey, type KeyObject, verify } from 'node:crypto';

/**
 * The signature checks of a smartcard (no database): a challenge signed by the card's key after its passcode, bound to
 * the server's origin (domain/credentials/card-login.ts builds the message). ES256 signatures come as IEEE P1363 (r‖s),
 * as PKCS#11 tokens return them; RS256 as PKCS#1 v1.5.
 */
export type CardSignatureAlgorithm = 'ES256' | 'RS256';

/** Whether `signature` over `message` verifies with the card's key; false for anything malformed. */
export function cardSignatureVerifies(
  key: KeyObject,
  algorithm: CardSignatureAlgorithm,
  message: Buffer,
  signature: Buffer,
): boolean {
  try {
    return verify('sha256', message, algorithm === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key, signature);
  } catch {
    return false;
  }
}

/** Proof of possession of a new card key: `proof` over `message` verifies with the key in `spki` (DER). */
export function provesPossession(
  spki: Buffer,
  algorithm: CardSignatureAlgorithm,
  message: Buffer,
  proof: Buffer,
): boolean {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    return false;
  }
  return cardSignatureVerifies(key, algorithm, message, proof);
}
