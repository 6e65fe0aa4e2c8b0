/**
 * `opencis import people|orgs FILE.csv`: bulk loads through the same services as the API, one transaction per row, so a
 * bad row is reported with its line number and never half-written while the good rows are kept.
 *
 * The file is streamed, never read whole. A small byte-level framer finds where each record starts and ends (counting
 * physical lines as an editor shows them, and capping a record at MAX_RECORD_BYTES while still scanning past it), and
 * csv-parse splits each record into fields. csv-parse 7's own streaming recovery is not used: with
 * `skip_records_with_error`, an over-long record makes it drop the rest of the current chunk — good rows vanish
 * unreported — and its line counter counts a CRLF inside a quoted field as two lines.
 */
import { stat } from 'node:fs/promises';
import { AppError, type ErrorCode } from '../domain/errors.ts';
import type { NewPerson, Person } from '../domain/identity/person.ts';
import { normaliseOdsCode } from '../domain/organisations/organisation.ts';
import type { ServiceContext } from './context.ts';
import { csvRecords, type FramedRecord, type RowProblemCode, splitFields } from './import-csv.ts';
import { findOrganisation, saveOrganisation, type UpsertOutcome } from './organisations.ts';
import { findDuplicates, registerPerson, validateNewPerson } from './people.ts';
import type { FieldProblem } from './validation.ts';

export { MAX_RECORD_BYTES, type RowProblemCode } from './import-csv.ts';

export type ImportKind = 'people' | 'orgs';

export interface ImportFailure {
  /** Line of the file (1 = the header) on which the bad row starts. */
  line: number;
  code: ErrorCode | RowProblemCode;
  message: string;
  /** For `person.duplicate`: the user IDs of the existing records the row matches. */
  candidates?: string[];
}

export interface ImportSummary {
  created: number;
  updated: number;
  unchanged: number;
  failed: ImportFailure[];
}

export const importColumns = {
  orgs: { required: ['ods_code', 'name'], optional: ['type', 'parent_ods_code'] },
  people: {
    required: ['given_name', 'family_name', 'date_of_birth'],
    optional: ['title', 'middle_names', 'preferred_name', 'ni_number', 'email', 'mobile', 'identity_assurance_level'],
  },
} as const satisfies Record<ImportKind, { required: readonly string[]; optional: readonly string[] }>;

type Cells = Record<string, string | undefined>;

/** Throws `import.file_not_found` unless `file` is a readable regular file. */
export async function assertImportFile(file: string): Promise<void> {
  let reason: string;
  try {
    const s = await stat(file);
    if (s.isFile()) return;
    reason = 'it is not a regular file';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    reason = code === 'ENOENT' ? 'there is no such file' : code === 'EACCES' ? 'permission denied' : String(code);
  }
  throw new AppError('import.file_not_found', undefined, `Cannot read ${file}: ${reason}.`);
}

export function importOrganisations(ctx: ServiceContext, file: string): Promise<ImportSummary> {
  return importCsv(ctx, 'orgs', file);
}

export function importPeople(ctx: ServiceContext, file: string): Promise<ImportSummary> {
  return importCsv(ctx, 'people', file);
}

export async function importCsv(ctx: ServiceContext, kind: ImportKind, file: string): Promise<ImportSummary> {
  await assertImportFile(file);
  const summary: ImportSummary = { created: 0, updated: 0, unchanged: 0, failed: [] };
  const fail = (line: number, code: ImportFailure['code'], message: string, candidates?: string[]) =>
    summary.failed.push(candidates ? { line, code, message, candidates } : { line, code, message });
  // Organisations may come before their parent: they wait for a later pass (DOMAIN §3 hierarchy).
  let waiting: { line: number; cells: Cells; err: AppError }[] = [];
  const records = csvRecords(file);
  const first = await records.next();
  if (first.done) throw new AppError('import.bad_header', { kind }, 'The file is empty: it needs a header row.');
  let header: string[];
  try {
    header = readHeader(kind, first.value);
  } catch (err) {
    await records.return(undefined); // closes the file
    throw err;
  }
  const save = kind === 'orgs' ? saveOrganisationRow(ctx, header) : savePersonRow(ctx, header);

  /** Saves one row; returns the error when the row must wait for its parent organisation. */
  const attempt = async (line: number, cells: Cells): Promise<AppError | undefined> => {
    try {
      summary[await save(cells)]++;
    } catch (err) {
      if (!(err instanceof AppError)) {
        throw new Error(`import stopped at line ${line} (the rows before it are saved): ${(err as Error).message}`, {
          cause: err,
        });
      }
      if (err.code === 'organisation.parent_not_found') return err;
      fail(line, err.code, describe(err), candidatesOf(err));
    }
    return undefined;
  };

  for await (const record of records) {
    if ('problem' in record) {
      fail(record.line, record.problem.code, record.problem.message);
      continue;
    }
    const fields = splitFields(record.text, header);
    if (typeof fields === 'string') {
      fail(record.line, 'import.malformed_row', fields);
      continue;
    }
    const cells = Object.fromEntries(header.map((c, i) => [c, fields[i]]));
    const err = await attempt(record.line, cells);
    if (err) waiting.push({ line: record.line, cells, err });
  }
  // Each pass places at least one more level of the hierarchy; stop when a pass places nothing.
  while (waiting.length > 0) {
    const pending = waiting;
    waiting = [];
    for (const w of pending) {
      const err = await attempt(w.line, w.cells);
      if (err) waiting.push({ ...w, err });
    }
    if (waiting.length === pending.length) {
      for (const w of waiting) fail(w.line, w.err.code, describe(w.err));
      break;
    }
  }
  summary.failed.sort((a, b) => a.line - b.line);
  return summary;
}

function readHeader(kind: ImportKind, record: FramedRecord): string[] {
  const { required, optional } = importColumns[kind];
  const expected = `Expected ${required.join(', ')} and optionally ${optional.join(', ')}.`;
  const fields = 'problem' in record ? record.problem.message : splitFields(record.text);
  if (typeof fields === 'string') {
    throw new AppError('import.bad_header', { line: record.line }, `The header row cannot be read: ${fields}.`);
  }
  const names = fields.map((f) => f.trim().toLowerCase());
  const known = new Set<string>([...required, ...optional]);
  const unknown = names.filter((n) => !known.has(n));
  const missing = required.filter((r) => !names.includes(r));
  const repeated = names.filter((n, i) => names.indexOf(n) !== i);
  if (unknown.length || missing.length || repeated.length) {
    const parts = [
      missing.length ? `missing ${missing.join(', ')}` : '',
      unknown.length ? `unknown ${unknown.map((u) => JSON.stringify(u)).join(', ')}` : '',
      repeated.length ? `repeated ${repeated.join(', ')}` : '',
    ].filter(Boolean);
    throw new AppError(
      'import.bad_header',
      { missing, unknown, repeated },
      `The file does not have the expected columns: ${parts.join('; ')}. ${expected}`,
    );
  }
  return names;
}

// ---------------------------------------------------------------------------------------------------------------------
// Rows → services

/**
 * A blank type means "other" for a new organisation but leaves a recorded one's type alone; a file with no
 * parent_ods_code column likewise leaves recorded parents alone (a blank parent cell means "no parent").
 */
function saveOrganisationRow(ctx: ServiceContext, header: readonly string[]): (cells: Cells) => Promise<UpsertOutcome> {
  const hasParent = header.includes('parent_ods_code');
  return async (cells) => {
    let type = cells.type?.trim().toLowerCase() || undefined;
    let parentOdsCode = cells.parent_ods_code;
    if ((!type || !hasParent) && cells.ods_code) {
      const recorded = await findOrganisation(ctx.repos, normaliseOdsCode(cells.ods_code));
      type ??= recorded?.type;
      if (!hasParent) parentOdsCode = recorded?.parentOdsCode ?? undefined;
    }
    const input = { odsCode: cells.ods_code, name: cells.name, type, parentOdsCode };
    return (await saveOrganisation(ctx, input, { upsert: true })).outcome;
  };
}

/**
 * People have no upsert: a row whose person is already recorded (DOMAIN §2 duplicate rule) with the same details is
 * 'unchanged', so re-running a file is harmless; with different details it is a duplicate the RA must look at.
 */
function savePersonRow(ctx: ServiceContext, header: readonly string[]): (cells: Cells) => Promise<UpsertOutcome> {
  const given = personFields.filter(([column]) => header.includes(column));
  return async (cells) => {
    const input = personInput(cells);
    // A blank assurance level means "the default" for a new record, not "lower the recorded one to 1".
    const compared = given.filter(([column]) => cells[column]?.trim() || column !== 'identity_assurance_level');
    const wanted = validateNewPerson(ctx, input);
    try {
      await registerPerson(ctx, input);
      return 'created';
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== 'person.duplicate') throw err;
      const candidates = await findDuplicates(ctx, input);
      if (candidates.length === 0) throw err;
      if (candidates.some((c) => compared.every(([, f]) => c[f] === wanted[f]))) return 'unchanged';
      throw new AppError('person.duplicate', { candidates: candidates.map((c) => c.userId) });
    }
  };
}

const personFields = [
  ['title', 'title'],
  ['given_name', 'givenName'],
  ['middle_names', 'middleNames'],
  ['family_name', 'familyName'],
  ['preferred_name', 'preferredName'],
  ['date_of_birth', 'dateOfBirth'],
  ['ni_number', 'niNumber'],
  ['email', 'email'],
  ['mobile', 'mobile'],
  ['identity_assurance_level', 'identityAssuranceLevel'],
] as const satisfies readonly (readonly [string, keyof NewPerson & keyof Person])[];

const columnOfField: Record<string, string> = {
  ...Object.fromEntries(personFields.map(([column, field]) => [field, column])),
  odsCode: 'ods_code',
  parentOdsCode: 'parent_ods_code',
};

function personInput(cells: Cells): Record<string, unknown> {
  const input: Record<string, unknown> = Object.fromEntries(
    personFields.map(([column, field]) => [field, cells[column]]),
  );
  const level = cells.identity_assurance_level?.trim();
  if (!level) input.identityAssuranceLevel = undefined;
  else if (/^[123]$/.test(level)) input.identityAssuranceLevel = Number(level);
  else {
    throw new AppError('request.invalid', {
      problems: [{ field: 'identityAssuranceLevel', message: 'must be 1, 2 or 3' }],
    });
  }
  return input;
}

/** One line for the report, naming the CSV columns rather than the API's field names. */
function describe(err: AppError): string {
  const d = (err.details ?? {}) as { problems?: FieldProblem[]; candidates?: string[]; parentOdsCode?: string };
  if (d.problems?.length) return d.problems.map((p) => `${columnOfField[p.field] ?? p.field} ${p.message}`).join('; ');
  if (d.candidates?.length) return `${err.message} Existing record(s) with other details: ${d.candidates.join(', ')}.`;
  if (d.parentOdsCode)
    return `${err.message} No organisation ${d.parentOdsCode} is recorded or created by a good row of the file.`;
  return err.message;
}

function candidatesOf(err: AppError): string[] | undefined {
  const ids = (err.details as { candidates?: unknown } | undefined)?.candidates;
  return Array.isArray(ids) ? ids.map(String) : undefined;
}
