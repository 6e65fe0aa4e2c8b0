-- The OpenCIS certificate authority (src/pki): CA keys and certificates, the authentication certificates it issues,
-- and the state behind its CRLs. Written for PostgreSQL 15 (the embedded PGlite runs 18): no syntax newer than 15.

-- A CA's private key is kept as PKCS#8 DER sealed with the secrets key (purpose 'pki.ca-key'), never in the clear.
-- A retired CA issues nothing more, but the certificates it issued still verify until they expire.
CREATE TABLE pki_authorities (
  id                 text PRIMARY KEY,
  name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  key_algorithm      text NOT NULL CHECK (key_algorithm IN ('ECDSA-P256', 'RSA-2048')),
  certificate_der    bytea NOT NULL,
  private_key_sealed text NOT NULL,
  status             text NOT NULL CHECK (status IN ('active', 'retired')),
  not_after          timestamptz NOT NULL,
  created_at         timestamptz NOT NULL
);
-- At most one active CA, whatever two nodes starting at once try to do.
CREATE UNIQUE INDEX pki_authorities_one_active ON pki_authorities ((status)) WHERE status = 'active';

-- Certificates carry the 12-digit user ID only, never a name: certificates are public.
-- serial: lower-case hex of a positive serial number with at least 64 random bits (CA/B Forum, RFC 5280 §4.1.2.2).
CREATE TABLE pki_certificates (
  serial            text PRIMARY KEY CHECK (serial ~ '^[0-9a-f]{16,40}$'),
  authority_id      text NOT NULL REFERENCES pki_authorities (id),
  user_id           text NOT NULL CHECK (user_id ~ '^[0-9]{12}$'),
  card_id           text CHECK (length(card_id) BETWEEN 1 AND 100),
  purpose           text NOT NULL CHECK (purpose IN ('authentication')),
  subject           text NOT NULL,
  not_before        timestamptz NOT NULL,
  not_after         timestamptz NOT NULL,
  status            text NOT NULL CHECK (status IN ('valid', 'revoked')),
  revoked_at        timestamptz,
  -- RFC 5280 §5.3.1 CRLReason names (certificateHold and removeFromCRL are not used: revocation is final)
  revocation_reason text CHECK (revocation_reason IN (
    'unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation',
    'privilegeWithdrawn', 'aACompromise'
  )),
  certificate_der   bytea NOT NULL,
  public_key_sha256 text NOT NULL CHECK (public_key_sha256 ~ '^[0-9a-f]{64}$'),
  created_at        timestamptz NOT NULL,
  CHECK (not_after > not_before),
  CHECK ((status = 'revoked') = (revoked_at IS NOT NULL AND revocation_reason IS NOT NULL))
);
CREATE INDEX pki_certificates_user ON pki_certificates (user_id);
CREATE INDEX pki_certificates_card ON pki_certificates (card_id) WHERE card_id IS NOT NULL;
-- The CRL lists the revoked certificates of one CA that have not expired yet.
CREATE INDEX pki_certificates_revoked ON pki_certificates (authority_id, not_after) WHERE status = 'revoked';

-- crl_number: RFC 5280 §5.2.3, strictly increasing for every CRL any node generates.
-- revocation_version: bumped in the transaction of every revocation, so every node knows its cached CRL is stale.
CREATE TABLE pki_crl_state (
  id                 smallint PRIMARY KEY CHECK (id = 1),
  crl_number         bigint NOT NULL,
  revocation_version bigint NOT NULL
);
INSERT INTO pki_crl_state (id, crl_number, revocation_version) VALUES (1, 0, 0);
