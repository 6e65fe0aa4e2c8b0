-- The audit trail becomes 32 independent hash chains ("lanes", domain/audit/chain.ts). One chain meant one head row
-- locked by every audited write until its commit, so the whole cluster appended one event at a time; now a writer
-- locks only its lane's head. An event's lane is a stable hash of its target, so one person's events stay in order on
-- one chain. Existing events are not touched (the table is append-only): they become the start of lane 0 — their
-- position in it is their seq, and they keep the single-chain hash they were written with.

CREATE TABLE audit_lanes (
  lane     smallint PRIMARY KEY CHECK (lane >= 0 AND lane < 32),
  lane_seq bigint NOT NULL CHECK (lane_seq >= 0),
  hash     text NOT NULL
);
INSERT INTO audit_lanes (lane, lane_seq, hash) SELECT 0, seq, hash FROM audit_head WHERE id = 1;
INSERT INTO audit_lanes (lane, lane_seq, hash)
  SELECT n, 0, '0000000000000000000000000000000000000000000000000000000000000000' FROM generate_series(1, 31) AS n;
DROP TABLE audit_head;

-- A constant default is recorded in the catalogue, not written into the existing rows.
ALTER TABLE audit_events ADD COLUMN lane smallint NOT NULL DEFAULT 0;
ALTER TABLE audit_events ALTER COLUMN lane DROP DEFAULT;
-- Null for events written before lanes (their position in lane 0 is their seq).
ALTER TABLE audit_events ADD COLUMN lane_seq bigint;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_lane_range CHECK (lane >= 0 AND lane < 32);
ALTER TABLE audit_events ADD CONSTRAINT audit_events_legacy_lane CHECK (lane_seq IS NOT NULL OR lane = 0);
-- One event per position in a lane (a lane never forks); also the index `audit verify` walks each lane by.
CREATE UNIQUE INDEX audit_events_lane_position ON audit_events (lane, (coalesce(lane_seq, seq)));

-- seq stays the global reading order. Appenders take it from this sequence after locking their lane's head, so within
-- a lane it rises with the lane position; across lanes it orders events by when they were appended.
CREATE SEQUENCE audit_events_seq AS bigint OWNED BY audit_events.seq;
SELECT setval('audit_events_seq', coalesce((SELECT max(seq) FROM audit_events), 1), (SELECT count(*) > 0 FROM audit_events));

-- Seals: every lane's tip recorded together under one hash, chained seal to seal (`opencis audit seal`, and the
-- audit-seal scheduled job). Cutting the newest events off a whole lane (and rewinding its head) is caught against
-- the last seal that saw them.
CREATE TABLE audit_seals (
  id        bigint PRIMARY KEY,
  at        timestamptz NOT NULL,
  tips      jsonb NOT NULL,
  prev_hash text NOT NULL,
  hash      text NOT NULL
);
CREATE FUNCTION audit_seals_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_seals is append-only';
END;
$$;
CREATE TRIGGER audit_seals_no_update BEFORE UPDATE OR DELETE ON audit_seals
  FOR EACH ROW EXECUTE FUNCTION audit_seals_append_only();
