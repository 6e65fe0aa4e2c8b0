import { organisationTypes } from '../../domain/organisations/organisation.ts';
import {
  assertImportFile,
  type ImportKind,
  importColumns,
  importCsv,
  MAX_RECORD_BYTES,
} from '../../services/import.ts';
import type { Command } from '../command.ts';
import { parseOptions } from '../command.ts';
import { withOperatorContext } from '../database.ts';
import { EXIT, UsageError } from '../io.ts';

const kinds: Record<string, { kind: ImportKind; noun: string }> = {
  people: { kind: 'people', noun: 'people' },
  orgs: { kind: 'orgs', noun: 'organisations' },
};

const optional = (kind: ImportKind) => importColumns[kind].optional.join(', ');

export const importCommand: Command = {
  summary: 'Import people or organisations from a CSV file',
  help: `Usage: opencis import people FILE.csv
       opencis import orgs FILE.csv

The file is UTF-8 CSV (a BOM and CRLF line ends are fine) whose first row names the columns, in any order:
  people  ${importColumns.people.required.join(', ')}
          optional: ${optional('people')}
  orgs    ${importColumns.orgs.required.join(', ')}
          optional: ${optional('orgs')}
Dates are YYYY-MM-DD; identity_assurance_level is 1, 2 or 3 (blank: 1). An organisation's parent may come later in
the file; its type is one of ${organisationTypes.join(', ')} (blank: other).
A blank type, or a file without the type or parent_ods_code column, leaves recorded organisations' values alone.

Each row is saved on its own, through the same checks as the RA console, so a bad row changes nothing and the good
rows are kept. Bad rows are listed on stderr as "line N: code: message" (a row is at most ${MAX_RECORD_BYTES} bytes).
Running a file again is safe: organisations are brought in line with it, and a person already recorded with the same
details is counted as unchanged (with other details, it is reported as person.duplicate with the existing user IDs).

Exit status: 0 every row was imported or unchanged, 1 some rows failed (or the file could not be read), 2 usage error.`,
  async run(args, io) {
    const { positionals } = parseOptions(args, {}, 2);
    const [what, file] = positionals;
    const target = what !== undefined && Object.hasOwn(kinds, what) ? kinds[what] : undefined;
    if (!target) throw new UsageError('expected "people FILE" or "orgs FILE"');
    if (!file) throw new UsageError(`import ${what} needs a FILE`);
    await assertImportFile(file); // before opening the database
    const summary = await withOperatorContext((ctx) => importCsv(ctx, target.kind, file));
    for (const f of summary.failed) io.err(`line ${f.line}: ${f.code}: ${f.message}`);
    io.out(
      `Imported ${target.noun} from ${file}: ${summary.created} created, ${summary.updated} updated, ` +
        `${summary.unchanged} unchanged, ${summary.failed.length} failed.`,
    );
    return summary.failed.length === 0 ? EXIT.ok : EXIT.failed;
  },
};
