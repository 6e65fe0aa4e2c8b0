-- When OpenCIS ends a person's sessions (signed out everywhere, card cancelled or locked, leaver, role removed), it
-- records it here in the same transaction; the OpenID Connect module picks each event up once (SKIP LOCKED, whichever
-- node gets there first), ends the person's single sign-on sessions and sends back-channel logout tokens.
CREATE TABLE session_end_events (
  event_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id      text NOT NULL,
  reason       text NOT NULL,
  created_at   timestamptz NOT NULL,
  processed_at timestamptz
);
CREATE INDEX session_end_events_pending ON session_end_events (event_id) WHERE processed_at IS NULL;
