/**
 * The card's refusals and failures as the card agent reports them: CardError, and how a PKCS#11 failure (its CKR_*
 * return value) becomes one.
 */
import { type CardAgentErrorCode, errorCatalogue } from '../../domain/errors.ts';

/** The card's refusals and failures (catalogued in src/domain/errors.ts with the server's codes). */
export type CardErrorCode = Extract<CardAgentErrorCode, `card.${string}`>;

export class CardError extends Error {
  readonly code: CardErrorCode;
  readonly status: number;
  /** Passcode tries left before the card locks (only on 'card.passcode_incorrect'). */
  readonly retriesLeft: number | undefined;
  /** The PKCS#11 return value behind it, for the log (never shown to the page). */
  readonly returnValue: string | undefined;

  constructor(code: CardErrorCode, options: { retriesLeft?: number; message?: string; returnValue?: string } = {}) {
    super(options.message ?? errorCatalogue[code].message);
    this.name = 'CardError';
    this.code = code;
    this.status = errorCatalogue[code].status;
    this.retriesLeft = options.retriesLeft;
    this.returnValue = options.returnValue;
  }
}

/** The CKR_* name of a PKCS#11 failure. pkcs11js throws Pkcs11Error for most calls but a plain Error (same text). */
export function pkcs11ReturnValue(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  return /\b(CKR_[A-Z0-9_]+)/.exec(err.message)?.[1];
}

const CARD_GONE = new Set([
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_DEVICE_REMOVED',
  'CKR_SLOT_ID_INVALID',
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
]);

/** Maps any failure inside a job to a CardError; the message stays generic (details go to the log only). */
export function toCardError(err: unknown): CardError {
  if (err instanceof CardError) return err;
  const rv = pkcs11ReturnValue(err);
  if (rv && CARD_GONE.has(rv)) return new CardError('card.absent', { returnValue: rv });
  return new CardError('card.error', { returnValue: rv ?? (err instanceof Error ? err.name : 'unknown') });
}

/** What a refused C_Login means, for the user (the passcode) or the SO (the administrator PIN). */
export function loginError(who: 'user' | 'so', err: unknown): CardError {
  const rv = pkcs11ReturnValue(err);
  const returnValue = rv;
  switch (rv) {
    case 'CKR_PIN_INCORRECT':
      return new CardError(who === 'user' ? 'card.passcode_incorrect' : 'card.admin_pin_incorrect', { returnValue });
    case 'CKR_PIN_LOCKED':
      return new CardError(who === 'user' ? 'card.locked' : 'card.admin_pin_locked', { returnValue });
    case 'CKR_PIN_LEN_RANGE':
    case 'CKR_PIN_INVALID':
      return new CardError(who === 'user' ? 'card.passcode_format' : 'card.admin_pin_incorrect', { returnValue });
    case 'CKR_PIN_EXPIRED':
      return new CardError('card.passcode_expired', { returnValue });
    case 'CKR_USER_PIN_NOT_INITIALIZED':
      return new CardError('card.passcode_not_set', { returnValue });
  }
  return toCardError(err);
}
