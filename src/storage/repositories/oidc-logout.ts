/**
 * Ending single sign-on at relying parties: the session-end events each node takes its share of (session_end_events,
 * taken with FOR UPDATE SKIP LOCKED so each is processed once across the cluster), and the back-channel logout
 * deliveries retried with back-off (oidc_logout_deliveries).
 */
import type { Queryable } from '../database.ts';

export interface SessionEndEvent {
  eventId: string;
  userId: string;
  reason: string;
}

/** Up to `batch` unprocessed events, locked (skipping those another node holds); in a transaction. */
export async function lockPendingSessionEnds(q: Queryable, batch: number): Promise<SessionEndEvent[]> {
  const { rows } = await q.query<{ event_id: string; user_id: string; reason: string }>(
    `SELECT event_id, user_id, reason FROM session_end_events WHERE processed_at IS NULL ORDER BY event_id
       LIMIT $1 FOR UPDATE SKIP LOCKED`,
    [batch],
  );
  return rows.map((r) => ({ eventId: r.event_id, userId: r.user_id, reason: r.reason }));
}

export async function markSessionEndsProcessed(q: Queryable, eventIds: readonly string[]): Promise<void> {
  await q.query('UPDATE session_end_events SET processed_at = now() WHERE event_id = ANY($1)', [[...eventIds]]);
}

/** A failed back-channel delivery, to retry in 5 seconds (one per client and sid). */
export async function queueDelivery(
  q: Queryable,
  d: { clientId: string; accountId: string; sid: string; reason: string; error: string },
): Promise<void> {
  await q.query(
    `INSERT INTO oidc_logout_deliveries (client_id, account_id, sid, reason, attempts, next_attempt, last_error, created_at)
       VALUES ($1, $2, $3, $4, 1, now() + interval '5 seconds', $5, now()) ON CONFLICT (client_id, sid) DO NOTHING`,
    [d.clientId, d.accountId, d.sid, d.reason, d.error],
  );
}

/** A delivery the library itself failed to make (RP-initiated logout), to retry in 5 seconds. */
export async function queueRpInitiatedDelivery(
  q: Queryable,
  d: { clientId: string; accountId: string; sid: string; error: string },
): Promise<void> {
  await q.query(
    `INSERT INTO oidc_logout_deliveries (client_id, account_id, sid, reason, attempts, next_attempt, last_error, created_at)
     VALUES ($1, $2, $3, 'rp_initiated_logout', 1, now() + interval '5 seconds', $4, now()) ON CONFLICT (client_id, sid) DO NOTHING`,
    [d.clientId, d.accountId, d.sid, d.error],
  );
}

export interface DueDelivery {
  deliveryId: string;
  clientId: string;
  accountId: string;
  sid: string;
  attempts: number;
  createdAt: Date;
}

/** Up to 20 deliveries due for a retry, locked (skipping those another node holds); in a transaction. */
export async function lockDueDeliveries(q: Queryable): Promise<DueDelivery[]> {
  const { rows } = await q.query<{
    delivery_id: string;
    client_id: string;
    account_id: string;
    sid: string;
    attempts: number;
    created_at: Date;
  }>(
    `SELECT delivery_id, client_id, account_id, sid, attempts, created_at FROM oidc_logout_deliveries
       WHERE delivered_at IS NULL AND next_attempt <= now() ORDER BY next_attempt LIMIT 20 FOR UPDATE SKIP LOCKED`,
  );
  return rows.map((r) => ({
    deliveryId: r.delivery_id,
    clientId: r.client_id,
    accountId: r.account_id,
    sid: r.sid,
    attempts: r.attempts,
    createdAt: r.created_at,
  }));
}

/** The next try of a delivery, `seconds` from now. */
export async function postponeDelivery(q: Queryable, deliveryId: string, seconds: number): Promise<void> {
  await q.query(
    'UPDATE oidc_logout_deliveries SET next_attempt = now() + make_interval(secs => $2) WHERE delivery_id = $1',
    [deliveryId, seconds],
  );
}

export async function markDelivered(q: Queryable, deliveryId: string): Promise<void> {
  await q.query(
    'UPDATE oidc_logout_deliveries SET delivered_at = now(), attempts = attempts + 1 WHERE delivery_id = $1',
    [deliveryId],
  );
}

/** A failed try; `giveUp`: never tried again. */
export async function recordFailedDelivery(
  q: Queryable,
  deliveryId: string,
  error: string,
  giveUp: boolean,
): Promise<void> {
  await q.query(
    `UPDATE oidc_logout_deliveries SET attempts = attempts + 1, last_error = $2,
           next_attempt = CASE WHEN $3 THEN 'infinity'::timestamptz ELSE next_attempt END WHERE delivery_id = $1`,
    [deliveryId, error, giveUp],
  );
}
