/**
 * Prints the table docs/errors.md keeps of every error code: its HTTP status, its message and who raises it (the
 * server or the card agent), from the one catalogue in src/domain/errors.ts. test/unit/error-catalogue.test.ts fails
 * when the document and the catalogue disagree. `node --import tsx scripts/error-table.ts` prints the table to paste;
 * with `--write` it replaces the table in docs/errors.md itself.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { type ErrorCode, errorCatalogue, raisedBy } from '../src/domain/errors.ts';

export const ERRORS_DOC = 'docs/errors.md';
export const TABLE_START = '<!-- errors:start -->';
export const TABLE_END = '<!-- errors:end -->';

/** A message as a table cell: a `|` would end the cell. */
const cell = (text: string) => text.replaceAll('|', '\\|');

export function errorTable(): string {
  const rows = (Object.keys(errorCatalogue) as ErrorCode[]).map((code) => {
    const { status, message } = errorCatalogue[code];
    return `| \`${code}\` | ${status} | ${cell(message)} | ${raisedBy(code)} |`;
  });
  return ['| code | HTTP status | message | raised by |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

/** The table as docs/errors.md holds it now (between the markers), or undefined when the markers are missing. */
export function documentedTable(doc: string): string | undefined {
  const start = doc.indexOf(TABLE_START);
  const end = doc.indexOf(TABLE_END);
  if (start < 0 || end < start) return undefined;
  return doc.slice(start + TABLE_START.length, end).trim();
}

function writeTable(): void {
  const doc = readFileSync(ERRORS_DOC, 'utf8');
  const start = doc.indexOf(TABLE_START);
  const end = doc.indexOf(TABLE_END);
  if (start < 0 || end < start) throw new Error(`${ERRORS_DOC}: the ${TABLE_START} … ${TABLE_END} markers are missing`);
  writeFileSync(ERRORS_DOC, `${doc.slice(0, start + TABLE_START.length)}\n${errorTable()}\n${doc.slice(end)}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.argv.includes('--write')) writeTable();
  else console.log(errorTable());
}
