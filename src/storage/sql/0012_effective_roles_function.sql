-- The role profiles in effect for a person on a UK date, and everything a CIS2 relying party's claims need, each in one
-- call. Nothing here is cached between calls; only the query plans are: PL/pgSQL keeps the plans of its statements per
-- connection, where the same query sent as text is planned again every time (a millisecond or more for the role
-- query's subqueries — the largest part of a userinfo call). Every sign-in and userinfo reads the live rows.

-- The rules of effectiveRoles (src/services/access.ts): the person active, the role profile active, started and not
-- past its end date, the position not retired. A JSON array, one object per role profile, ordered by person_roleid.
CREATE FUNCTION effective_role_rows(p_user_id text, p_day date) RETURNS json
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
    WHERE rp.user_id = p_user_id AND pe.status = 'active' AND rp.status = 'active' AND rp.start_date <= p_day
      AND (rp.end_date IS NULL OR rp.end_date >= p_day) AND p.status = 'active'
  ) r;
  RETURN result;
END
$fn$;

-- A person's CIS2 claims at one moment (src/oidc/claims.ts): the person, the grant's context (assurance level reached,
-- role profile chosen) and, for userinfo (p_userinfo), the role profiles in effect, organisations, professional
-- registrations, the names of the roles' workgroups and the national catalogue version whose names label the codes.
-- NULL for an unknown person.
CREATE FUNCTION oidc_claims_state(p_user_id text, p_day date, p_grant_id text, p_userinfo boolean) RETURNS json
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  person json;
  grant_context json;
  roles json;
  state json;
BEGIN
  SELECT row_to_json(x) INTO person FROM (
    SELECT user_id, title, given_name, middle_names, family_name, preferred_name, email, status, identity_assurance_level
    FROM people WHERE user_id = p_user_id
  ) x;
  IF person IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT json_build_object('aal', aal, 'person_roleid', person_roleid) INTO grant_context
    FROM oidc_grant_context WHERE grant_id = p_grant_id;
  IF NOT p_userinfo THEN
    RETURN json_build_object('person', person, 'grant', grant_context);
  END IF;
  roles := effective_role_rows(p_user_id, p_day);
  SELECT json_build_object(
    'person', person,
    'grant', grant_context,
    'roles', roles,
    'catalogue_version',
      (SELECT version FROM rbac_catalogue_versions ORDER BY loaded_at DESC, version DESC LIMIT 1),
    'orgs', COALESCE((SELECT json_agg(json_build_object('person_orgid', po.person_orgid, 'ods_code', po.ods_code,
        'name', o.name) ORDER BY po.person_orgid)
      FROM person_orgs po JOIN organisations o ON o.ods_code = po.ods_code WHERE po.user_id = p_user_id), '[]'::json),
    'registrations', COALESCE((SELECT json_agg(json_build_object('body', body, 'number', number))
      FROM professional_registrations WHERE user_id = p_user_id), '[]'::json),
    'workgroups', COALESCE((SELECT json_object_agg(w.code, w.name) FROM workgroups w
      WHERE w.code IN (SELECT json_array_elements_text(r -> 'workgroups') FROM json_array_elements(roles) r)),
      '{}'::json)
  ) INTO state;
  RETURN state;
END
$fn$;
