/**
 * Smartcards at the RA desk (DOMAIN §6). The server never sees a passcode: the page (ra-card.js) gets one-time grants
 * here and hands them, with the holder's passcode, only to the card agent on this computer (CARD_AGENT_URL, allowed
 * by the page's connect-src). Issue: start → grant → agent writes the card → passcode grant → holder sets the
 * passcode at the agent → print the card face. Unlock: grant (with the reason) → agent sets the holder's new passcode.
 * Cancel (lost, stolen, damaged…): the certificate is revoked at once.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../domain/errors.ts';
import { authorize, isAllowed } from '../../domain/policy.ts';
import { text as textSchema } from '../../domain/text.ts';
import type { WebDeps } from '../../http/deps.ts';
import { unwrittenCertificate } from '../../portal/renew.ts';
import {
  type CancelReason,
  type Card,
  cancelCard,
  cardsOf,
  getCard,
  passcodeGrant,
  startCardIssue,
  unlockGrant,
} from '../../services/cards.ts';
import { getPerson } from '../../services/people.ts';
import { withDone } from './banners.ts';
import { confirmPage } from './confirm.ts';
import { FormErrors, formValues, text } from './forms.ts';
import { param, personTarget, type RaCaller, raApi, raPage, renderRa } from './guard.ts';
import { dayName } from './labels.ts';
import { personFor, personSummary } from './people.ts';

const CARD_ID = /^[0-9]{16}$/;

const cancelReasons: { value: CancelReason; text: string }[] = [
  { value: 'lost', text: 'Lost' },
  { value: 'stolen', text: 'Stolen' },
  { value: 'damaged', text: 'Damaged or not working' },
  { value: 'replaced', text: 'Replaced by a new card' },
  { value: 'other', text: 'Another reason' },
];

/** A card of the person in the URL, or 404 (a card ID alone never reaches someone else's card). */
async function cardOfPerson(deps: WebDeps, req: FastifyRequest, caller: RaCaller) {
  const { person, target } = await personFor(deps, caller, param(req, 'userId'));
  const card = (await cardsOf(deps.repos, person.userId)).find((c) => c.cardId === param(req, 'cardId'));
  if (!card) throw new AppError('card.not_found');
  return { person, target, card };
}

function cardNumber(cardId: string): string {
  return cardId.replace(/(\d{4})(?=\d)/g, '$1 ');
}

export function registerRaCards(app: FastifyInstance, deps: WebDeps): void {
  const hidden = { schema: { hide: true } };
  const csrf = { preHandler: app.csrfProtection, schema: { hide: true } };

  function issuePage(reply: FastifyReply, caller: RaCaller, ctx: Record<string, unknown>) {
    return renderRa(reply, caller, 'ra/card-issue.njk', ctx);
  }

  app.get('/ra/people/:userId/cards/new', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const { person, target } = await personFor(deps, caller, param(req, 'userId'));
    authorize(caller.actor, 'card:issue', target);
    const who = personSummary(person);
    return issuePage(reply, caller, {
      title: `Issue a smartcard: ${who.name}`,
      person: who,
      ready: person.status === 'active' && person.identityAssuranceLevel >= 3,
      configured: Boolean(deps.card.transportSoPin),
      publicOrigin: new URL(deps.config.PUBLIC_URL).origin,
      canInvite: person.status === 'active' && isAllowed(caller.actor, 'authenticator:enrol', target),
      step: 'start',
    });
  });

  // A card issued but without a passcode yet (the holder left, the agent stopped): carry on from the passcode.
  app.get('/ra/people/:userId/cards/:cardId/passcode', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const { person, target, card } = await cardOfPerson(deps, req, caller);
    authorize(caller.actor, 'card:issue', target);
    if (card.status !== 'awaiting_passcode') throw new AppError('card.invalid_state');
    const who = personSummary(person);
    return issuePage(reply, caller, {
      title: `Set the passcode: ${who.name}`,
      person: who,
      ready: true,
      configured: true,
      step: 'passcode',
      cardId: card.cardId,
    });
  });

  app.post('/ra/people/:userId/cards', csrf, async (req) => {
    const caller = await raApi(deps, req);
    const userId = param(req, 'userId');
    const kind = (req.body as { kind?: unknown } | undefined)?.kind === 'virtual' ? 'virtual' : 'physical';
    const { card, grant } = await startCardIssue(caller.ctx, deps.card, { userId, kind });
    return { cardId: card.cardId, grant };
  });

  app.post('/ra/cards/:cardId/passcode-grant', csrf, async (req) => {
    const caller = await raApi(deps, req);
    const cardId = param(req, 'cardId');
    if (!CARD_ID.test(cardId)) throw new AppError('card.not_found');
    return { grant: await passcodeGrant(caller.ctx, cardId) };
  });

  app.post('/ra/cards/:cardId/unlock-grant', csrf, async (req) => {
    const caller = await raApi(deps, req);
    const cardId = param(req, 'cardId');
    if (!CARD_ID.test(cardId)) throw new AppError('card.not_found');
    const reason = textSchema(1000).safeParse(text(formValues(req.body), 'reason'));
    if (!reason.success) {
      throw new AppError('request.invalid', {
        problems: [{ field: 'reason', message: 'Enter why the card is being unlocked' }],
      });
    }
    return { grant: await unlockGrant(caller.ctx, cardId, reason.data) };
  });

  app.get('/ra/people/:userId/cards/:cardId/unlock', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const { person, target, card } = await cardOfPerson(deps, req, caller);
    authorize(caller.actor, 'card:unlock', target);
    if (card.status !== 'locked' && card.status !== 'active') throw new AppError('card.invalid_state');
    const who = personSummary(person);
    return renderRa(reply, caller, 'ra/card-unlock.njk', {
      title: `Unlock a smartcard: ${who.name}`,
      person: who,
      card: { cardId: card.cardId, number: cardNumber(card.cardId), status: card.status },
    });
  });

  // Renew the certificate at the desk, the holder present (any time; the only way once it has expired). The page's
  // script (card-renew.js, shared with self-renewal) has the card sign a challenge and calls the card API.
  app.get('/ra/people/:userId/cards/:cardId/renew', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const { person, target, card } = await cardOfPerson(deps, req, caller);
    authorize(caller.actor, 'card:renew', target);
    if (card.status !== 'active' || !card.certificateNotAfter) throw new AppError('card.invalid_state');
    const who = personSummary(person);
    const { current, previous } = await unwrittenCertificate(deps.repos, card);
    return renderRa(reply, caller, 'ra/card-renew.njk', {
      title: `Renew a smartcard: ${who.name}`,
      person: who,
      card: {
        cardId: card.cardId,
        number: cardNumber(card.cardId),
        kind: card.kind === 'virtual' ? 'Virtual smartcard' : 'Smartcard',
        expires: dayName(card.certificateNotAfter),
        expired: new Date(card.certificateNotAfter) <= caller.ctx.clock.now(),
        notAfter: card.certificateNotAfter,
      },
      currentCertificate: current,
      previousCertificate: previous,
    });
  });

  // The card face, to print: name, user ID, photo, card number, expiry.
  app.get('/ra/cards/:cardId/face', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const cardId = param(req, 'cardId');
    if (!CARD_ID.test(cardId)) throw new AppError('card.not_found');
    const card: Card = await getCard(deps.repos, cardId);
    const target = await personTarget(deps, card.userId);
    authorize(caller.actor, 'person:read', target);
    const person = await getPerson(caller.ctx, card.userId);
    return renderRa(reply, caller, 'ra/card-face.njk', {
      title: `Card face ${cardNumber(card.cardId)}`,
      face: {
        name: [person.givenName, person.familyName].join(' '),
        userId: person.userId,
        hasPhoto: person.photoRef !== null,
        number: cardNumber(card.cardId),
        kind: card.kind === 'virtual' ? 'Virtual smartcard' : 'Smartcard',
        expires: card.certificateNotAfter ? dayName(card.certificateNotAfter) : 'Not issued yet',
        status: card.status,
      },
      canIssue: isAllowed(caller.actor, 'card:issue', target),
    });
  });

  // Cards: cancel (lost, stolen, damaged…). The certificate is revoked at once.
  const cancelCopy = {
    heading: 'Cancel a smartcard',
    button: 'Cancel this card',
    warning: 'The card stops working at once: its certificate is revoked and sessions opened with it end.',
    choices: cancelReasons,
    choiceLegend: 'Why is the card being cancelled?',
    reasonRequired: true,
  };

  app.get('/ra/people/:userId/cards/:cardId/cancel', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const { card } = await cardOfPerson(deps, req, caller);
    return confirmPage(deps, req, reply, caller, { ...cancelCopy, cardId: card.cardId });
  });

  app.post('/ra/people/:userId/cards/:cardId/cancel', csrf, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const { person, card } = await cardOfPerson(deps, req, caller);
    const values = formValues(req.body);
    const reason = cancelReasons.find((r) => r.value === text(values, 'choice'))?.value;
    const note = textSchema(1000).safeParse(text(values, 'reason'));
    if (!reason || !note.success) {
      const errors = new FormErrors();
      if (!reason) errors.add('choice', 'Choose why the card is being cancelled', `choice-${cancelReasons[0]!.value}`);
      if (!note.success) errors.add('reason', 'Enter what happened, for the audit trail (at most 1000 characters)');
      return confirmPage(
        deps,
        req,
        reply,
        caller,
        { ...cancelCopy, cardId: card.cardId, values, ...errors.view() },
        400,
      );
    }
    await cancelCard(caller.ctx, card.cardId, reason, note.data);
    return reply.redirect(withDone(`/ra/people/${person.userId}`, 'card_cancelled'), 303);
  });
}
