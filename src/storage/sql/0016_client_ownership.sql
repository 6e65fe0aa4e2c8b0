-- Relying parties and API clients belong to an organisation (issue 15): its RA Managers register and manage them, in
-- their subtree only. NULL: the operator's (registered with the CLI), managed by the operator alone. API clients
-- registered before this had their organisation in their metadata.
ALTER TABLE oidc_clients ADD COLUMN ods_code text REFERENCES organisations (ods_code);
UPDATE oidc_clients SET ods_code = metadata->>'urn:opencis:api_ods'
  WHERE metadata->>'urn:opencis:api_ods' IS NOT NULL AND EXISTS (SELECT 1 FROM organisations WHERE ods_code = metadata->>'urn:opencis:api_ods');
-- Who last changed the status: a client the operator disabled stays disabled until the operator enables it.
ALTER TABLE oidc_clients ADD COLUMN status_changed_by text;
CREATE INDEX oidc_clients_ods_code ON oidc_clients (ods_code);
