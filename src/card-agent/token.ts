/**
 * A thin PKCS#11 layer for the card agent (pkcs11js), plus the few card operations built on it.
 *
 * - One PKCS#11 library is process-global state (a second `C_Initialize` in the same process fails with
 *   CKR_CRYPTOKI_ALREADY_INITIALIZED), so there is one `Pkcs11Module` per library path, and every call goes through
 *   its one queue.
 * - Each job initialises the library, works and finalises it again: no session or login outlives a job, and a card
 *   inserted, removed or created by another program (pkcs11-tool, softhsm2-util) is seen by the next job. Jobs of
 *   other processes of the same user on the same module wait too (process-lock.ts), so counting tries stays whole.
 * - SoftHSM2 (the virtual smartcard) has no retry counter, so the agent keeps the card's: a public data object
 *   counting consecutive wrong passcodes (DOMAIN §6: three wrong passcodes lock a card).
 *
 * This module is the layer's public face; its parts live in src/card-agent/token/: errors.ts (CardError, PKCS#11
 * failures), module.ts (the library, its queue, Cryptoki), session.ts (CardSession), der.ts (the DER read here),
 * operations.ts (the card operations).
 */
export { certificateSubject, p256PublicKeyFromEcPoint } from './token/der.ts';
export { CardError, type CardErrorCode, pkcs11ReturnValue, toCardError } from './token/errors.ts';
export { Cryptoki, openPkcs11Module, Pkcs11Module } from './token/module.ts';
export {
  assertSameCard,
  type CardEvent,
  type CardSignature,
  initVirtualCard,
  type LockState,
  lockState,
  lockStateOf,
  type Personalisation,
  personaliseCard,
  replaceCertificate,
  setPasscode,
  signWithPasscode,
  storeCertificate,
  verifyPasscode,
} from './token/operations.ts';
export {
  AUTHENTICATION_LABEL,
  type CardCredential,
  CardSession,
  FAILURE_COUNTER_LABEL,
  type GeneratedKey,
  type KeyType,
  type SignatureAlgorithm,
  type TokenSummary,
} from './token/session.ts';
