/**
 * The smartcard lifecycle (DOMAIN §6), one file per stage under cards/: the card and its grants (card.ts), issue
 * (issue.ts), use, unlock and cancellation (lifecycle.ts), sign-in (sign-in.ts), renewal and expiry warnings
 * (renew.ts). Callers import from here.
 */
export {
  type CancelReason,
  type Card,
  type CardConfig,
  type CardKind,
  type CardStatus,
  cardsOf,
  getCard,
  SELF_RENEWAL_WINDOW_DAYS,
} from './cards/card.ts';
export { certifyCard, passcodeGrant, redeemCardGrant, startCardIssue } from './cards/issue.ts';
export {
  cancelCard,
  cancelCardIn,
  completeSelfServiceUnlock,
  reportCardEvent,
  requestSelfServiceUnlock,
  unlockGrant,
} from './cards/lifecycle.ts';
export { renewCardAtDesk, renewCardCertificate, sendExpiryWarnings } from './cards/renew.ts';
export { finishCardSignIn, startCardChallenge } from './cards/sign-in.ts';
