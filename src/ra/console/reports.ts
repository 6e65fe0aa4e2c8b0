/** RA reports (DOMAIN §5.5), for the caller's organisations only: each a table with a caption. */
import type { FastifyInstance } from 'fastify';
import { AppError } from '../../domain/errors.ts';
import type { WebDeps } from '../../http/deps.ts';
import {
  cardsExpiringReport,
  leaversReport,
  lockedCardsReport,
  pendingRequestsReport,
  peopleWithoutRolesReport,
  rolesEndingReport,
} from '../../services/ra.ts';
import { mayAnywhere, raPage, renderRa } from './guard.ts';
import { dateTime, dayName, statusColours } from './labels.ts';

export function registerRaReports(app: FastifyInstance, deps: WebDeps): void {
  app.get('/ra/reports', { schema: { hide: true } }, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    if (!mayAnywhere(caller.actor, 'report:view')) throw new AppError('auth.forbidden', { statement: 'report:view' });
    const ctx = caller.ctx;
    const card = (c: Awaited<ReturnType<typeof lockedCardsReport>>[number]) => ({
      ...c,
      name: `${c.givenName} ${c.familyName}`,
      expires: c.certificateNotAfter ? dayName(c.certificateNotAfter) : '',
      kind: c.kind === 'virtual' ? 'Virtual' : 'Physical',
    });
    const person = (p: Awaited<ReturnType<typeof leaversReport>>[number]) => ({
      ...p,
      name: `${p.givenName} ${p.familyName}`,
      organisations: p.odsCodes.join(', '),
      updated: dayName(p.updatedAt),
    });
    return renderRa(reply, caller, 'ra/reports.njk', {
      title: 'Reports',
      pending: (await pendingRequestsReport(ctx, { limit: 200 })).map((r) => ({
        ...r,
        name: `${r.givenName} ${r.familyName}`,
        startDate: dayName(r.startDate),
        expires: dateTime(r.expiresAt),
      })),
      expiring30: (await cardsExpiringReport(ctx, { withinDays: 30, limit: 200 })).map(card),
      expiring90: (await cardsExpiringReport(ctx, { withinDays: 90, limit: 200 })).map(card),
      locked: (await lockedCardsReport(ctx, { limit: 200 })).map(card),
      withoutRoles: (await peopleWithoutRolesReport(ctx, { limit: 200 })).map(person),
      ending: (await rolesEndingReport(ctx, { withinDays: 30, limit: 200 })).map((r) => ({
        ...r,
        name: `${r.givenName} ${r.familyName}`,
        endDate: dayName(r.endDate),
      })),
      leavers: (await leaversReport(ctx, { limit: 200 })).map(person),
      statusColours,
    });
  });
}
