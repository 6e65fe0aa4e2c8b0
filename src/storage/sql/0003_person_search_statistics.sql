-- RA person search by family-name prefix + date of birth (storage/people.ts searchPeople) must use people_dob_name
-- (date of birth, then family key): one short index range. With the default statistics (100 most common values) the
-- planner cannot see how many people share a less common surname: it estimated LIKE 'SANTO%' at 1 row against 2 764
-- real ones, costed people_name (family key first, date of birth checked on the heap row) the same as people_dob_name,
-- and took it — reading every SANTOS in the country to find one: 8–100 ms instead of 0.05 ms at 1.3 M people
-- (bench/README.md). Surnames are few and very unevenly common, so a long most-common-values list describes them well:
-- with 1 000 the common names that make a scan long are all in it, and the names outside it are too rare to hurt.
-- Takes effect at the next ANALYZE (autovacuum runs one as the table grows).
ALTER TABLE people
  ALTER COLUMN family_key SET STATISTICS 1000,
  ALTER COLUMN given_key SET STATISTICS 1000;
