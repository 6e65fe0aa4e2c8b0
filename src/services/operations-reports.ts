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

const failedSchema = z.object({
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
      const { rows } = await ctx.db.query<{
        notification_id: string;
        user_id: string;
        given_name: string;
        family_name: string;
        channel: 'email' | 'mobile';
        template: string;
        attempts: number;
        last_error: string | null;
        created_at: Date;
        failed_at: Date;
      }>(
        `SELECT n.notification_id::text, n.user_id, p.given_name, p.family_name, n.channel, n.template, n.attempts,
         n.last_error, n.created_at, n.failed_at
       FROM notifications n JOIN people p ON p.user_id = n.user_id
       WHERE n.status = 'failed' AND n.failed_at > $2
         AND ($1::text[] IS NULL OR EXISTS (
           SELECT 1 FROM person_orgs po WHERE po.user_id = n.user_id AND po.ods_code = ANY($1)))
       ORDER BY n.failed_at DESC, n.notification_id DESC LIMIT $3`,
        [scope, new Date(now.getTime() - withinDays * 86_400_000), limit],
      );
      return rows.map((r) => ({
        notificationId: r.notification_id,
        userId: r.user_id,
        givenName: r.given_name,
        familyName: r.family_name,
        channel: r.channel,
        template: r.template,
        attempts: Number(r.attempts),
        lastError: r.last_error,
        createdAt: new Date(r.created_at).toISOString(),
        failedAt: new Date(r.failed_at).toISOString(),
      }));
    },
  );
}

const forecastSchema = z.object({ days: z.coerce.number().int().min(1).max(366).default(365) });

/** Expiries per day for the next `days` days (365: 12 months), with the days over the alert share marked. */
export async function expiryForecastReport(
  ctx: ServiceContext,
  alertPercent: number,
  query: unknown = {},
): Promise<ExpiryForecast> {
  const { days } = parseInput(forecastSchema, query ?? {});
  return raAction(ctx, 'report.expiry_forecast', { targetType: 'report', targetId: 'expiry_forecast' }, async () =>
    expiryForecast(ctx.db, ctx.clock.now(), { days, alertPercent, odsCodes: scopeOf(ctx) }),
  );
}
