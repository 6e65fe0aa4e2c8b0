-- The audit trail keyed with a key that is not in the database (domain/audit/chain.ts). Until now an event's hash and a
-- seal's hash were plain SHA-256, which anyone who can write to the database can compute: editing an event and
-- re-hashing its lane, the lane's head and the seals passed `opencis audit verify`. From now on each new event's hash
-- and each new seal's hash is an HMAC-SHA-256 with the audit key (derived from SECRETS_KEY, or from AUDIT_KEY_FILE).
-- A seal records the id of the key that signed it; an event does not (verify tries the few keys of the ring: one more
-- column on every audited write would cost more). Existing rows are not touched (the tables are append-only): they
-- keep the unkeyed form they were written with, and the first signed seal vouches for them.
ALTER TABLE audit_seals ADD COLUMN key_id text;
