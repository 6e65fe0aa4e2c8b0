-- Identity core: organisations, people, the national RBAC catalogue, positions, role profiles and the audit chain.
-- Written for PostgreSQL 15 (the embedded PGlite runs 18): no syntax newer than 15.

-- 11-digit sequences; the 12th digit is a Luhn check digit (domain/identity/user-id.ts). Each kind of ID has its own
-- range so that an ID read out on the phone can only be one kind of thing.
CREATE SEQUENCE user_id_seq START 55507310310 MINVALUE 10000000000 MAXVALUE 99999999999;
CREATE SEQUENCE person_roleid_seq START 66607310310 MINVALUE 10000000000 MAXVALUE 99999999999;
CREATE SEQUENCE person_orgid_seq START 77707310310 MINVALUE 10000000000 MAXVALUE 99999999999;
CREATE SEQUENCE workgroup_code_seq START 88807310310 MINVALUE 10000000000 MAXVALUE 99999999999;

CREATE TABLE organisations (
  ods_code        text PRIMARY KEY CHECK (ods_code ~ '^[A-Z0-9]{3,6}$'),
  name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  type            text NOT NULL,
  parent_ods_code text REFERENCES organisations (ods_code),
  status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
  created_at      timestamptz NOT NULL,
  updated_at      timestamptz NOT NULL,
  CHECK (parent_ods_code IS NULL OR parent_ods_code <> ods_code)
);
CREATE INDEX organisations_parent ON organisations (parent_ods_code);
CREATE INDEX organisations_name ON organisations (lower(name) text_pattern_ops);

CREATE TABLE people (
  user_id                  text PRIMARY KEY CHECK (user_id ~ '^[0-9]{12}$'),
  title                    text,
  given_name               text NOT NULL,
  middle_names             text,
  family_name              text NOT NULL,
  preferred_name           text,
  date_of_birth            date NOT NULL,
  ni_number                text,
  email                    text,
  mobile                   text,
  status                   text NOT NULL CHECK (status IN ('active', 'suspended', 'left', 'deceased')),
  identity_assurance_level smallint NOT NULL CHECK (identity_assurance_level BETWEEN 1 AND 3),
  photo_ref                text,
  -- normalised names (see domain/identity/names.ts) for duplicate detection and search
  -- COLLATE "C": byte order, so one btree index serves both prefix LIKE and ORDER BY.
  family_key               text COLLATE "C" NOT NULL,
  given_key                text COLLATE "C" NOT NULL,
  created_at               timestamptz NOT NULL,
  updated_at               timestamptz NOT NULL,
  version                  integer NOT NULL DEFAULT 1
);
-- One national record per NI number: the constraint also settles two concurrent registrations of the same person.
CREATE UNIQUE INDEX people_ni_number ON people (ni_number) WHERE ni_number IS NOT NULL;
CREATE INDEX people_email ON people (email, user_id) WHERE email IS NOT NULL;
CREATE INDEX people_dob_name ON people (date_of_birth, family_key, given_key, user_id);
CREATE INDEX people_name ON people (family_key, given_key, user_id);

CREATE TABLE professional_registrations (
  user_id text NOT NULL REFERENCES people (user_id),
  body    text NOT NULL CHECK (body IN ('GMC', 'NMC', 'GPHC', 'GDC', 'HCPC', 'GDP', 'GMP', 'RCN', 'CONSULTANT')),
  number  text NOT NULL CHECK (length(number) BETWEEN 1 AND 20),
  PRIMARY KEY (user_id, body)
);

-- The national RBAC catalogue. Codes are never deleted (positions refer to them): a code missing from a newer
-- catalogue version is marked retired.
CREATE TABLE rbac_catalogue_versions (
  version      text PRIMARY KEY,
  published_on date NOT NULL,
  checksum     text NOT NULL,
  loaded_at    timestamptz NOT NULL
);
CREATE TABLE rbac_job_roles (
  code              text PRIMARY KEY CHECK (code ~ '^R[0-9]{4}$'),
  name              text NOT NULL,
  staff_group_code  text NOT NULL,
  staff_group_name  text NOT NULL,
  sub_group_code    text NOT NULL,
  sub_group_name    text NOT NULL,
  retired           boolean NOT NULL DEFAULT false,
  catalogue_version text NOT NULL REFERENCES rbac_catalogue_versions (version)
);
CREATE TABLE rbac_activities (
  code              text PRIMARY KEY CHECK (code ~ '^B[0-9]{4}$'),
  name              text NOT NULL,
  includes          text[] NOT NULL DEFAULT '{}',
  retired           boolean NOT NULL DEFAULT false,
  catalogue_version text NOT NULL REFERENCES rbac_catalogue_versions (version)
);
CREATE TABLE rbac_areas_of_work (
  code              text PRIMARY KEY CHECK (code ~ '^T[0-9]{4}$'),
  name              text NOT NULL,
  area_code         text NOT NULL,
  area_name         text NOT NULL,
  sub_area_code     text NOT NULL,
  sub_area_name     text NOT NULL,
  retired           boolean NOT NULL DEFAULT false,
  catalogue_version text NOT NULL REFERENCES rbac_catalogue_versions (version)
);
CREATE TABLE rbac_baseline (
  job_role_code text NOT NULL REFERENCES rbac_job_roles (code),
  activity_code text NOT NULL REFERENCES rbac_activities (code),
  PRIMARY KEY (job_role_code, activity_code)
);

-- Workgroups are local: an organisation's own groups with 12-digit codes.
CREATE TABLE workgroups (
  code        text PRIMARY KEY CHECK (code ~ '^[0-9]{12}$'),
  ods_code    text NOT NULL REFERENCES organisations (ods_code),
  name        text NOT NULL,
  description text,
  created_at  timestamptz NOT NULL
);

CREATE TABLE positions (
  position_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ods_code    text NOT NULL REFERENCES organisations (ods_code),
  name        text NOT NULL,
  assignable  boolean NOT NULL DEFAULT false,
  status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL
);
CREATE INDEX positions_org ON positions (ods_code);
CREATE TABLE position_job_roles (
  position_id   bigint NOT NULL REFERENCES positions (position_id),
  job_role_code text NOT NULL REFERENCES rbac_job_roles (code),
  PRIMARY KEY (position_id, job_role_code)
);
CREATE TABLE position_activities (
  position_id   bigint NOT NULL REFERENCES positions (position_id),
  activity_code text NOT NULL REFERENCES rbac_activities (code),
  PRIMARY KEY (position_id, activity_code)
);
CREATE TABLE position_areas_of_work (
  position_id bigint NOT NULL REFERENCES positions (position_id),
  aow_code    text NOT NULL REFERENCES rbac_areas_of_work (code),
  PRIMARY KEY (position_id, aow_code)
);
CREATE TABLE position_workgroups (
  position_id    bigint NOT NULL REFERENCES positions (position_id),
  workgroup_code text NOT NULL REFERENCES workgroups (code),
  PRIMARY KEY (position_id, workgroup_code)
);

-- A person's link to an organisation (CIS2 person_orgid).
CREATE TABLE person_orgs (
  person_orgid text PRIMARY KEY CHECK (person_orgid ~ '^[0-9]{12}$'),
  user_id      text NOT NULL REFERENCES people (user_id),
  ods_code     text NOT NULL REFERENCES organisations (ods_code),
  created_at   timestamptz NOT NULL,
  UNIQUE (user_id, ods_code)
);

CREATE TABLE role_profiles (
  person_roleid text PRIMARY KEY CHECK (person_roleid ~ '^[0-9]{12}$'),
  user_id       text NOT NULL REFERENCES people (user_id),
  person_orgid  text NOT NULL REFERENCES person_orgs (person_orgid),
  position_id   bigint NOT NULL REFERENCES positions (position_id),
  start_date    date NOT NULL,
  end_date      date,
  status        text NOT NULL CHECK (status IN ('active', 'ended')),
  created_at    timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL,
  CHECK (end_date IS NULL OR end_date >= start_date)
);
CREATE INDEX role_profiles_person ON role_profiles (user_id);
CREATE INDEX role_profiles_position ON role_profiles (position_id);
CREATE INDEX role_profiles_end ON role_profiles (end_date) WHERE end_date IS NOT NULL AND status = 'active';

-- The audit trail: append-only, hash-chained (domain/audit/chain.ts). audit_head holds the chain's tip; appending
-- locks it, so concurrent writers extend the chain one at a time and it never forks.
CREATE TABLE audit_events (
  seq         bigint PRIMARY KEY,
  at          timestamptz NOT NULL,
  actor       text NOT NULL,
  action      text NOT NULL,
  target_type text NOT NULL,
  target_id   text,
  before      jsonb,
  after       jsonb,
  request_id  text,
  reason      text,
  prev_hash   text NOT NULL,
  hash        text NOT NULL
);
CREATE INDEX audit_events_target ON audit_events (target_type, target_id);
CREATE TABLE audit_head (
  id   integer PRIMARY KEY CHECK (id = 1),
  seq  bigint NOT NULL,
  hash text NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- The application never updates or deletes audit rows; the trigger makes an accidental one fail loudly. (Someone with
-- owner rights can still disable it — which is what the hash chain is there to catch.)
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
