-- The expiry forecast and the expiry spread count valid authentication certificates by the day they expire.
CREATE INDEX pki_certificates_valid_not_after ON pki_certificates (not_after) WHERE status = 'valid';
