/**
 * The notifications outbox (services/notifications.ts): messages queued by the transaction that causes them, claimed
 * with a lease by whichever node delivers them, their sealed content erased once sent or given up.
 */
import type { Queryable } from '../database.ts';

export interface ClaimedNotificationRow {
  notification_id: string;
  user_id: string;
  channel: 'email' | 'mobile';
  template: string;
  payload_sealed: string;
  attempts: number;
  deliver_by: Date | null;
}

/** Queues one message; false when a message with its dedupe key exists already. */
export async function insertNotification(
  q: Queryable,
  n: {
    userId: string;
    channel: string;
    template: string;
    dedupeKey: string | null;
    at: Date;
    payloadSealed: string;
    deliverBy: Date | null;
  },
): Promise<boolean> {
  const { rows } = await q.query<{ notification_id: string }>(
    `INSERT INTO notifications (user_id, channel, template, dedupe_key, created_at, status, payload_sealed, next_attempt_at,
       deliver_by)
     VALUES ($1, $2, $3, $4, $5, 'queued', $6, $5, $7)
     ON CONFLICT (dedupe_key) DO NOTHING RETURNING notification_id`,
    [n.userId, n.channel, n.template, n.dedupeKey, n.at, n.payloadSealed, n.deliverBy],
  );
  return rows.length > 0;
}

/**
 * Claims up to `batch` messages due at `now`, leased until `leaseUntil`. SKIP LOCKED: two nodes polling at once take
 * different messages; the lease frees a message whose node died.
 */
export async function claimDueNotifications(
  q: Queryable,
  now: Date,
  leaseUntil: Date,
  batch: number,
): Promise<ClaimedNotificationRow[]> {
  const { rows } = await q.query<ClaimedNotificationRow>(
    `UPDATE notifications SET lease_until = $2, attempts = attempts + 1
       WHERE notification_id IN (
         SELECT notification_id FROM notifications
         WHERE status = 'queued' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1)
         ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
       RETURNING notification_id, user_id, channel, template, payload_sealed, attempts, deliver_by`,
    [now, leaseUntil, batch],
  );
  return rows;
}

export async function markNotificationFailed(q: Queryable, notificationId: string, at: Date, reason: string) {
  await q.query(
    `UPDATE notifications SET status = 'failed', failed_at = $2, last_error = $3, payload_sealed = NULL,
           lease_until = NULL, next_attempt_at = NULL
         WHERE notification_id = $1`,
    [notificationId, at, reason],
  );
}

export async function markNotificationSent(
  q: Queryable,
  notificationId: string,
  at: Date,
  providerId: string | null,
): Promise<void> {
  await q.query(
    `UPDATE notifications SET status = 'sent', sent_at = $2, provider_id = $3, payload_sealed = NULL,
           lease_until = NULL, next_attempt_at = NULL, last_error = NULL
         WHERE notification_id = $1`,
    [notificationId, at, providerId],
  );
}

export async function scheduleNotificationRetry(
  q: Queryable,
  notificationId: string,
  nextAttemptAt: Date,
  reason: string,
): Promise<void> {
  await q.query(
    'UPDATE notifications SET next_attempt_at = $2, lease_until = NULL, last_error = $3 WHERE notification_id = $1',
    [notificationId, nextAttemptAt, reason],
  );
}
