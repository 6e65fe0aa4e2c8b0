-- OpenID Connect provider (CIS2-compatible): protocol state, relying parties, signing keys.

-- oidc-provider's short-lived artefacts (sessions, grants, codes, tokens, interactions…) when Redis is not used.
CREATE TABLE oidc_payloads (
  model       text NOT NULL,
  id          text NOT NULL,
  payload     jsonb NOT NULL,
  grant_id    text,
  user_code   text,
  uid         text,
  account_id  text,
  expires_at  timestamptz,
  consumed_at timestamptz,
  PRIMARY KEY (model, id)
);
CREATE INDEX oidc_payloads_grant ON oidc_payloads (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX oidc_payloads_uid ON oidc_payloads (uid) WHERE uid IS NOT NULL;
CREATE INDEX oidc_payloads_account ON oidc_payloads (account_id) WHERE account_id IS NOT NULL;
CREATE INDEX oidc_payloads_expiry ON oidc_payloads (expires_at) WHERE expires_at IS NOT NULL;

-- Relying parties (clinical systems). Client secrets are sealed; oidc-provider needs them to check client_secret_*.
CREATE TABLE oidc_clients (
  client_id      text PRIMARY KEY,
  name           text NOT NULL,
  metadata       jsonb NOT NULL,
  secret_sealed  text,
  minimum_aal    smallint NOT NULL DEFAULT 3 CHECK (minimum_aal IN (1, 2, 3)),
  status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  created_by     text NOT NULL,
  created_at     timestamptz NOT NULL,
  updated_at     timestamptz NOT NULL
);

-- ID token signing keys. The newest active key of each algorithm signs; retiring keys stay published in the JWKS
-- until every token they signed has expired, so relying parties can still verify them after a rotation.
CREATE TABLE oidc_signing_keys (
  kid                 text PRIMARY KEY,
  alg                 text NOT NULL CHECK (alg IN ('RS256', 'PS256', 'ES256')),
  public_jwk          jsonb NOT NULL,
  private_jwk_sealed  text NOT NULL,
  status              text NOT NULL CHECK (status IN ('active', 'retiring', 'retired')),
  created_at          timestamptz NOT NULL,
  retire_after        timestamptz
);

-- What a grant was given at sign-in: the assurance level reached and the role profile chosen (CIS2 selected_roleid).
CREATE TABLE oidc_grant_context (
  grant_id      text PRIMARY KEY,
  user_id       text NOT NULL,
  aal           smallint NOT NULL,
  person_roleid text,
  updated_at    timestamptz NOT NULL
);

-- Back-channel logout deliveries, retried until the relying party accepts them (or they expire).
CREATE TABLE oidc_logout_deliveries (
  delivery_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  client_id     text NOT NULL,
  account_id    text NOT NULL,
  sid           text NOT NULL,
  reason        text NOT NULL,
  attempts      integer NOT NULL DEFAULT 0,
  next_attempt  timestamptz NOT NULL,
  delivered_at  timestamptz,
  last_error    text,
  created_at    timestamptz NOT NULL,
  UNIQUE (client_id, sid)
);
CREATE INDEX oidc_logout_deliveries_due ON oidc_logout_deliveries (next_attempt) WHERE delivered_at IS NULL;
