-- Signing-key rotation in two phases, so a relying party never meets an ID token whose kid is missing from the JWKS
-- it fetches from whichever node: a new key is published first and signs only from activate_after, by which time
-- every node (each reloads the keys every minute) publishes it. NULL: the key signs from its creation (keys made
-- before this migration, and the first keys of a new installation).
ALTER TABLE oidc_signing_keys ADD COLUMN activate_after timestamptz;
