-- The token and userinfo endpoints read a token (or code), then its grant, then its SSO session, then the person's
-- claims: four round trips, each costing more in sending and receiving than in PostgreSQL's own work. Read together,
-- in one statement of the same request (src/oidc/adapter.ts, "read together"), they are what those four would have
-- read a moment later. Nothing is kept beyond the request.

-- A session is found by its uid and model: an index on both, so that the plan does not depend on the table's
-- statistics (a prepared statement planned while the table was small scanned every session through the primary key).
CREATE INDEX oidc_payloads_model_uid ON oidc_payloads (model, uid) WHERE uid IS NOT NULL;
DROP INDEX oidc_payloads_uid;

-- One artefact (as the adapter's find reads it), its grant and its session (by the uid the artefact is bound to), and,
-- when p_claims is 'id_token' or 'userinfo', the claims state of its account for that use (oidc_claims_state).
-- Times as milliseconds since the epoch. NULL when the artefact is not there.
CREATE FUNCTION oidc_read_together(p_model text, p_id text, p_day date, p_claims text) RETURNS json
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  a record;
  g json;
  s json;
  c json;
BEGIN
  SELECT payload, consumed_at, expires_at, grant_id, account_id INTO a
    FROM oidc_payloads WHERE model = p_model AND id = p_id;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF a.grant_id IS NOT NULL THEN
    SELECT json_build_object('payload', payload, 'consumed_at', (extract(epoch FROM consumed_at) * 1000)::bigint,
        'expires_at', (extract(epoch FROM expires_at) * 1000)::bigint) INTO g
      FROM oidc_payloads WHERE model = 'Grant' AND id = a.grant_id;
  END IF;
  IF a.payload ? 'sessionUid' THEN
    SELECT json_build_object('payload', payload, 'consumed_at', (extract(epoch FROM consumed_at) * 1000)::bigint,
        'expires_at', (extract(epoch FROM expires_at) * 1000)::bigint) INTO s
      FROM oidc_payloads WHERE model = 'Session' AND uid = a.payload->>'sessionUid';
  END IF;
  IF p_claims IN ('id_token', 'userinfo') AND a.account_id IS NOT NULL THEN
    c := oidc_claims_state(a.account_id, p_day, a.grant_id, p_claims = 'userinfo');
  END IF;
  RETURN json_build_object(
    'artefact', json_build_object('payload', a.payload,
      'consumed_at', (extract(epoch FROM a.consumed_at) * 1000)::bigint,
      'expires_at', (extract(epoch FROM a.expires_at) * 1000)::bigint),
    'grant', g, 'session', s, 'claims', c,
    'account_id', a.account_id, 'grant_id', a.grant_id, 'session_uid', a.payload->>'sessionUid');
END
$fn$;
