import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import { AppError } from '../../src/domain/errors.ts';
import type { ServiceContext } from '../../src/services/context.ts';
import { type ImportSummary, importOrganisations, importPeople } from '../../src/services/import.ts';
import { openPglite } from '../../src/storage/pglite.ts';
import { cliEnvFor, runOpencis } from '../support/cli.ts';
import { testContext } from '../support/context.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';

const dir = mkdtempSync(join(tmpdir(), 'opencis-import-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
/** Writes a fixture file; lines are joined with `eol` and end with one. */
function csv(lines: string[], options: { eol?: string; bom?: boolean } = {}): string {
  const eol = options.eol ?? '\n';
  const file = join(dir, `fixture-${++fileNo}.csv`);
  writeFileSync(file, `${options.bom ? '\uFEFF' : ''}${lines.join(eol)}${eol}`);
  return file;
}

/** The report reduced to what a reader checks first: which lines failed, and with what code. */
const failures = (s: ImportSummary) => s.failed.map((f) => [f.line, f.code]);

let t: TestDatabase;
let ctx: ServiceContext;
beforeEach(async () => {
  t = await createTestDatabase();
  ctx = testContext(t.db);
});
afterEach(() => t.close());

async function count(table: 'people' | 'organisations' | 'audit_events'): Promise<number> {
  const { rows } = await t.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`);
  return Number(rows[0]!.n);
}

async function orgRows(): Promise<Record<string, { name: string; type: string; parent: string | null }>> {
  const { rows } = await t.db.query<{ ods_code: string; name: string; type: string; parent_ods_code: string | null }>(
    'SELECT ods_code, name, type, parent_ods_code FROM organisations ORDER BY ods_code',
  );
  return Object.fromEntries(rows.map((r) => [r.ods_code, { name: r.name, type: r.type, parent: r.parent_ods_code }]));
}

async function personByFamilyName(familyName: string) {
  const { rows } = await t.db.query<{
    user_id: string;
    given_name: string;
    family_name: string;
    preferred_name: string | null;
    ni_number: string | null;
  }>('SELECT user_id, given_name, family_name, preferred_name, ni_number FROM people WHERE family_name = $1', [
    familyName,
  ]);
  return rows;
}

const orgHierarchy = [
  'ods_code,name,type,parent_ods_code', // 1
  "RJ122,St Thomas' Hospital,site,RJ1", // 2 grandchild before its parent and grandparent
  'RJ1,"Guy\'s and St Thomas\' NHS Foundation Trust",trust,QKK', // 3 child before its parent
  'QKK,NHS South East London ICB,icb,', // 4
  'A81001,"The Surgery, High Street ""Old Town""",gp_practice,QKK', // 5 comma and escaped quotes
  ' rj2 ,Lower-case Code Trust,trust,qkk', // 6 codes are trimmed and upper-cased
  'RJ3,No Type Trust,,', // 7 type defaults to other
];

describe('opencis import orgs', () => {
  test('imports a hierarchy whatever the order of parents and children', async () => {
    const res = await importOrganisations(ctx, csv(orgHierarchy));
    assert.deepEqual(res, { created: 6, updated: 0, unchanged: 0, failed: [] });
    assert.deepEqual(await orgRows(), {
      A81001: { name: 'The Surgery, High Street "Old Town"', type: 'gp_practice', parent: 'QKK' },
      QKK: { name: 'NHS South East London ICB', type: 'icb', parent: null },
      RJ1: { name: "Guy's and St Thomas' NHS Foundation Trust", type: 'trust', parent: 'QKK' },
      RJ122: { name: "St Thomas' Hospital", type: 'site', parent: 'RJ1' },
      RJ2: { name: 'Lower-case Code Trust', type: 'trust', parent: 'QKK' },
      RJ3: { name: 'No Type Trust', type: 'other', parent: null },
    });
  });

  test('reports invalid ODS codes, unknown types and missing parents by line, and keeps the good rows', async () => {
    const res = await importOrganisations(
      ctx,
      csv([
        'ods_code,name,type,parent_ods_code', // 1
        'R!1,Punctuation Trust,trust,', // 2
        'TOOLONG1,Seven Characters Trust,trust,', // 3
        'XY,Too Short Trust,trust,', // 4
        'RX9,Orphan Site,site,ZZZ99', // 5 parent neither stored nor in the file
        'RJ4,Odd Type,hospital,', // 6
        'RJ5,,trust,', // 7 empty name
        'RJ6,Good Trust,trust,', // 8
        'RJ7,Bad Parent Code,site,R-1', // 9
      ]),
    );
    assert.deepEqual(failures(res), [
      [2, 'organisation.invalid_ods_code'],
      [3, 'organisation.invalid_ods_code'],
      [4, 'organisation.invalid_ods_code'],
      [5, 'organisation.parent_not_found'],
      [6, 'request.invalid'],
      [7, 'request.invalid'],
      [9, 'organisation.invalid_ods_code'],
    ]);
    assert.equal(res.created, 1);
    assert.match(res.failed[0]!.message, /^ods_code must be an ODS code/);
    assert.match(res.failed[3]!.message, /ZZZ99/);
    assert.match(res.failed[4]!.message, /^type /);
    assert.match(res.failed[5]!.message, /^name must not be empty/);
    assert.deepEqual(Object.keys(await orgRows()), ['RJ6']);
  });

  test('running the same file again changes nothing and audits nothing; an edited row is updated', async () => {
    const file = csv(orgHierarchy);
    await importOrganisations(ctx, file);
    const events = await count('audit_events');
    const again = await importOrganisations(ctx, file);
    assert.deepEqual(again, { created: 0, updated: 0, unchanged: 6, failed: [] });
    assert.equal(await count('audit_events'), events);

    const edited = orgHierarchy.map((l) => l.replace('NHS South East London ICB', 'NHS South East London'));
    const third = await importOrganisations(ctx, csv(edited));
    assert.deepEqual(third, { created: 0, updated: 1, unchanged: 5, failed: [] });
    assert.equal(await count('audit_events'), events + 1);

    // A file with only codes and names leaves the recorded types and parents alone.
    const namesOnly = ['ods_code,name', ...edited.slice(1).map((l) => l.replace(/,[a-z_]*,[A-Z0-9]*$/i, ''))];
    const fourth = await importOrganisations(ctx, csv(namesOnly));
    assert.deepEqual(fourth, { created: 0, updated: 0, unchanged: 6, failed: [] });
    assert.deepEqual((await orgRows()).RJ122, { name: "St Thomas' Hospital", type: 'site', parent: 'RJ1' });
    assert.equal(await count('audit_events'), events + 1);
  });

  test('a file without the expected columns is refused before any row is written', async () => {
    const events = await count('audit_events');
    for (const header of ['code,name', 'ods_code,name,type,parent_ods_code,region', 'ods_code,name,name']) {
      await assert.rejects(
        importOrganisations(ctx, csv([header, 'RJ1,Some Trust,trust,'])),
        (err: unknown) => err instanceof AppError && err.code === 'import.bad_header',
      );
    }
    assert.equal(await count('organisations'), 0);
    assert.equal(await count('audit_events'), events);
  });
});

const peopleHeader = 'given_name,family_name,date_of_birth,ni_number,email,preferred_name';

describe('opencis import people', () => {
  test('stores names in any script and SQL- or HTML-looking text verbatim', async () => {
    const res = await importPeople(
      ctx,
      csv([
        peopleHeader,
        "Siobhán,O'Brien,1980-02-29,AB123456C,Siobhan.OBrien@Example.NHS.uk,", // 2 leap day; email lower-cased
        'Zoë,Ellis,1985-06-01,,,', // 3
        'Thị Minh,Nguyễn,1990-03-15,,,', // 4
        '伟,王,1975-12-31,,,', // 5
        "Robert'); DROP TABLE people;--,Tables,2000-01-01,,,", // 6
        '<script>alert(1)</script>,Jones,1999-09-09,,,"<b>Bob</b> ""Bobby"" Jones, RN"', // 7
      ]),
    );
    assert.deepEqual(res, { created: 6, updated: 0, unchanged: 0, failed: [] });
    assert.equal((await personByFamilyName("O'Brien"))[0]?.given_name, 'Siobhán');
    assert.equal((await personByFamilyName('Ellis'))[0]?.given_name, 'Zoë');
    assert.equal((await personByFamilyName('Nguyễn'))[0]?.given_name, 'Thị Minh');
    assert.equal((await personByFamilyName('王'))[0]?.given_name, '伟');
    assert.equal((await personByFamilyName('Tables'))[0]?.given_name, "Robert'); DROP TABLE people;--");
    const [jones] = await personByFamilyName('Jones');
    assert.equal(jones?.given_name, '<script>alert(1)</script>');
    assert.equal(jones?.preferred_name, '<b>Bob</b> "Bobby" Jones, RN');
    assert.equal(await count('people'), 6);
  });

  test('reports each bad row with its line and reason, and keeps the good rows', async () => {
    const res = await importPeople(
      ctx,
      csv([
        peopleHeader, // 1
        'Amy,Stone,1980-01-01,AB123456C,,', // 2 good
        'Ben,Stone,1980-01-02,AB123456,,', // 3 NI number without its suffix letter
        'Cal,Stone,1980-01-03,DA123456A,,', // 4 NI prefix never allocated
        'Dee,Stone,1981-02-31,,,', // 5 31 February
        'Eve,Stone,2027-01-01,,,', // 6 after today (the test clock says 2026-11-26)
        ',Stone,1980-01-04,,,', // 7 empty given name
        `Fay,${'S'.repeat(101)},1980-01-05,,,`, // 8 family name over 100 characters
        'Gus,Stone,1980-01-06,,not-an-email,', // 9
        'Hal,Stone,1980-01-07,,,,extra', // 10 one field too many
        'Ian,Stone', // 11 too few
        'Jo,Stone,01/02/1980,,,', // 12 not YYYY-MM-DD
        'Kay,Stone,1980-01-08,,,', // 13 good
      ]),
    );
    assert.deepEqual(failures(res), [
      [3, 'person.invalid_ni_number'],
      [4, 'person.invalid_ni_number'],
      [5, 'person.invalid_date_of_birth'],
      [6, 'person.invalid_date_of_birth'],
      [7, 'request.invalid'],
      [8, 'request.invalid'],
      [9, 'request.invalid'],
      [10, 'import.malformed_row'],
      [11, 'import.malformed_row'],
      [12, 'person.invalid_date_of_birth'],
    ]);
    const message = (line: number) => res.failed.find((f) => f.line === line)?.message;
    assert.match(message(6)!, /^date_of_birth must not be in the future/);
    assert.match(message(7)!, /^given_name must not be empty/);
    assert.match(message(8)!, /^family_name must be at most 100 characters/);
    assert.match(message(10)!, /7 fields; the header has 6/);
    assert.equal(res.created, 2);
    assert.equal(await count('people'), 2);
  });

  test('a file without the expected columns is refused before any row is written', async () => {
    const events = await count('audit_events');
    for (const header of ['first_name,surname,dob', 'given_name,family_name', `${peopleHeader},nhs_number`]) {
      await assert.rejects(
        importPeople(ctx, csv([header, 'Amy,Stone,1980-01-01,,,,'])),
        (err: unknown) =>
          err instanceof AppError && err.code === 'import.bad_header' && /Expected given_name/.test(err.message),
      );
    }
    await assert.rejects(importPeople(ctx, csv([])), (err: unknown) => (err as AppError).code === 'import.bad_header');
    assert.equal(await count('people'), 0);
    assert.equal(await count('audit_events'), events);
  });

  test('a missing file is reported as such', async () => {
    await assert.rejects(importPeople(ctx, join(dir, 'no-such-file.csv')), (err: unknown) => {
      assert.ok(err instanceof AppError);
      assert.equal(err.code, 'import.file_not_found');
      assert.match(err.message, /no-such-file\.csv: there is no such file/);
      return true;
    });
  });

  test('reads a UTF-8 BOM, CRLF line ends and quoted fields spanning lines, counting lines as an editor does', async () => {
    const file = csv(
      [
        'given_name,family_name,date_of_birth,preferred_name', // 1 (after the BOM)
        'Ann,Lee-Smith,1970-01-01,"Ann ""Annie"" Lee, RN"', // 2
        'Bob,"Two ""quoted""\r\nlines",1971-01-01,', // 3–4: a line break is not allowed in a name
        'Cat,Jones,1972-01-01,', // 5
        '', // 6 blank lines are skipped
        'Dan,Brown,1973-13-01,', // 7
      ],
      { eol: '\r\n', bom: true },
    );
    const res = await importPeople(ctx, file);
    assert.deepEqual(failures(res), [
      [3, 'request.invalid'],
      [7, 'person.invalid_date_of_birth'],
    ]);
    assert.match(res.failed[0]!.message, /^family_name must not contain control characters/);
    assert.equal(res.created, 2);
    assert.equal((await personByFamilyName('Lee-Smith'))[0]?.preferred_name, 'Ann "Annie" Lee, RN');
    assert.equal((await personByFamilyName('Jones'))[0]?.given_name, 'Cat');
  });

  test('bad quoting spoils only its own row', async () => {
    const res = await importPeople(
      ctx,
      csv([
        'given_name,family_name,date_of_birth', // 1
        'Amy,Stone,1980-01-01', // 2
        'Ja"ne,Doe,1980-01-02', // 3 quote inside an unquoted field
        'John,"Sm"ith,1980-01-03', // 4 text after a closing quote
        'Kim,Park,1980-01-04', // 5
        'Lee,"Unclosed,1980-01-05', // 6 never closed: takes the rest of the file with it
        'Max,Gone,1980-01-06', // 7
      ]),
    );
    assert.deepEqual(failures(res), [
      [3, 'import.malformed_row'],
      [4, 'import.malformed_row'],
      [6, 'import.malformed_row'],
    ]);
    assert.match(res.failed[0]!.message, /quote inside a field.*column given_name/);
    assert.match(res.failed[1]!.message, /after the closing quote.*column family_name/);
    assert.match(res.failed[2]!.message, /never closed/);
    assert.equal(res.created, 2);
    assert.deepEqual((await personByFamilyName('Park')).length, 1);
  });

  test('a 10 MB line is reported as one bad row and the rows after it are imported', async () => {
    const huge = 'x'.repeat(10 * 1024 * 1024);
    const res = await importPeople(
      ctx,
      csv([
        'given_name,family_name,date_of_birth', // 1
        'Amy,Stone,1980-01-01', // 2
        `Big,${huge},1980-01-02`, // 3
        'Ben,Stone,1980-01-03', // 4
        `Big,"${huge}`, // 5 an unclosed quote running to the end of the file
        'Cat,Stone,1980-01-04', // 6
      ]),
    );
    assert.deepEqual(failures(res), [
      [3, 'import.row_too_large'],
      [5, 'import.row_too_large'],
    ]);
    assert.match(res.failed[1]!.message, /closing quote missing/);
    assert.equal(res.created, 2);
  });

  test('running the same file again counts every row unchanged and writes nothing', async () => {
    const file = csv([
      `${peopleHeader},identity_assurance_level`,
      "Siobhán,O'Brien,1980-02-29,AB 12 34 56 C,siobhan@example.nhs.uk,Shiv,3",
      '伟,王,1975-12-31,,,,',
      'Zoë,Ellis,1985-06-01,,ZOE@EXAMPLE.NHS.UK,,2',
    ]);
    assert.deepEqual(await importPeople(ctx, file), { created: 3, updated: 0, unchanged: 0, failed: [] });
    const people = await count('people');
    const events = await count('audit_events');
    assert.deepEqual(await importPeople(ctx, file), { created: 0, updated: 0, unchanged: 3, failed: [] });
    assert.equal(await count('people'), people);
    assert.equal(await count('audit_events'), events);
  });

  test('a person already recorded with other details is a duplicate, with the existing user IDs', async () => {
    const res = await importPeople(
      ctx,
      csv([
        peopleHeader, // 1
        'Mary,Jones,1975-05-05,AB123456C,,', // 2
        'Mary,Jones,1975-05-05,AB123456C,,', // 3 the same row again: unchanged
        'MARY,jones,1975-05-05,,,', // 4 same name and date of birth, no NI number
        'Marie,Other,1990-01-01,AB123456C,,', // 5 same NI number, someone else's name
        'Mary Ann,Jones,1975-05-05,,,', // 6 the same first given name
      ]),
    );
    const [mary] = await personByFamilyName('Jones');
    assert.ok(mary);
    assert.deepEqual(failures(res), [
      [4, 'person.duplicate'],
      [5, 'person.duplicate'],
      [6, 'person.duplicate'],
    ]);
    for (const f of res.failed) {
      assert.deepEqual(f.candidates, [mary.user_id]);
      assert.match(f.message, new RegExp(mary.user_id));
    }
    assert.deepEqual({ created: res.created, unchanged: res.unchanged }, { created: 1, unchanged: 1 });
    assert.equal(await count('people'), 1);
  });
});

describe('the opencis import command', () => {
  test('exits 0 when every row is good, 1 when a row fails, 2 on a usage error', async () => {
    const env = cliEnvFor(t);
    const run = (...args: string[]) => runOpencis(['import', ...args], env);
    try {
      const good = await run('orgs', csv(orgHierarchy));
      assert.equal(good.code, 0, good.stderr);
      assert.match(good.stdout, /6 created, 0 updated, 0 unchanged, 0 failed/);

      const bad = await run('orgs', csv(['ods_code,name', 'RJ9,New Trust', 'R!1,Bad Code']));
      assert.equal(bad.code, 1);
      assert.match(bad.stdout, /1 created, 0 updated, 0 unchanged, 1 failed/);
      assert.match(bad.stderr, /^line 3: organisation\.invalid_ods_code: ods_code must be an ODS code/m);

      const missing = await run('orgs', join(dir, 'missing.csv'));
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /missing\.csv: there is no such file/);

      for (const args of [['widgets', 'x.csv'], ['orgs'], []]) {
        const usage = await run(...args);
        assert.equal(usage.code, 2, `import ${args.join(' ')}`);
        assert.match(usage.stderr, /Usage: opencis import/);
      }

      if (env.DATA_DIR) {
        const db = await openPglite({ dataDir: env.DATA_DIR });
        try {
          const { rows } = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM organisations');
          assert.equal(rows[0]?.n, '7');
        } finally {
          await db.close();
        }
      } else {
        assert.deepEqual(Object.keys(await orgRows()), ['A81001', 'QKK', 'RJ1', 'RJ122', 'RJ2', 'RJ3', 'RJ9']);
      }
    } finally {
      if (env.DATA_DIR) rmSync(env.DATA_DIR, { recursive: true, force: true });
    }
  });
});
