import { loadConfig } from '../../config.ts';
import { cardConfigFrom } from '../../http/deps.ts';
import { transportFromConfig } from '../../notifications/transports.ts';
import {
  type CancelReason,
  cancelCard,
  cardsOf,
  passcodeGrant,
  sendExpiryWarnings,
  startCardIssue,
  unlockGrant,
} from '../../services/cards.ts';
import { expiryForecast } from '../../services/expiry-forecast.ts';
import { createOutbox } from '../../services/notifications.ts';
import type { Command } from '../command.ts';
import { parseOptions } from '../command.ts';
import { withOperatorContext } from '../database.ts';
import { UsageError } from '../io.ts';

const reasons: CancelReason[] = ['lost', 'stolen', 'damaged', 'leaver', 'replaced', 'other'];

export const cardCommand: Command = {
  summary: 'Smartcard lifecycle: issue, passcode and unlock grants, cancel, list, expiry warnings and forecast',
  help: `Usage: opencis card issue USER_ID [--kind physical|virtual]
       opencis card passcode-grant CARD_ID
       opencis card unlock CARD_ID --reason TEXT
       opencis card cancel CARD_ID --reason ${reasons.join('|')}
       opencis card list USER_ID
       opencis card expiry-warnings
       opencis card forecast [--days 1-366] [--alert-percent 0.1-100] [--json]

issue            starts issuing a card to a verified (IAL3) person and prints the card ID and a one-time grant (valid
                 10 minutes) for the card agent at the desk: opencis-card-agent issue --grant GRANT
passcode-grant   after issue, a grant for the holder to set their first passcode on the card
unlock           with the holder present and verified: a grant to unlock the card and set a new passcode
cancel           revokes the card's certificate at once (CRL and OCSP) and ends its sessions
list             the person's cards and their status
expiry-warnings  queues the 90/30/7-day certificate expiry warnings due now (each once) and sends them through
                 NOTIFICATIONS_TRANSPORT; what cannot be sent now the server's outbox retries
forecast         certificates expiring per day over the next 365 days (or --days), the days holding more than
                 --alert-percent (default CARD_EXPIRY_ALERT_PERCENT) of them marked WAVE`,
  async run(args, io) {
    const { values, positionals } = parseOptions(
      args,
      {
        kind: { type: 'string' },
        reason: { type: 'string' },
        days: { type: 'string' },
        'alert-percent': { type: 'string' },
        json: { type: 'boolean' },
      },
      2,
    );
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
        const cards = await withOperatorContext((ctx) => cardsOf(ctx.repos, id));
        if (cards.length === 0) io.out('no cards');
        for (const c of cards) {
          io.out(`${c.cardId}  ${c.kind.padEnd(8)}  ${c.status.padEnd(17)}  expires ${c.certificateNotAfter ?? '-'}`);
        }
        return 0;
      }
      case 'expiry-warnings': {
        const transport = transportFromConfig(config);
        const { queued, sent } = await withOperatorContext(async (ctx, db) => {
          const outbox = createOutbox({
            db,
            sealer: ctx.sealer,
            transport,
            clock: ctx.clock,
            maxAttempts: config.NOTIFICATIONS_MAX_ATTEMPTS,
          });
          try {
            const n = await sendExpiryWarnings(ctx, outbox);
            return { queued: n, sent: (await outbox.drain()).sent };
          } finally {
            await outbox.stop();
          }
        });
        io.out(
          `${queued} expiry warning${queued === 1 ? '' : 's'} queued, ${sent} message${sent === 1 ? '' : 's'} sent`,
        );
        return 0;
      }
      case 'forecast': {
        if (id) throw new UsageError(`unexpected argument "${id}"`);
        const days = values.days === undefined ? 365 : Number(values.days);
        if (!/^[0-9]{1,3}$/.test(values.days ?? '365') || days < 1 || days > 366) {
          throw new UsageError('--days is a whole number of days from 1 to 366');
        }
        const alertPercent =
          values['alert-percent'] === undefined ? config.CARD_EXPIRY_ALERT_PERCENT : Number(values['alert-percent']);
        if (
          !/^[0-9]{1,3}(\.[0-9]+)?$/.test(values['alert-percent'] ?? '5') ||
          !(alertPercent >= 0.1 && alertPercent <= 100)
        ) {
          throw new UsageError('--alert-percent is a percentage from 0.1 to 100');
        }
        const f = await withOperatorContext((ctx) =>
          expiryForecast(ctx.repos, ctx.clock.now(), { days, alertPercent }),
        );
        if (values.json) {
          io.out(JSON.stringify(f, null, 2));
          return 0;
        }
        io.out(
          `Card certificates expiring per day, ${f.from} to ${f.to} (UK dates): ${f.total} in all. ` +
            `A day with more than ${f.threshold} (${alertPercent}% of them, at least 10) is a WAVE.`,
        );
        const widest = f.peak?.expiring ?? 0;
        for (const d of f.days) {
          if (d.expiring === 0) continue;
          const bar = '#'.repeat(Math.max(1, Math.round((d.expiring / widest) * 40)));
          io.out(`${d.date}  ${String(d.expiring).padStart(7)}  ${bar}${d.wave ? '  WAVE' : ''}`);
        }
        io.out(
          f.waveDays.length === 0
            ? 'No expiry wave.'
            : `${f.waveDays.length} day${f.waveDays.length === 1 ? '' : 's'} over the threshold: an expiry wave.`,
        );
        return 0;
      }
      default:
        throw new UsageError('expected issue, passcode-grant, unlock, cancel, list, expiry-warnings or forecast');
    }
  },
};
