-- Registration Authority: photos, identity checks, Apply for Care ID applications, access requests and their history,
-- name changes. Written for PostgreSQL 15 (the embedded PGlite runs 18): no syntax newer than 15.

-- Photos taken at an identity check, and the images sent with a remote application. Stored only after src/ra/photo.ts
-- has checked them (JPEG or PNG by their bytes) and stripped their metadata (EXIF location, camera serials, XMP, ICC).
-- user_id is null while an image belongs to an application nobody has verified yet.
CREATE TABLE photos (
  photo_id   text PRIMARY KEY CHECK (photo_id ~ '^[0-9a-f-]{36}$'),
  user_id    text REFERENCES people (user_id),
  purpose    text NOT NULL CHECK (purpose IN ('portrait', 'selfie', 'document')),
  media_type text NOT NULL CHECK (media_type IN ('image/jpeg', 'image/png')),
  bytes      bytea NOT NULL,
  sha256     text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  size       integer NOT NULL CHECK (size BETWEEN 1 AND 5242880),
  width      integer NOT NULL CHECK (width > 0),
  height     integer NOT NULL CHECK (height > 0),
  created_at timestamptz NOT NULL
);
CREATE INDEX photos_user ON photos (user_id) WHERE user_id IS NOT NULL;

-- Apply for Care ID (DOMAIN §5.2): the applicant's details as they gave them, their selfie and photo ID images; an RA
-- verifies (the person is created or linked at identity assurance level 2) or rejects with a reason.
CREATE TABLE remote_applications (
  application_id     text PRIMARY KEY CHECK (application_id ~ '^[0-9a-f-]{36}$'),
  status             text NOT NULL CHECK (status IN ('submitted', 'verified', 'rejected')),
  -- the organisation the applicant is joining: decides which RA reviews the application
  ods_code           text NOT NULL REFERENCES organisations (ods_code),
  applicant          jsonb NOT NULL,
  photo_id           text REFERENCES photos (photo_id),
  document_photo_ids text[] NOT NULL DEFAULT '{}',
  submitted_at       timestamptz NOT NULL,
  reviewed_by        text,
  reviewed_at        timestamptz,
  reason             text,
  user_id            text REFERENCES people (user_id),
  version            integer NOT NULL DEFAULT 1,
  CHECK ((status = 'submitted') = (reviewed_at IS NULL)),
  CHECK (status <> 'rejected' OR reason IS NOT NULL),
  CHECK (status <> 'verified' OR user_id IS NOT NULL)
);
CREATE INDEX remote_applications_status ON remote_applications (status, submitted_at);
CREATE INDEX remote_applications_org ON remote_applications (ods_code, status);

-- An identity check: the documents seen (types and the last characters of their numbers only, never a scan or a full
-- number), who checked, where, when, how, and the level it gave.
CREATE TABLE identity_checks (
  check_id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id              text NOT NULL REFERENCES people (user_id),
  checked_by           text NOT NULL,
  method               text NOT NULL CHECK (method IN ('face_to_face', 'remote')),
  place                text CHECK (length(place) BETWEEN 1 AND 200),
  checked_at           timestamptz NOT NULL,
  documents            jsonb NOT NULL,
  photo_ref            text REFERENCES photos (photo_id),
  resulting_level      smallint NOT NULL CHECK (resulting_level IN (2, 3)),
  duplicate_resolution text NOT NULL CHECK (duplicate_resolution ~ '^(new_person|existing:[0-9]{12})$'),
  application_id       text REFERENCES remote_applications (application_id),
  notes                text,
  created_at           timestamptz NOT NULL,
  CHECK ((method = 'face_to_face') = (resulting_level = 3))
);
CREATE INDEX identity_checks_user ON identity_checks (user_id);

-- Access requests (DOMAIN §5.3): a sponsor or RA asks for a position for a person; an RA approves or rejects; the
-- requester may withdraw; untouched requests expire. requested_by / decided_by hold the actor's id (a person's user ID).
CREATE TABLE access_requests (
  request_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id         text NOT NULL REFERENCES people (user_id),
  position_id     bigint NOT NULL REFERENCES positions (position_id),
  ods_code        text NOT NULL REFERENCES organisations (ods_code),
  start_date      date NOT NULL,
  end_date        date,
  status          text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'withdrawn', 'expired')),
  requested_by    text NOT NULL,
  reason          text NOT NULL,
  decided_by      text,
  decided_at      timestamptz,
  decision_reason text,
  person_roleid   text REFERENCES role_profiles (person_roleid),
  expires_at      timestamptz NOT NULL,
  created_at      timestamptz NOT NULL,
  updated_at      timestamptz NOT NULL,
  version         integer NOT NULL DEFAULT 1,
  CHECK (end_date IS NULL OR end_date >= start_date),
  CHECK ((status = 'pending') = (decided_at IS NULL)),
  CHECK (status <> 'approved' OR person_roleid IS NOT NULL)
);
-- One open request per person and position: a second would only be approved twice.
CREATE UNIQUE INDEX access_requests_one_pending ON access_requests (user_id, position_id) WHERE status = 'pending';
CREATE INDEX access_requests_pending ON access_requests (expires_at) WHERE status = 'pending';
CREATE INDEX access_requests_org ON access_requests (ods_code, status, request_id);
CREATE INDEX access_requests_person ON access_requests (user_id);
CREATE INDEX access_requests_requester ON access_requests (requested_by);

CREATE TABLE access_request_history (
  history_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  request_id  bigint NOT NULL REFERENCES access_requests (request_id),
  from_status text,
  to_status   text NOT NULL,
  changed_by  text NOT NULL,
  changed_at  timestamptz NOT NULL,
  reason      text
);
CREATE INDEX access_request_history_request ON access_request_history (request_id, history_id);

-- Name changes keep the user ID (DOMAIN §2) and need evidence: its type and the last characters of its number.
CREATE TABLE name_changes (
  change_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id             text NOT NULL REFERENCES people (user_id),
  before              jsonb NOT NULL,
  after               jsonb NOT NULL,
  evidence_type       text NOT NULL,
  evidence_last_chars text CHECK (evidence_last_chars ~ '^[A-Za-z0-9]{1,4}$'),
  changed_by          text NOT NULL,
  changed_at          timestamptz NOT NULL,
  reason              text
);
CREATE INDEX name_changes_user ON name_changes (user_id);

-- Reports: cards by certificate expiry, people who have left.
CREATE INDEX people_status_left ON people (status) WHERE status = 'left';
CREATE INDEX cards_status ON cards (status) WHERE status IN ('locked', 'active');
CREATE INDEX pki_certificates_not_after ON pki_certificates (not_after) WHERE status = 'valid';
