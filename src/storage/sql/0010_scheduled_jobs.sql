-- Scheduled jobs run exactly once across a cluster: a node claims a due job with one conditional UPDATE (whoever
-- updates the row runs it); a node that dies mid-run loses its claim when the lease runs out.
CREATE TABLE scheduled_jobs (
  name          text PRIMARY KEY,
  every_seconds integer NOT NULL CHECK (every_seconds > 0),
  next_run_at   timestamptz NOT NULL,
  lease_until   timestamptz,
  leased_by     text,
  last_started  timestamptz,
  last_finished timestamptz,
  last_result   text,
  runs          bigint NOT NULL DEFAULT 0
);
