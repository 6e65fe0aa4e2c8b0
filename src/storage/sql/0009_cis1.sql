-- CIS1, the legacy smartcard route (DOMAIN §8; src/cis1): card sessions held by a workstation's card agent, the SSO
-- tickets applications validate, and the key that signs the SAML role assertions. Written for PostgreSQL 15.

-- One row per smartcard sign-in on a workstation. The agent holds two secrets the server keeps only as SHA-256: the
-- session secret (it renews, switches role and ends the session) and the ticket (applications validate it). The ticket
-- exists once a role profile is selected. Limits follow AAL3 (NIST SP 800-63B-4): 12 hours, 15 minutes idle.
CREATE TABLE cis1_sessions (
  session_id          text PRIMARY KEY CHECK (session_id ~ '^[A-Za-z0-9_-]{22}$'),
  user_id             text NOT NULL REFERENCES people (user_id),
  card_id             text NOT NULL REFERENCES cards (card_id),
  -- the certificate the card proved possession with: revoking it ends the session
  certificate_serial  text NOT NULL REFERENCES pki_certificates (serial),
  workstation_id      text NOT NULL CHECK (workstation_id ~ '^[A-Za-z0-9_-]{16,64}$'),
  aal                 smallint NOT NULL CHECK (aal = 3),
  amr                 text[] NOT NULL,
  agent_secret_hash   text NOT NULL UNIQUE CHECK (agent_secret_hash ~ '^[0-9a-f]{64}$'),
  ticket_hash         text UNIQUE CHECK (ticket_hash ~ '^[0-9a-f]{64}$'),
  person_roleid       text CHECK (person_roleid ~ '^[0-9]{12}$'),
  authenticated_at    timestamptz NOT NULL,
  last_seen_at        timestamptz NOT NULL,
  role_selected_at    timestamptz,
  ended_at            timestamptz,
  end_reason          text CHECK (end_reason IN (
    'card_removed', 'signed_out', 'agent_stopped', 'replaced', 'idle_timeout', 'max_age', 'card_inactive',
    'certificate_revoked', 'certificate_expired', 'person_inactive'
  )),
  ip                  text,
  CHECK ((ended_at IS NULL) = (end_reason IS NULL)),
  CHECK (ticket_hash IS NULL OR person_roleid IS NOT NULL)
);
CREATE INDEX cis1_sessions_card ON cis1_sessions (card_id) WHERE ended_at IS NULL;
CREATE INDEX cis1_sessions_user ON cis1_sessions (user_id) WHERE ended_at IS NULL;

-- The key that signs role assertions (RSA-2048, RSA-SHA256), generated at first use. The private key is PKCS#8 DER
-- sealed with the secrets key (purpose 'cis1.signing-key'); the self-signed certificate is published in the IdP metadata.
CREATE TABLE cis1_signing_keys (
  key_id             text PRIMARY KEY,
  certificate_der    bytea NOT NULL,
  private_key_sealed text NOT NULL,
  status             text NOT NULL CHECK (status IN ('active', 'retired')),
  not_after          timestamptz NOT NULL,
  created_at         timestamptz NOT NULL
);
CREATE UNIQUE INDEX cis1_signing_keys_one_active ON cis1_signing_keys ((status)) WHERE status = 'active';

-- Everything one ticket validation reads, in one call: the session, the live state of its card, certificate and
-- person, and the selected role profile if it is in effect on p_day (UK date) — the rules of effectiveRoles in
-- src/services/access.ts. Nothing here is cached between calls; only the query plan is: PL/pgSQL keeps the plan of
-- its statement per connection, where the same query sent as text is planned again on every validation (several
-- milliseconds for its subqueries, most of the cost of a validation). One JSON object, or NULL for an unknown ticket.
CREATE FUNCTION cis1_ticket_state(p_ticket_hash text, p_day date) RETURNS json
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  state json;
BEGIN
  SELECT row_to_json(x) INTO state FROM (
    SELECT s.session_id, s.user_id, s.card_id, s.certificate_serial, s.workstation_id, s.amr,
      s.person_roleid, s.ticket_hash, s.authenticated_at, s.last_seen_at, s.ended_at, s.end_reason,
      c.status AS card_status, sc.status AS cert_status, sc.revocation_reason AS cert_revocation_reason,
      sc.not_after AS cert_not_after, cc.status AS current_cert_status, cc.not_after AS current_cert_not_after,
      p.status AS person_status, p.title, p.given_name, p.family_name, p.preferred_name, p.identity_assurance_level,
      (SELECT k.key_id FROM cis1_signing_keys k WHERE k.status = 'active') AS signing_key_id,
      (SELECT count(*)::text || ':' || COALESCE(max(v.loaded_at)::text, '') FROM rbac_catalogue_versions v)
        AS catalogue_key,
      r.person_orgid, r.ods_code, r.org_name, r.job_roles, r.activities, r.baseline, r.aows, r.workgroups
    FROM cis1_sessions s
    JOIN cards c ON c.card_id = s.card_id
    JOIN pki_certificates sc ON sc.serial = s.certificate_serial
    LEFT JOIN pki_certificates cc ON cc.serial = c.certificate_serial
    JOIN people p ON p.user_id = s.user_id
    LEFT JOIN LATERAL (
      SELECT rp.person_orgid, po.ods_code, o.name AS org_name,
        COALESCE((SELECT json_agg(json_build_object('code', j.code, 'name', j.name, 'sg', j.staff_group_code,
            'sgn', j.staff_group_name, 'g', j.sub_group_code, 'gn', j.sub_group_name) ORDER BY j.code)
          FROM position_job_roles pj JOIN rbac_job_roles j ON j.code = pj.job_role_code
          WHERE pj.position_id = pos.position_id), '[]'::json) AS job_roles,
        COALESCE((SELECT json_agg(json_build_array(a.code, a.name) ORDER BY a.code)
          FROM position_activities pa JOIN rbac_activities a ON a.code = pa.activity_code
          WHERE pa.position_id = pos.position_id), '[]'::json) AS activities,
        ARRAY(SELECT DISTINCT b.activity_code FROM position_job_roles pj
          JOIN rbac_baseline b ON b.job_role_code = pj.job_role_code WHERE pj.position_id = pos.position_id) AS baseline,
        COALESCE((SELECT json_agg(json_build_array(w.code, w.name) ORDER BY w.code)
          FROM position_areas_of_work pw JOIN rbac_areas_of_work w ON w.code = pw.aow_code
          WHERE pw.position_id = pos.position_id), '[]'::json) AS aows,
        COALESCE((SELECT json_agg(json_build_array(g.code, g.name) ORDER BY g.code)
          FROM position_workgroups pg JOIN workgroups g ON g.code = pg.workgroup_code
          WHERE pg.position_id = pos.position_id), '[]'::json) AS workgroups
      FROM role_profiles rp
      JOIN person_orgs po ON po.person_orgid = rp.person_orgid
      JOIN organisations o ON o.ods_code = po.ods_code
      JOIN positions pos ON pos.position_id = rp.position_id
      WHERE rp.person_roleid = s.person_roleid AND rp.user_id = s.user_id AND rp.status = 'active'
        AND rp.start_date <= p_day AND (rp.end_date IS NULL OR rp.end_date >= p_day) AND pos.status = 'active'
    ) r ON true
    WHERE s.ticket_hash = p_ticket_hash
  ) x;
  RETURN state;
END
$fn$;
