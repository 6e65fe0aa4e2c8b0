import type { FastifyInstance } from 'fastify';
import type { WebDeps } from '../http/deps.ts';
import { security } from '../http/openapi.ts';
import {
  cardsExpiringReport,
  leaversReport,
  lockedCardsReport,
  pendingRequestsReport,
  peopleWithoutRolesReport,
  reportPageSchema,
  reportWithinSchema,
  rolesEndingReport,
} from '../services/ra.ts';
import { raApi } from './ra-common.ts';

/** RA reports (DOMAIN §5.5), of the caller’s organisations only. */
export function registerReportApi(app: FastifyInstance, deps: WebDeps): void {
  const { tags, raContext } = raApi(app, deps);

  const days = reportWithinSchema;
  const page = reportPageSchema;
  const reports = [
    ['pending-requests', 'Pending access requests, soonest to expire first', pendingRequestsReport, page],
    [
      'cards-expiring',
      'Cards whose certificate expires within N days (30 by default; 90 for renewals)',
      cardsExpiringReport,
      days,
    ],
    ['locked-cards', 'Locked smartcards', lockedCardsReport, page],
    ['people-without-roles', 'Active people with no role profile in effect today', peopleWithoutRolesReport, page],
    ['roles-ending', 'Role profiles ending within N days (30 by default)', rolesEndingReport, days],
    ['leavers', 'People who have left', leaversReport, page],
  ] as const;
  for (const [path, summary, run, querystring] of reports) {
    app.get(
      `/api/v1/reports/${path}`,
      { schema: { tags, security: security.raRead, summary, querystring } },
      async (req) => ({
        lines: await run(await raContext(req), req.query ?? {}),
      }),
    );
  }
}
