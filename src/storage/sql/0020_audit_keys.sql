-- The audit trail keyed with a key that is not in the database (domain/audit/chain.ts). Until now an event's hash and a
-- seal's hash were plain SHA-256, which anyone who can write to the database can compute: editing an event and
-- re-hashing its lane, the lane's head and the seals passed `opencis audit verify`. From now on each new event's hash
-- and each new seal's hash is an HMAC-SHA-256 with the audit key (derived from SECRETS_KEY, or from AUDIT_KEY_FILE),
-- and the key's id is stored beside it. Existing rows are not touched (the tables are append-only): their key_id is
-- null, they keep the form they were written with, and the first signed seal vouches for them.
ALTER TABLE audit_events ADD COLUMN key_id text;
ALTER TABLE audit_seals ADD COLUMN key_id text;
