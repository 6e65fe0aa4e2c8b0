/**
 * The card operations the agent offers, built on a session: the passcode checked and counted like a card counts
 * (three wrong in a row lock, DOMAIN §6), signing in, issuing (personalise, then store the certificate), self-renewal,
 * setting the passcode, and creating a virtual smartcard.
 */
import { randomInt, X509Certificate } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { PASSCODE_MAX_TRIES } from '../../domain/credentials/passcode.ts';
import { CardError } from './errors.ts';
import type { Pkcs11Module } from './module.ts';
import type { CardSession, GeneratedKey, SignatureAlgorithm, TokenSummary } from './session.ts';

export interface LockState {
  failures: number;
  locked: boolean;
  retriesLeft: number;
}

/** Locked by the agent's count (virtual cards) or by the card itself (real cards count on the chip). */
export function lockStateOf(token: TokenSummary, failures: number): LockState {
  const locked = token.userPinLocked || failures >= PASSCODE_MAX_TRIES;
  const retriesLeft = locked
    ? 0
    : Math.min(PASSCODE_MAX_TRIES - failures, token.userPinFinalTry ? 1 : PASSCODE_MAX_TRIES);
  return { failures, locked, retriesLeft };
}

export function lockState(card: CardSession): LockState {
  return lockStateOf(card.refreshToken(), card.readPasscodeFailures());
}

export type CardEvent = 'passcode_incorrect' | 'locked';

/**
 * Checks the passcode on the card, counting like a card does: the try is recorded before the attempt (a crash or a
 * pulled card mid-attempt cannot give it back) and cleared on success. Three wrong in a row lock (DOMAIN §6).
 */
export function verifyPasscode(card: CardSession, passcode: string, onEvent: (event: CardEvent) => void): void {
  const before = lockState(card);
  if (before.locked) {
    onEvent('locked');
    throw new CardError('card.locked');
  }
  const counted = card.writePasscodeFailures(before.failures + 1);
  try {
    card.login('user', passcode);
  } catch (err) {
    if (err instanceof CardError && err.code === 'card.passcode_incorrect') {
      onEvent('passcode_incorrect');
      // A card that keeps its own count only tells "final try" and "locked" (its flags): assume one try used.
      const after = lockStateOf(card.refreshToken(), counted ? before.failures + 1 : 1);
      if (after.locked) {
        onEvent('locked');
        throw new CardError('card.locked');
      }
      throw new CardError('card.passcode_incorrect', {
        retriesLeft: after.retriesLeft,
        message: `The passcode is not correct. ${after.retriesLeft === 1 ? '1 try is' : `${after.retriesLeft} tries are`} left before the card locks.`,
      });
    }
    if (err instanceof CardError && err.code === 'card.locked') onEvent('locked');
    // Not a wrong guess (card refused the format, card pulled …): hand the try back.
    else if (counted) {
      try {
        card.writePasscodeFailures(before.failures);
      } catch {
        // the card is gone: the try stays counted, the safe side
      }
    }
    throw err;
  }
  if (counted) card.writePasscodeFailures(0);
}

export interface CardSignature {
  certificate: Buffer;
  signature: Buffer;
  algorithm: SignatureAlgorithm;
}

/** Sign-in: passcode checked on the card, then the card signs `message` with the key of its certificate. */
export async function signWithPasscode(
  card: CardSession,
  passcode: string,
  message: Buffer,
  onEvent: (event: CardEvent, certificate: Buffer | null) => void,
): Promise<CardSignature> {
  const credential = card.findCredential();
  if (!credential) throw new CardError('card.not_issued');
  verifyPasscode(card, passcode, (event) => onEvent(event, credential.certificate));
  const key = card.findPrivateKey(credential.id);
  if (!key) throw new CardError('card.not_issued');
  const { signature, algorithm } = await card.sign(key, message);
  return { certificate: credential.certificate, signature, algorithm };
}

export function assertSameCard(card: CardSession, serial: string): void {
  if (card.token.serial !== serial) throw new CardError('card.changed');
}

/** 8 random digits: a user PIN nobody knows, until the holder sets their passcode. */
function temporaryUserPin(): string {
  return String(randomInt(0, 100_000_000)).padStart(8, '0');
}

export interface Personalisation {
  key: GeneratedKey;
  /** The new key's signature over `proofMessage`: proof of possession for the certificate request. */
  proof: Buffer;
  temporaryPin: string;
}

/**
 * Issue, first half (RA desk): take the card from its transport SO PIN to the holder's unblock secret, give it an
 * unknown user PIN, replace any old OpenCIS key with a new one generated on the card, and prove possession.
 */
export async function personaliseCard(
  card: CardSession,
  secrets: { transportSoPin: string; unblockSecret: string },
  proofMessage: Buffer,
): Promise<Personalisation> {
  card.login('so', secrets.transportSoPin);
  card.changePin(secrets.transportSoPin, secrets.unblockSecret);
  const temporaryPin = temporaryUserPin();
  card.initUserPin(temporaryPin);
  card.logout();
  card.login('user', temporaryPin);
  card.deleteAuthenticationObjects();
  const key = await card.generateAuthenticationKey();
  const { signature } = await card.sign({ handle: key.privateKey, keyType: 'EC' }, proofMessage);
  return { key, proof: signature, temporaryPin };
}

/** Issue, second half: store the certificate the server issued for the new key, start with a clean count. */
export function storeCertificate(card: CardSession, personalisation: Personalisation, certificate: Buffer): void {
  card.login('user', personalisation.temporaryPin);
  card.writeCertificate(personalisation.key.id, certificate);
  card.writePasscodeFailures(0);
}

/**
 * Self-renewal: the server certified the key already on the card again (last 90 days of the old certificate). The
 * passcode is checked on the card (it counts towards the lock like any try), the new certificate must be for the very
 * key the card holds, and it replaces the old one.
 */
export function replaceCertificate(
  card: CardSession,
  passcode: string,
  certificate: Buffer,
  onEvent: (event: CardEvent, certificate: Buffer | null) => void,
): void {
  const credential = card.findCredential();
  if (!credential) throw new CardError('card.not_issued');
  if (!samePublicKey(credential.certificate, certificate)) throw new CardError('card.certificate_mismatch');
  verifyPasscode(card, passcode, (event) => onEvent(event, credential.certificate));
  for (const object of card.findObjects([
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE },
    { type: pkcs11js.CKA_ID, value: credential.id },
  ])) {
    card.destroyObject(object);
  }
  card.writeCertificate(credential.id, certificate);
}

function samePublicKey(a: Buffer, b: Buffer): boolean {
  try {
    const key = (der: Buffer) => new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' });
    return key(a).equals(key(b));
  } catch {
    return false;
  }
}

/** Sets the holder's passcode as the SO (first passcode, RA unlock, self-service unlock); unlocks the card. */
export function setPasscode(card: CardSession, unblockSecret: string, passcode: string): void {
  card.login('so', unblockSecret);
  card.initUserPin(passcode);
  card.writePasscodeFailures(0);
}

/** Creates a virtual smartcard: a SoftHSM2 token on the module's blank slot. Returns its serial. */
export function initVirtualCard(module: Pkcs11Module, label: string, soPin: string): Promise<string> {
  return module.run((cryptoki) => {
    const tokens = cryptoki.tokens();
    if (tokens.some((t) => t.initialized && t.label === label)) {
      throw new Error(`a card labelled "${label}" already exists`);
    }
    const blank = tokens.find((t) => !t.initialized);
    if (!blank) {
      throw new Error('this PKCS#11 module has no blank token to initialise (physical cards come initialised)');
    }
    return cryptoki.initToken(blank.slot, soPin, label);
  });
}
