-- "Role profile in effect" defined once (issue 16): a role profile is in effect on a UK date when it is active, has
-- started (start_date on or before the day) and has not passed its end date (none, or on or after the day), both
-- inclusive. The same rule as isEffectiveOn (src/domain/access/role-profile.ts); every query that asks it — claims
-- (effective_role_rows, through oidc_claims_state), CIS1 (cis1_ticket_state, cis1_ticket_liveness), reports and
-- bootstrap (src/storage/repositories/role-profiles.ts, profileInEffect) — calls this function. A single-expression SQL
-- function, IMMUTABLE: the planner inlines it, so the plans are the ones the conditions written out had. Conditions
-- that are not the rule (the person active, the position not retired) stay with each query.
CREATE FUNCTION role_profile_in_effect(p_status text, p_start date, p_end date, p_day date) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT p_status = 'active' AND p_start <= p_day AND (p_end IS NULL OR p_end >= p_day)
$fn$;

-- effective_role_rows (0012), unchanged but for the rule, now role_profile_in_effect.
CREATE OR REPLACE FUNCTION effective_role_rows(p_user_id text, p_day date) RETURNS json
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  result json;
BEGIN
  SELECT COALESCE(json_agg(r ORDER BY r.person_roleid), '[]'::json) INTO result FROM (
    SELECT rp.person_roleid, rp.person_orgid, po.ods_code, o.name AS org_name, p.position_id::text AS position_id,
      p.name AS position_name, rp.start_date, rp.end_date, rp.status,
      COALESCE((SELECT json_agg(json_build_object('code', j.code, 'name', j.name, 'sg', j.staff_group_code,
          'sgn', j.staff_group_name, 'g', j.sub_group_code, 'gn', j.sub_group_name) ORDER BY j.code)
        FROM position_job_roles pj JOIN rbac_job_roles j ON j.code = pj.job_role_code WHERE pj.position_id = p.position_id),
        '[]'::json) AS roles,
      ARRAY(SELECT activity_code FROM position_activities WHERE position_id = p.position_id ORDER BY 1) AS activities,
      ARRAY(SELECT DISTINCT b.activity_code FROM position_job_roles pj JOIN rbac_baseline b ON b.job_role_code = pj.job_role_code
        WHERE pj.position_id = p.position_id) AS baseline,
      ARRAY(SELECT aow_code FROM position_areas_of_work WHERE position_id = p.position_id ORDER BY 1) AS aows,
      ARRAY(SELECT workgroup_code FROM position_workgroups WHERE position_id = p.position_id ORDER BY 1) AS workgroups
    FROM role_profiles rp
    JOIN people pe ON pe.user_id = rp.user_id
    JOIN person_orgs po ON po.person_orgid = rp.person_orgid
    JOIN organisations o ON o.ods_code = po.ods_code
    JOIN positions p ON p.position_id = rp.position_id
    WHERE rp.user_id = p_user_id AND pe.status = 'active' AND role_profile_in_effect(rp.status, rp.start_date, rp.end_date, p_day)
      AND p.status = 'active'
  ) r;
  RETURN result;
END
$fn$;

-- cis1_ticket_state (0009), unchanged but for the rule, now role_profile_in_effect.
CREATE OR REPLACE FUNCTION cis1_ticket_state(p_ticket_hash text, p_day date) RETURNS json
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
      WHERE rp.person_roleid = s.person_roleid AND rp.user_id = s.user_id AND role_profile_in_effect(rp.status, rp.start_date, rp.end_date, p_day)
        AND pos.status = 'active'
    ) r ON true
    WHERE s.ticket_hash = p_ticket_hash
  ) x;
  RETURN state;
END
$fn$;

-- cis1_ticket_liveness (0013), unchanged but for the rule, now role_profile_in_effect.
CREATE OR REPLACE FUNCTION cis1_ticket_liveness(p_ticket_hash text, p_day date) RETURNS json
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  state json;
BEGIN
  SELECT row_to_json(x) INTO state FROM (
    SELECT s.session_id, s.user_id, s.card_id, s.certificate_serial, s.workstation_id, s.amr,
      s.person_roleid, s.ticket_hash, s.authenticated_at, s.last_seen_at, s.ended_at, s.end_reason,
      c.status AS card_status, sc.status AS cert_status, sc.revocation_reason AS cert_revocation_reason,
      sc.not_after AS cert_not_after, cc.status AS current_cert_status, cc.not_after AS current_cert_not_after,
      p.status AS person_status, k.key_id AS signing_key_id, v.catalogue_key, r.person_orgid,
      json_build_array(s.session_id, s.user_id, s.workstation_id, s.amr, s.person_roleid, s.authenticated_at,
        p.title, p.given_name, p.family_name, p.preferred_name, p.identity_assurance_level,
        r.person_orgid, r.position_id, r.content_version, r.ods_code, r.org_name, k.key_id, v.catalogue_key)::text
        AS stamp
    FROM cis1_sessions s
    JOIN cards c ON c.card_id = s.card_id
    JOIN pki_certificates sc ON sc.serial = s.certificate_serial
    LEFT JOIN pki_certificates cc ON cc.serial = c.certificate_serial
    JOIN people p ON p.user_id = s.user_id
    LEFT JOIN (SELECT key_id FROM cis1_signing_keys WHERE status = 'active') k ON true
    CROSS JOIN (SELECT count(*)::text || ':' || COALESCE(max(loaded_at)::text, '') AS catalogue_key
      FROM rbac_catalogue_versions) v
    LEFT JOIN LATERAL (
      SELECT rp.person_orgid, rp.position_id, pos.content_version, po.ods_code, o.name AS org_name
      FROM role_profiles rp
      JOIN person_orgs po ON po.person_orgid = rp.person_orgid
      JOIN organisations o ON o.ods_code = po.ods_code
      JOIN positions pos ON pos.position_id = rp.position_id
      WHERE rp.person_roleid = s.person_roleid AND rp.user_id = s.user_id AND role_profile_in_effect(rp.status, rp.start_date, rp.end_date, p_day)
        AND pos.status = 'active'
    ) r ON true
    WHERE s.ticket_hash = p_ticket_hash
  ) x;
  RETURN state;
END
$fn$;
