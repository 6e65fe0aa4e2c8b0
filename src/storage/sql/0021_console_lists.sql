-- The RA console's lists at national scale (issue #14): who works for an organisation (search filtered by
-- organisation, the audit view's scope), and the audit trail read by actor, by action and by time. Indexes only: how
-- audit events are written and hashed does not change.
CREATE INDEX person_orgs_organisation ON person_orgs (ods_code, user_id);
CREATE INDEX audit_events_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_at ON audit_events (at);

-- A database seeded with the demonstration data says so here (services/demo.ts): the demo's short path to the RA
-- console (a trusted virtual security key, a printed one-time link) exists only while DEMO_DATA is on AND this row is
-- there, so a production database can never grow it.
CREATE TABLE demo_installation (
  id        boolean PRIMARY KEY DEFAULT true CHECK (id),
  seeded_at timestamptz NOT NULL
);

-- Searches narrowed to people who are suspended, have left or died (a small share of the national record) read them
-- in name order from here, rather than every person with that name prefix.
CREATE INDEX people_status_name ON people (status, family_key, given_key, user_id) WHERE status <> 'active';
