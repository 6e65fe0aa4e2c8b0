/**
 * What operating the service reads: the health check's round trip, the notification outbox's counts for the metrics,
 * and its failed messages for the RA report.
 */
import type { Queryable } from '../database.ts';

/** One round trip: the database answers. */
export async function ping(q: Queryable): Promise<void> {
  await q.query('SELECT 1');
}

/** Messages in the outbox that are queued (waiting or being retried) and failed, across the cluster. */
export async function outboxCounts(q: Queryable): Promise<{ queued: number; failed: number }> {
  const { rows } = await q.query<{ status: string; n: number }>(
    "SELECT status, count(*)::int AS n FROM notifications WHERE status IN ('queued', 'failed') GROUP BY status",
  );
  const of = (s: string) => Number(rows.find((r) => r.status === s)?.n ?? 0);
  return { queued: of('queued'), failed: of('failed') };
}

export interface FailedNotification {
  notificationId: string;
  userId: string;
  givenName: string;
  familyName: string;
  channel: 'email' | 'mobile';
  template: string;
  attempts: number;
  lastError: string | null;
  createdAt: Date;
  failedAt: Date;
}

/** Messages that failed since `since`, newest first, of people in the organisations given (null: everyone). */
export async function failedNotifications(
  q: Queryable,
  odsCodes: readonly string[] | null,
  since: Date,
  limit: number,
): Promise<FailedNotification[]> {
  const { rows } = await q.query<{
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
    [odsCodes, since, limit],
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
    createdAt: r.created_at,
    failedAt: r.failed_at,
  }));
}
