import type { FastifyInstance } from 'fastify';
import { raActorOf } from '../http/api-auth.ts';
import { contextFor, type WebDeps } from '../http/deps.ts';
import { security } from '../http/openapi.ts';
import {
  expiryForecastReport,
  failedNotificationsReport,
  failedSchema,
  forecastSchema,
} from '../services/operations-reports.ts';

/** RA reports on the service's operation: undeliverable messages, and the certificate expiry forecast. */
export function registerOperationsReports(app: FastifyInstance, deps: WebDeps): void {
  const tags = ['registration authority'];
  app.get(
    '/api/v1/reports/notifications-failed',
    {
      schema: {
        tags,
        security: security.raRead,
        summary:
          'Messages (one-time codes, expiry warnings) that could not be delivered, within N days (30 by default)',
        querystring: failedSchema,
      },
    },
    async (req) => ({
      lines: await failedNotificationsReport(contextFor(deps, req, await raActorOf(app, deps, req)), req.query ?? {}),
    }),
  );
  app.get(
    '/api/v1/reports/certificate-expiry-forecast',
    {
      schema: {
        tags,
        security: security.raRead,
        summary:
          'Card certificates expiring per day over the next N days (365 by default), with the days over the expiry-wave alert share',
        querystring: forecastSchema,
      },
    },
    async (req) =>
      expiryForecastReport(
        contextFor(deps, req, await raActorOf(app, deps, req)),
        deps.config.CARD_EXPIRY_ALERT_PERCENT,
        req.query ?? {},
      ),
  );
}
