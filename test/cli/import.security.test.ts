import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, beforeEach, test } from 'node:test';
import { AppError } from '../../src/domain/errors.ts';
import { importOrganisations, importPeople } from '../../src/services/import.ts';
import { cliEnvFor, runOpencis } from '../support/cli.ts';
import { testContext } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';
import { databaseDigest } from '../support/digest.ts';

/**
 * Hostile CSV for `opencis import` (issue 15, acceptance 4): NUL and control characters in every column, files that
 * are not UTF-8 (Latin-1, UTF-16 with its BOM, encoded surrogates, overlong forms), a UTF-8 BOM with mixed line ends,
 * formula and terminal-escape cells. Each bad row is reported by line with a catalogued code and writes nothing; the
 * report never echoes a cell (so a formula or an escape sequence cannot reach a spreadsheet or a terminal through it),
 * and every CSV OpenCIS sends goes through one formula-safe writer. Already covered in import.test.ts: a UTF-8 BOM, CRLF and multi-line quoted
 * fields, bad quoting, a 10 MB line, idempotent re-runs, missing columns.
 */
const dir = mkdtempSync(join(tmpdir(), 'opencis-import-sec-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
function file(content: string | Buffer): string {
  const path = join(dir, `hostile-${++fileNo}.csv`);
  writeFileSync(path, content);
  return path;
}

let t: TestDatabase;
beforeEach(async () => {
  t = await createTestDatabase();
});
afterEach(() => t.close());

const PEOPLE = 'given_name,family_name,date_of_birth,title,middle_names,preferred_name,ni_number,email,mobile';
const person = (cells: Partial<Record<string, string>>) =>
  ['Ann', 'Safe', '1980-01-01', '', '', '', '', '', ''].map((v, i) => cells[PEOPLE.split(',')[i]!] ?? v).join(',');

test(`[${backend}] a NUL or control character in any column: that row is refused by line, the others are kept`, async () => {
  const ctx = testContext(t.db);
  const columns = PEOPLE.split(',');
  const rows = columns.flatMap((column, i) => [
    person({ [column]: `x\u0000y`, family_name: column === 'family_name' ? 'N\u0000ul' : `Nul${i}` }),
    person({ [column]: `x\u001b[2Jy`, family_name: column === 'family_name' ? 'E\u001bsc' : `Esc${i}` }),
  ]);
  const good = person({ family_name: 'Kept', given_name: 'Good' });
  const summary = await importPeople(ctx, file([PEOPLE, ...rows, good, ''].join('\n')));
  assert.equal(summary.created, 1);
  assert.equal(summary.failed.length, rows.length);
  assert.deepEqual(
    summary.failed.map((f) => f.line),
    rows.map((_, i) => i + 2),
  );
  for (const f of summary.failed) assert.match(f.code, /^[a-z_]+\.[a-z_]+$/);
  const { rows: stored } = await t.db.query<{ family_name: string }>('SELECT family_name FROM people');
  assert.deepEqual(
    stored.map((r) => r.family_name),
    ['Kept'],
  );
});

test(`[${backend}] files that are not UTF-8 are refused, the header first; nothing is written`, async () => {
  const ctx = testContext(t.db);
  const digest = await databaseDigest(t.db);
  const latin1 = Buffer.concat([
    Buffer.from(`${PEOPLE}\n`),
    Buffer.from('Ren'),
    Buffer.from([0xe9]),
    Buffer.from(',Latin,1980-01-01,,,,,,\n'),
  ]);
  const surrogate = Buffer.concat([
    Buffer.from(`${PEOPLE}\nA,`),
    Buffer.from([0xed, 0xa0, 0x80]),
    Buffer.from(',1980-01-01,,,,,,\n'),
  ]);
  const overlong = Buffer.concat([
    Buffer.from(`${PEOPLE}\nA,`),
    Buffer.from([0xc0, 0xaf]),
    Buffer.from(',1980-01-01,,,,,,\n'),
  ]);
  for (const content of [latin1, surrogate, overlong]) {
    const summary = await importPeople(ctx, file(content));
    assert.deepEqual(
      summary.failed.map((f) => [f.line, f.code]),
      [[2, 'import.malformed_row']],
    );
    assert.match(summary.failed[0]!.message, /not valid UTF-8/);
  }
  // UTF-16 (Excel's "Unicode text"): refused at the header, before any row is read.
  const utf16 = Buffer.concat([
    Buffer.from([0xff, 0xfe]),
    Buffer.from(`${PEOPLE}\nAnn,Wide,1980-01-01,,,,,,\n`, 'utf16le'),
  ]);
  await assert.rejects(
    importPeople(ctx, file(utf16)),
    (e: unknown) => e instanceof AppError && e.code === 'import.bad_header',
  );
  assert.equal(await databaseDigest(t.db), digest);
});

test(`[${backend}] a BOM with LF, CRLF and lone CR line ends mixed: every row read, lines counted as an editor does`, async () => {
  const ctx = testContext(t.db);
  const content = `\uFEFF${PEOPLE}\r\n${person({ family_name: 'One' })}\r${person({ family_name: 'Two' })}\n\r\n${person({ family_name: 'Bad', date_of_birth: 'x' })}\r\n${person({ family_name: 'Three' })}`;
  const summary = await importPeople(ctx, file(content));
  assert.equal(summary.created, 3);
  assert.deepEqual(
    summary.failed.map((f) => [f.line, f.code]),
    [[5, 'person.invalid_date_of_birth']],
  );
});

test(`[${backend}] formula and escape cells are data, and the report never echoes a cell (CLI)`, async () => {
  const hostile = [
    "=cmd|' /C calc'!A0",
    '+SUM(1+1)',
    '-2+3',
    '@HYPERLINK("http://evil.example")',
    '\u001b]8;;http://evil\u0007x',
  ];
  const lines = [
    PEOPLE,
    // stored verbatim as names (names are kept as written: DOMAIN §2), never evaluated
    person({ given_name: `"${hostile[0]!.replace(/"/g, '""')}"`, family_name: 'Formula' }),
    // refused, and the report says why without repeating the cell
    ...hostile.map((h, i) => person({ family_name: `Bad${i}`, date_of_birth: `"${h.replace(/"/g, '""')}"` })),
    ...hostile.map((h, i) => person({ family_name: `Mail${i}`, email: `"${h.replace(/"/g, '""')}"` })),
  ];
  const env = cliEnvFor(t);
  try {
    const res = await runOpencis(['import', 'people', file(lines.join('\n'))], env);
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stdout, /1 created, 0 updated, 0 unchanged, 10 failed/);
    for (const h of hostile) {
      assert.ok(!res.stderr.includes(h) && !res.stdout.includes(h), `the report echoes ${JSON.stringify(h)}`);
    }
    const controls = [...(res.stderr + res.stdout)].filter((c) => {
      const code = c.charCodeAt(0);
      return (code < 0x20 && c !== '\n' && c !== '\t') || code === 0x7f;
    });
    assert.deepEqual(controls, [], 'no control character reaches the terminal');
  } finally {
    if (env.DATA_DIR) rmSync(env.DATA_DIR, { recursive: true, force: true });
  }
  // Organisations likewise: a parent ODS code is named in the report only once it is a well-formed ODS code.
  const summary = await importOrganisations(
    testContext(t.db),
    file(
      ['ods_code,name,type,parent_ods_code', 'RJ1,Trust,trust,"=HYPERLINK(""x"")"', 'RJ2,Trust,trust,\u001b[2J'].join(
        '\n',
      ),
    ),
  );
  assert.equal(summary.failed.length, 2);
  for (const f of summary.failed)
    assert.ok(!f.message.includes('HYPERLINK') && !f.message.includes('\u001b'), f.message);
});

test('every CSV OpenCIS sends goes through its one formula-safe writer (src/http/csv.ts)', async () => {
  // Exports (reports, the audit view) are CSV: a cell starting =, +, -, @, tab or CR is written with a leading
  // apostrophe (test/http/csv.test.ts), so it cannot run in a spreadsheet. No other file may send CSV itself.
  const files = (d: string): string[] =>
    readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? files(join(d, n)) : [join(d, n)]));
  for (const path of files('src').filter((p) => p.endsWith('.ts') && !p.endsWith(join('http', 'csv.ts')))) {
    assert.doesNotMatch(readFileSync(path, 'utf8'), /text\/csv|csv-stringify/, path);
  }
  const { csvCell } = await import('../../src/http/csv.ts');
  for (const cell of ['=HYPERLINK("http://evil")', '+1', '-1+1', '@SUM(A1)', '\tx', '\rx']) {
    assert.ok(!/^[=+\-@\t\r]/.test(csvCell(cell).replace(/^"/, '')), cell);
  }
});
