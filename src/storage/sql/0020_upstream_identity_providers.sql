-- Federated sign-in (CIS2's AAL2_NHSMAIL, docs/cis2.md): organisations' own OpenID Connect identity providers
-- (NHSmail is Microsoft Entra ID), registered by the operator, and the links between an account there and a person's
-- national record, made by an RA or by the person signed in. A sign-in through a linked account is AAL2, amr NHSMAIL.

CREATE TABLE upstream_idps (
  idp_id               text PRIMARY KEY CHECK (idp_id ~ '^[a-z0-9][a-z0-9-]{1,39}$'),
  name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  issuer               text NOT NULL,
  client_id            text NOT NULL,
  client_secret_sealed text NOT NULL,
  -- The ID token claim that names the account (sub, or Entra ID's immutable oid).
  subject_claim        text NOT NULL DEFAULT 'sub' CHECK (subject_claim IN ('sub', 'oid')),
  -- Organisations (each with its subtree) whose people may sign in through it.
  allowed_ods          text[] NOT NULL CHECK (cardinality(allowed_ods) BETWEEN 1 AND 100),
  status               text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  created_by           text NOT NULL,
  created_at           timestamptz NOT NULL,
  updated_at           timestamptz NOT NULL
);

CREATE TABLE upstream_links (
  link_id      text PRIMARY KEY,
  idp_id       text NOT NULL REFERENCES upstream_idps (idp_id),
  subject      text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
  user_id      text NOT NULL REFERENCES people (user_id),
  status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'removed')),
  linked_by    text NOT NULL,
  created_at   timestamptz NOT NULL,
  last_used_at timestamptz,
  removed_at   timestamptz
);
-- One person per upstream account, one upstream account per person and provider.
CREATE UNIQUE INDEX upstream_links_subject ON upstream_links (idp_id, subject) WHERE status = 'active';
CREATE UNIQUE INDEX upstream_links_person ON upstream_links (idp_id, user_id) WHERE status = 'active';
