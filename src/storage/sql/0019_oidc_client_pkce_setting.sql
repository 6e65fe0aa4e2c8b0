-- CIS2 compatibility (docs/cis2.md): PKCE is now a per-client setting, `urn:opencis:require_pkce` in the client's
-- metadata, off by default for new registrations (CIS2 does not require PKCE of confidential clients). Relying parties
-- registered before this setting existed were always held to PKCE: they keep it, so no registration becomes weaker
-- without an RA Manager deciding so (register it anew without --require-pkce to have CIS2's rule).
UPDATE oidc_clients
   SET metadata = metadata || '{"urn:opencis:require_pkce": true}'::jsonb
 WHERE NOT (metadata ? 'urn:opencis:require_pkce')
   AND metadata->'grant_types' ? 'authorization_code';
