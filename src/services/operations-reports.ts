/**
 * Two RA reports about the service's own operation rather than one person: messages that could not be delivered
 * (after their retries, or refused outright), and the certificate expiry forecast. Each covers only the people of the
 * organisations where the policy lets the actor view reports, and reading one is audited like every RA report.
 */
import { z } from 'zod';
import type { ServiceContext } from './context.ts';
import { type ExpiryForecast, expiryForecast } from './expiry-forecast.ts';
import { raAction } from './ra/common.ts';
import { reportScope as scopeOf } from './ra/reports.ts';
import { parseInput } from './validation.ts';

export const failedSchema = z.object({
  withinDays: z.coerce.number().int().min(1).max(366).default(30),
  limit: z.coerce.number().int().min(1).max(1000).default(200),
});

export interface FailedNotificationLine {
  notificationId: string;
  userId: string;
  givenName: string;
  familyName: string;
  channel: 'email' | 'mobile';
  template: string;
  attempts: number;
  lastError: string | null;
  createdAt: string;
  failedAt: string;
}

/** Messages marked failed within the last `withinDays` days (30 by default), newest first. */
export async function failedNotificationsReport(
  ctx: ServiceContext,
  query: unknown = {},
): Promise<FailedNotificationLine[]> {
  const { withinDays, limit } = parseInput(failedSchema, query ?? {});
  return raAction(
    ctx,
    'report.notifications_failed',
    { targetType: 'report', targetId: 'notifications_failed' },
    async () => {
      const scope = scopeOf(ctx);
      const now = ctx.clock.now();
      const rows = await ctx.repos.operations.failedNotifications(
        scope,
        new Date(now.getTime() - withinDays * 86_400_000),
        limit,
      );
      return rows.map((r) => ({
        ...r,
        createdAt: new Date(r.createdAt).toISOString(),
        failedAt: new Date(r.failedAt).toISOString(),
      }));
    },
  );
}

export const forecastSchema = z.object({ days: z.coerce.number().int().min(1).max(366).default(365) });

/** Expiries per day for the next `days` days (365: 12 months), with the days over the alert share marked. */
export async function expiryForecastReport(
  ctx: ServiceContext,
  alertPercent: number,
  query: unknown = {},
): Promise<ExpiryForecast> {
  const { days } = parseInput(forecastSchema, query ?? {});
  return raAction(ctx, 'report.expiry_forecast', { targetType: 'report', targetId: 'expiry_forecast' }, async () =>
    expiryForecast(ctx.repos, ctx.clock.now(), { days, alertPercent, odsCodes: scopeOf(ctx) }),
  );
}
