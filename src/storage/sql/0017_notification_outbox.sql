-- The notifications table becomes a durable outbox: a message is queued in the transaction that causes it and sent
-- afterwards by the outbox (src/services/notifications.ts), with retries and backoff, so a mail server that is down
-- loses nothing and delays no request. Its content (which may hold a one-time code) is kept sealed only until it is
-- sent or given up, then erased.
ALTER TABLE notifications
  ADD COLUMN status          text NOT NULL DEFAULT 'sent' CHECK (status IN ('queued', 'sent', 'failed')),
  ADD COLUMN payload_sealed  text,
  ADD COLUMN attempts        integer NOT NULL DEFAULT 0,
  ADD COLUMN next_attempt_at timestamptz,
  ADD COLUMN lease_until     timestamptz,
  ADD COLUMN deliver_by      timestamptz,
  ADD COLUMN last_error      text,
  ADD COLUMN failed_at       timestamptz,
  ADD COLUMN provider_id     text;

-- Rows written before the outbox were sent in the request; one with no sent_at is one whose sending threw.
UPDATE notifications SET status = 'failed', failed_at = created_at, last_error = 'not delivered (before the outbox)'
  WHERE sent_at IS NULL;

ALTER TABLE notifications ALTER COLUMN status SET DEFAULT 'queued';
ALTER TABLE notifications ADD CONSTRAINT notifications_queued_has_payload
  CHECK (status <> 'queued' OR (payload_sealed IS NOT NULL AND next_attempt_at IS NOT NULL));

CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'queued';
CREATE INDEX notifications_failed ON notifications (failed_at DESC) WHERE status = 'failed';

