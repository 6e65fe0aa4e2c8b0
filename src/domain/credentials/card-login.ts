/**
 * What a smartcard signs to sign in: a domain-separated message binding the server's one-time challenge to the origin
 * of the page that asked. A signature made for one OpenCIS origin (or for any other protocol) is useless at another.
 * The card agent builds the same bytes (src/card-agent) — this is the one definition both use.
 */
export const CARD_LOGIN_CONTEXT = 'OPENCIS-CARD-LOGIN-v1';

export function cardLoginMessage(origin: string, challenge: string): Buffer {
  return Buffer.from(`${CARD_LOGIN_CONTEXT}\n${origin}\n${challenge}`, 'utf8');
}

/** Challenges are 32 random bytes, base64url without padding (43 characters). */
export const CARD_CHALLENGE_PATTERN = /^[A-Za-z0-9_-]{43}$/;
