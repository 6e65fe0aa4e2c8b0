-- Authenticators and sign-in: smartcards (physical and virtual), WebAuthn credentials (FIDO2 keys, Windows Hello,
-- passkeys), TOTP apps, one-time codes, challenges, web sessions, brute-force counters and the notification outbox.

ALTER TABLE people ADD COLUMN email_verified_at timestamptz;
ALTER TABLE people ADD COLUMN mobile_verified_at timestamptz;

-- A smartcard's life: issuing (key being generated) → awaiting_passcode → active ⇄ locked; → cancelled (final).
CREATE TABLE cards (
  card_id               text PRIMARY KEY,
  user_id               text NOT NULL REFERENCES people (user_id),
  kind                  text NOT NULL CHECK (kind IN ('physical', 'virtual')),
  status                text NOT NULL CHECK (status IN ('issuing', 'awaiting_passcode', 'active', 'locked', 'cancelled')),
  token_serial          text,
  -- the token's SO PIN (PUK): sealed with the secrets key, sent only to a card agent redeeming a one-time grant
  unblock_secret_sealed text NOT NULL,
  certificate_serial    text,
  cancel_reason         text CHECK (cancel_reason IN ('lost', 'stolen', 'damaged', 'leaver', 'replaced', 'other')),
  issued_by             text NOT NULL,
  created_at            timestamptz NOT NULL,
  updated_at            timestamptz NOT NULL,
  version               integer NOT NULL DEFAULT 1
);
CREATE INDEX cards_user ON cards (user_id);
CREATE UNIQUE INDEX cards_token_in_use ON cards (token_serial) WHERE token_serial IS NOT NULL AND status <> 'cancelled';

-- One-time grants that let a card agent act on one card once (issue, set passcode, unlock). Stored hashed.
CREATE TABLE card_grants (
  grant_hash  text PRIMARY KEY,
  card_id     text NOT NULL REFERENCES cards (card_id),
  action      text NOT NULL CHECK (action IN ('issue', 'set_passcode', 'unlock')),
  state       text NOT NULL CHECK (state IN ('new', 'redeemed', 'used')),
  expires_at  timestamptz NOT NULL,
  created_by  text NOT NULL,
  created_at  timestamptz NOT NULL
);
CREATE INDEX card_grants_card ON card_grants (card_id);

CREATE TABLE webauthn_credentials (
  credential_id      text PRIMARY KEY,
  user_id            text NOT NULL REFERENCES people (user_id),
  public_key         bytea NOT NULL,
  sign_count         bigint NOT NULL,
  transports         text[] NOT NULL DEFAULT '{}',
  aaguid             text NOT NULL,
  attestation_format text NOT NULL,
  backup_eligible    boolean NOT NULL,
  backed_up          boolean NOT NULL,
  kind               text NOT NULL CHECK (kind IN ('security_key', 'platform', 'passkey')),
  aal                smallint NOT NULL CHECK (aal IN (2, 3)),
  nickname           text NOT NULL,
  status             text NOT NULL CHECK (status IN ('active', 'removed')),
  clone_warning      boolean NOT NULL DEFAULT false,
  created_at         timestamptz NOT NULL,
  last_used_at       timestamptz
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_id);

CREATE TABLE totp_authenticators (
  totp_id       text PRIMARY KEY,
  user_id       text NOT NULL REFERENCES people (user_id),
  secret_sealed text NOT NULL,
  -- the last accepted time step: a code from it or an earlier step is refused (RFC 6238 §5.2 replay)
  last_step     bigint NOT NULL DEFAULT 0,
  status        text NOT NULL CHECK (status IN ('pending', 'active', 'removed')),
  nickname      text NOT NULL,
  created_at    timestamptz NOT NULL,
  last_used_at  timestamptz
);
CREATE INDEX totp_authenticators_user ON totp_authenticators (user_id);

-- One-time codes sent by email or text (self-service unlock, contact verification). Stored hashed; single use.
CREATE TABLE one_time_codes (
  code_id    text PRIMARY KEY,
  user_id    text NOT NULL REFERENCES people (user_id),
  purpose    text NOT NULL,
  subject_id text,
  channel    text NOT NULL CHECK (channel IN ('email', 'mobile')),
  code_hash  text NOT NULL,
  attempts   integer NOT NULL DEFAULT 0,
  expires_at timestamptz NOT NULL,
  used_at    timestamptz,
  created_at timestamptz NOT NULL
);
CREATE INDEX one_time_codes_user ON one_time_codes (user_id, purpose);

-- Server challenges (WebAuthn, smartcard): single use, short-lived.
CREATE TABLE auth_challenges (
  challenge_id text PRIMARY KEY,
  kind         text NOT NULL,
  user_id      text,
  challenge    text NOT NULL,
  data         jsonb,
  expires_at   timestamptz NOT NULL,
  used_at      timestamptz
);

-- Web sessions of people signed in to OpenCIS pages. The cookie holds a random id; only its hash is stored.
CREATE TABLE web_sessions (
  session_hash     text PRIMARY KEY,
  user_id          text NOT NULL REFERENCES people (user_id),
  aal              smallint NOT NULL CHECK (aal IN (1, 2, 3)),
  amr              text[] NOT NULL,
  authenticator_id text,
  created_at       timestamptz NOT NULL,
  authenticated_at timestamptz NOT NULL,
  last_seen_at     timestamptz NOT NULL,
  ended_at         timestamptz,
  end_reason       text,
  ip               text,
  user_agent       text
);
CREATE INDEX web_sessions_user ON web_sessions (user_id) WHERE ended_at IS NULL;

-- Failed-attempt counters for anything guessable, per person and per IP (key = 'totp:user:…', 'otc:ip:…').
CREATE TABLE attempt_counters (
  counter_key  text PRIMARY KEY,
  failures     integer NOT NULL,
  window_start timestamptz NOT NULL,
  locked_until timestamptz
);

-- Messages to people (one-time codes, expiry warnings), delivered by a pluggable transport.
CREATE TABLE notifications (
  notification_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id         text NOT NULL REFERENCES people (user_id),
  channel         text NOT NULL CHECK (channel IN ('email', 'mobile')),
  template        text NOT NULL,
  dedupe_key      text UNIQUE,
  created_at      timestamptz NOT NULL,
  sent_at         timestamptz
);

-- One-time enrolment links (e.g. from `opencis bootstrap`): let one person add their first authenticator, once.
CREATE TABLE enrolment_invitations (
  token_hash  text PRIMARY KEY,
  user_id     text NOT NULL REFERENCES people (user_id),
  max_aal     smallint NOT NULL CHECK (max_aal IN (2, 3)),
  created_by  text NOT NULL,
  created_at  timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz
);
