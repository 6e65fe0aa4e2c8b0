import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { AppError } from '../domain/errors.ts';
import { requirePageSession, type WebDeps } from '../http/deps.ts';
import { signedInAs } from '../http/signed-in.ts';
import { type Card, cardsOf, SELF_RENEWAL_WINDOW_DAYS } from '../services/cards.ts';
import type { Repositories } from '../storage/repositories/index.ts';

const ASSETS = join(dirname(fileURLToPath(import.meta.url)), '..', 'views', 'assets');
const DAY_MS = 86_400_000;

/**
 * Whether the holder may renew a card's certificate themselves, as renewCardCertificate decides it (DOMAIN §6):
 * `open` in the last 90 days before expiry; `too_early` before that; `expired` after (an RA renews it, in person);
 * `unavailable` when the card is not active (locked, cancelled, being issued) or holds no certificate.
 */
export type CardRenewal = 'open' | 'too_early' | 'expired' | 'unavailable';

export function cardRenewal(card: Card, now: Date): CardRenewal {
  if (card.status !== 'active' || !card.certificateNotAfter) return 'unavailable';
  const left = new Date(card.certificateNotAfter).getTime() - now.getTime();
  if (left <= 0) return 'expired';
  return left > SELF_RENEWAL_WINDOW_DAYS * DAY_MS ? 'too_early' : 'open';
}

/** The cards with their renewal state, for the account page ("Renew my card" next to a card that may be renewed). */
export function withRenewal(cards: Card[], now: Date): Array<Card & { renewal: CardRenewal }> {
  return cards.map((card) => ({ ...card, renewal: cardRenewal(card, now) }));
}

/** A date as the NHS writes it: 20 November 2028 (UK time). */
function longDate(at: Date | string): string {
  return new Intl.DateTimeFormat('en-GB', {
    day: 'numeric',
    month: 'long',
    year: 'numeric',
    timeZone: 'Europe/London',
  }).format(new Date(at));
}

/**
 * A renewal whose new certificate may never have reached the card: the card's current certificate (base64 DER) and the
 * one it superseded by renewal (same card, same key), if there is such a one. The renewal pages hand both to
 * card-renew.js, which writes the current one when the card in the reader still holds the superseded one.
 */
export async function unwrittenCertificate(
  repos: Repositories,
  card: Card,
): Promise<{ current: string | null; previous: string | null }> {
  if (!card.certificateSerial) return { current: null, previous: null };
  const row = await repos.certificates.certificateWithKey(card.certificateSerial);
  if (!row) return { current: null, previous: null };
  const replaced = await repos.certificates.supersededWithSameKey(
    card.cardId,
    row.public_key_sha256,
    card.certificateSerial,
  );
  if (!replaced) return { current: null, previous: null };
  return {
    current: Buffer.from(row.certificate_der).toString('base64'),
    previous: Buffer.from(replaced.certificate_der).toString('base64'),
  };
}

/**
 * The holder's self-renewal page (DOMAIN §6). The page shows the card and whether renewal is possible now; its script
 * (card-renew.js) has the card sign a renewal challenge through the local card agent, asks the API for the new
 * certificate, and has the agent write it to the card. The passcode goes only to the agent.
 *
 * If the new certificate never reached the card (card pulled out, page closed), the card still holds the superseded
 * one and can no longer sign in; the page offers to finish the job: it carries the card's current certificate and the
 * one it replaced, and the script writes the current one when the card in the reader still holds the old one.
 */
export function registerCardRenewalPages(app: FastifyInstance, deps: WebDeps): void {
  const script = readFileSync(join(ASSETS, 'card-renew.js'), 'utf8');
  app.get('/assets/card-renew.js', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('cache-control', 'no-cache').type('text/javascript; charset=utf-8');
    return script;
  });

  app.get('/account/card/renew', { schema: { hide: true } }, async (req, reply) => {
    const session = await requirePageSession(deps, req, reply, 2);
    if (!session) return reply;
    const person = await deps.repos.people.findPersonByUserId(session.userId);
    if (!person) throw new AppError('person.not_found');
    const now = deps.clock.now();
    const cards = await cardsOf(deps.repos, session.userId);
    const asked = (req.query as Record<string, unknown>).card;
    // The card asked for (a link from the account page), else the holder's newest card that is not cancelled.
    const card =
      cards.find((c) => c.cardId === asked) ?? cards.filter((c) => c.status !== 'cancelled').at(-1) ?? cards.at(-1);
    const renewal = card ? cardRenewal(card, now) : 'unavailable';

    const { current, previous } =
      card && (renewal === 'open' || renewal === 'too_early')
        ? await unwrittenCertificate(deps.repos, card)
        : { current: null, previous: null };

    const notAfter = card?.certificateNotAfter ?? null;
    return reply.page('card-renew.njk', {
      title: 'Renew your smartcard',
      signedIn: true,
      signedInAs: await signedInAs(deps.repos, session.userId),
      person,
      card,
      renewal,
      expires: notAfter ? longDate(notAfter) : null,
      renewFrom: notAfter ? longDate(new Date(new Date(notAfter).getTime() - SELF_RENEWAL_WINDOW_DAYS * DAY_MS)) : null,
      windowDays: SELF_RENEWAL_WINDOW_DAYS,
      currentCertificate: current,
      previousCertificate: previous,
    });
  });
}
