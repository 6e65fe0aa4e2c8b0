import { join } from 'node:path';
import { loadConfig } from '../../config.ts';
import { cardConfigFrom } from '../../http/deps.ts';
import {
  type CancelReason,
  cancelCard,
  cardsOf,
  passcodeGrant,
  sendExpiryWarnings,
  startCardIssue,
  unlockGrant,
} from '../../services/cards.ts';
import { fileTransport } from '../../services/notifications.ts';
import type { Command } from '../command.ts';
import { parseOptions } from '../command.ts';
import { withOperatorContext } from '../database.ts';
import { UsageError } from '../io.ts';

const reasons: CancelReason[] = ['lost', 'stolen', 'damaged', 'leaver', 'replaced', 'other'];

export const cardCommand: Command = {
  summary: 'Smartcard lifecycle: issue, passcode and unlock grants, cancel, list, expiry warnings',
  help: `Usage: opencis card issue USER_ID [--kind physical|virtual]
       opencis card passcode-grant CARD_ID
       opencis card unlock CARD_ID --reason TEXT
       opencis card cancel CARD_ID --reason ${reasons.join('|')}
       opencis card list USER_ID
       opencis card expiry-warnings

issue            starts issuing a card to a verified (IAL3) person and prints the card ID and a one-time grant (valid
                 10 minutes) for the card agent at the desk: opencis-card-agent issue --grant GRANT
passcode-grant   after issue, a grant for the holder to set their first passcode on the card
unlock           with the holder present and verified: a grant to unlock the card and set a new passcode
cancel           revokes the card's certificate at once (CRL and OCSP) and ends its sessions
list             the person's cards and their status
expiry-warnings  sends the 90/30/7-day certificate expiry warnings due now (each once)`,
  async run(args, io) {
    const { values, positionals } = parseOptions(args, { kind: { type: 'string' }, reason: { type: 'string' } }, 2);
    const [verb, id] = positionals;
    const config = loadConfig();
    switch (verb) {
      case 'issue': {
        if (!id) throw new UsageError('issue needs a USER_ID');
        const kind = values.kind ?? 'physical';
        if (kind !== 'physical' && kind !== 'virtual') throw new UsageError('--kind is physical or virtual');
        const res = await withOperatorContext((ctx) =>
          startCardIssue(ctx, cardConfigFrom(config), { userId: id, kind }),
        );
        io.out(`card ${res.card.cardId} (${kind}) for ${id}\ngrant ${res.grant}`);
        return 0;
      }
      case 'passcode-grant': {
        if (!id) throw new UsageError('passcode-grant needs a CARD_ID');
        io.out(`grant ${await withOperatorContext((ctx) => passcodeGrant(ctx, id))}`);
        return 0;
      }
      case 'unlock': {
        if (!id || !values.reason) throw new UsageError('unlock needs a CARD_ID and --reason');
        io.out(`grant ${await withOperatorContext((ctx) => unlockGrant(ctx, id, values.reason!))}`);
        return 0;
      }
      case 'cancel': {
        if (!id || !reasons.includes(values.reason as CancelReason)) {
          throw new UsageError(`cancel needs a CARD_ID and --reason ${reasons.join('|')}`);
        }
        const card = await withOperatorContext((ctx) => cancelCard(ctx, id, values.reason as CancelReason));
        io.out(`card ${card.cardId} cancelled (${card.cancelReason}); its certificate is revoked`);
        return 0;
      }
      case 'list': {
        if (!id) throw new UsageError('list needs a USER_ID');
        const cards = await withOperatorContext((ctx) => cardsOf(ctx.db, id));
        if (cards.length === 0) io.out('no cards');
        for (const c of cards) {
          io.out(`${c.cardId}  ${c.kind.padEnd(8)}  ${c.status.padEnd(17)}  expires ${c.certificateNotAfter ?? '-'}`);
        }
        return 0;
      }
      case 'expiry-warnings': {
        const transport = fileTransport(
          config.NOTIFICATIONS_FILE ?? join(config.DATA_DIR, 'outbox', 'notifications.jsonl'),
        );
        const n = await withOperatorContext((ctx) => sendExpiryWarnings(ctx, transport));
        io.out(`${n} expiry warning${n === 1 ? '' : 's'} sent`);
        return 0;
      }
      default:
        throw new UsageError('expected issue, passcode-grant, unlock, cancel, list or expiry-warnings');
    }
  },
};
