-- CIS1 ticket validation, the light path (src/cis1/validation.ts). cis1_ticket_state (0009) builds everything a role
-- assertion says — json_agg of the position's job roles, activities, baseline, areas of work and workgroups — on every
-- validation. Applications validate the same ticket again and again, and a signed assertion may be handed out again
-- for 30 s (ASSERTION_REUSE_MS) while nothing it says has changed. So a validation that holds such an assertion reads
-- only the live state the checks need, exactly as cis1_ticket_state reads it, plus a stamp of everything the assertion
-- says; the full state is read only when the stamp differs (or nothing is held).

-- A version of a position's content (its job roles, activities, areas of work and workgroups, and the names of those
-- workgroups), raised by the triggers below on any change to them — whoever writes (services, synthetic data, SQL by
-- hand). Monotonic: equal versions mean the same content. Catalogue names are covered by the catalogue key instead.
ALTER TABLE positions ADD COLUMN content_version bigint NOT NULL DEFAULT 0;

CREATE FUNCTION positions_content_inserted() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  UPDATE positions SET content_version = content_version + 1
    WHERE position_id IN (SELECT DISTINCT position_id FROM new_rows);
  RETURN NULL;
END
$fn$;

CREATE FUNCTION positions_content_deleted() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  UPDATE positions SET content_version = content_version + 1
    WHERE position_id IN (SELECT DISTINCT position_id FROM old_rows);
  RETURN NULL;
END
$fn$;

CREATE FUNCTION positions_content_updated() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  UPDATE positions SET content_version = content_version + 1
    WHERE position_id IN (SELECT position_id FROM old_rows UNION SELECT position_id FROM new_rows);
  RETURN NULL;
END
$fn$;

-- Statement-level, so a bulk insert (synthetic data) raises each position once. A trigger with transition tables may
-- name one event only: three per table.
CREATE TRIGGER position_job_roles_inserted AFTER INSERT ON position_job_roles
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION positions_content_inserted();
CREATE TRIGGER position_job_roles_deleted AFTER DELETE ON position_job_roles
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION positions_content_deleted();
CREATE TRIGGER position_job_roles_updated AFTER UPDATE ON position_job_roles
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION positions_content_updated();

CREATE TRIGGER position_activities_inserted AFTER INSERT ON position_activities
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION positions_content_inserted();
CREATE TRIGGER position_activities_deleted AFTER DELETE ON position_activities
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION positions_content_deleted();
CREATE TRIGGER position_activities_updated AFTER UPDATE ON position_activities
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION positions_content_updated();

CREATE TRIGGER position_areas_of_work_inserted AFTER INSERT ON position_areas_of_work
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION positions_content_inserted();
CREATE TRIGGER position_areas_of_work_deleted AFTER DELETE ON position_areas_of_work
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION positions_content_deleted();
CREATE TRIGGER position_areas_of_work_updated AFTER UPDATE ON position_areas_of_work
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION positions_content_updated();

CREATE TRIGGER position_workgroups_inserted AFTER INSERT ON position_workgroups
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION positions_content_inserted();
CREATE TRIGGER position_workgroups_deleted AFTER DELETE ON position_workgroups
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION positions_content_deleted();
CREATE TRIGGER position_workgroups_updated AFTER UPDATE ON position_workgroups
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION positions_content_updated();

-- A workgroup's name is in the assertions of every position that has it.
CREATE FUNCTION positions_workgroup_renamed() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  UPDATE positions SET content_version = content_version + 1
    WHERE position_id IN (SELECT pg.position_id FROM position_workgroups pg
      JOIN old_rows o ON o.code = pg.workgroup_code JOIN new_rows n ON n.code = o.code
      WHERE n.name IS DISTINCT FROM o.name);
  RETURN NULL;
END
$fn$;
CREATE TRIGGER workgroups_renamed AFTER UPDATE ON workgroups
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION positions_workgroup_renamed();

-- The live state of a ticket, read exactly as cis1_ticket_state (0009) reads it — the same session, card,
-- certificate and person columns, and person_orgid only when the selected role profile is in effect on p_day under the
-- same conditions — without the role data, plus `stamp`: everything the assertion says that comes from the database,
-- as one text. The values themselves where they are short (names, organisation, IDs, session fields), versions where
-- they are not: positions.content_version (above) for the position's content, the catalogue key (every catalogue load
-- adds a version row, in the transaction that changes the names) for catalogue names and baselines, the signing key
-- id. Equal stamps mean an equal assertion (apart from its ID and times). NULL for an unknown ticket.
CREATE FUNCTION cis1_ticket_liveness(p_ticket_hash text, p_day date) RETURNS json
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
      WHERE rp.person_roleid = s.person_roleid AND rp.user_id = s.user_id AND rp.status = 'active'
        AND rp.start_date <= p_day AND (rp.end_date IS NULL OR rp.end_date >= p_day) AND pos.status = 'active'
    ) r ON true
    WHERE s.ticket_hash = p_ticket_hash
  ) x;
  RETURN state;
END
$fn$;
