import { z } from 'zod';
import { cardSignatureVerifies } from '../../authenticators/smartcard/signature.ts';
import { authenticationMethods } from '../../domain/credentials/assurance.ts';
import { CARD_CHALLENGE_PATTERN, cardLoginMessage } from '../../domain/credentials/card-login.ts';
import { AppError } from '../../domain/errors.ts';
import type { CardRow } from '../../storage/repositories/cards.ts';
import { verifyAuthenticationCertificate } from '../certificates.ts';
import { consumeChallenge, createChallenge } from '../challenges.ts';
import type { ServiceContext } from '../context.ts';
import { refuse } from '../refusals.ts';
import type { SignInResult } from '../sessions.ts';
import type { CardConfig } from './card.ts';

/** Signing in with a card (AAL3), and the proof of possession renewal needs: a challenge the card signs. */

/** A one-time challenge for the card to sign (sign-in, or proof of possession for self-renewal). */
export async function startCardChallenge(
  ctx: ServiceContext,
  purpose: 'signin' | 'renew',
): Promise<{ challengeId: string; challenge: string }> {
  return createChallenge(ctx.repos, `card.${purpose}`, null, ctx.clock.now());
}

const signedChallengeSchema = z.object({
  challengeId: z.string().max(64),
  certificate: z
    .string()
    .regex(/^[A-Za-z0-9+/]+={0,2}$/)
    .max(8_000),
  signature: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .max(1_000),
  algorithm: z.enum(['ES256', 'RS256']),
});

export interface ProvenCard {
  card: CardRow;
  certificateSerial: string;
}

/**
 * Checks a signed challenge: certificate from our CA, in date and not revoked; its card active; the signature over the
 * challenge bound to our origin. Any failure is `auth.failed` to the caller, with the precise reason in the audit.
 */
export async function proveCard(
  ctx: ServiceContext,
  config: CardConfig,
  purpose: 'signin' | 'renew',
  input: unknown,
  options: { allowExpired?: boolean } = {},
): Promise<ProvenCard> {
  const parsed = signedChallengeSchema.safeParse(input);
  const fail = (reason: string, userId: string | null = null) =>
    refuse(ctx, 'auth.failed', {
      action: purpose === 'signin' ? 'signin.failed' : 'card.renewal_refused',
      targetType: 'person',
      targetId: userId,
      after: { method: 'smartcard' },
      reason,
    });
  if (!parsed.success) throw await fail('malformed request');
  const now = ctx.clock.now();
  let challenge: string;
  try {
    challenge = (await consumeChallenge(ctx.repos, `card.${purpose}`, parsed.data.challengeId, now)).challenge;
  } catch {
    throw await fail('challenge expired, unknown or already used');
  }
  if (!CARD_CHALLENGE_PATTERN.test(challenge)) throw await fail('bad challenge');
  let verified: Awaited<ReturnType<typeof verifyAuthenticationCertificate>>;
  try {
    verified = await verifyAuthenticationCertificate(
      ctx.repos,
      Buffer.from(parsed.data.certificate, 'base64'),
      now,
      options,
    );
  } catch (err) {
    throw await fail(err instanceof AppError ? err.code : 'certificate unreadable');
  }
  const card = verified.cardId ? await ctx.repos.cards.findCard(verified.cardId) : undefined;
  if (!card || card.certificate_serial !== verified.serial)
    throw await fail('certificate is not the card’s current one', verified.userId);
  if (card.status !== 'active') throw await fail(`card ${card.status}`, card.user_id);
  const person = await ctx.repos.people.findPersonByUserId(card.user_id);
  if (person?.status !== 'active') throw await fail(`person ${person?.status ?? 'missing'}`, card.user_id);
  const expected = verified.algorithm === 'ES256' ? 'ES256' : 'RS256';
  const ok =
    parsed.data.algorithm === expected &&
    cardSignatureVerifies(
      verified.publicKey,
      expected,
      cardLoginMessage(config.origin, challenge),
      Buffer.from(parsed.data.signature, 'base64url'),
    );
  if (!ok) throw await fail('signature does not verify with the certificate’s key', card.user_id);
  return { card, certificateSerial: verified.serial };
}

export async function finishCardSignIn(ctx: ServiceContext, config: CardConfig, input: unknown): Promise<SignInResult> {
  const { card } = await proveCard(ctx, config, 'signin', input);
  const method = card.kind === 'virtual' ? 'virtual_smartcard' : 'smartcard';
  return {
    userId: card.user_id,
    aal: 3,
    amr: [authenticationMethods[method].amr],
    authenticatorId: `card:${card.card_id}`,
  };
}
