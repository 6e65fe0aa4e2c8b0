/**
 * The records of a CSV file for `opencis import` (services/import.ts), streamed: a small byte-level framer finds where
 * each record starts and ends (counting physical lines as an editor shows them, and capping a record at
 * MAX_RECORD_BYTES while still scanning past it), and csv-parse splits each record into fields.
 */
import { createReadStream } from 'node:fs';
import { CsvError } from 'csv-parse';
import { parse } from 'csv-parse/sync';
import type { ErrorCode } from '../domain/errors.ts';

/** Row problems found before a service sees the row. */
export type RowProblemCode = Extract<ErrorCode, 'import.malformed_row' | 'import.row_too_large'>;

/** A legitimate row is a few hundred bytes; anything this long is a broken file (or a missing closing quote). */
export const MAX_RECORD_BYTES = 64 * 1024;

export type FramedRecord =
  | { line: number; text: string }
  | { line: number; problem: { code: RowProblemCode; message: string } };

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const QUOTE = 0x22;
const COMMA = 0x2c;
const CR = 0x0d;
const LF = 0x0a;

/**
 * The records of a CSV file (RFC 4180, LF, CRLF or CR line ends, optional UTF-8 BOM) with the line each starts on.
 * Read chunk by chunk: memory stays under MAX_RECORD_BYTES plus one chunk whatever the file holds.
 */
export async function* csvRecords(file: string, maxBytes = MAX_RECORD_BYTES): AsyncGenerator<FramedRecord> {
  const framer = new RecordFramer(maxBytes);
  for await (const chunk of createReadStream(file)) yield* framer.push(chunk as Buffer);
  yield* framer.end();
}

/**
 * Splits bytes into records. Quoting follows csv-parse: a quote opens a quoted field only at the start of a field,
 * `""` inside one is a quote, and any other quote closes it — so a stray quote spoils one record, not the rest of the
 * file. Lines are counted as an editor shows them (LF, CRLF or CR; inside quoted fields too). Blank lines are skipped.
 */
class RecordFramer {
  private line = 1; // line of the next byte
  private prevCR = false;
  private skipLF = false; // the record ended on CR: an LF straight after it belongs to that line end
  private head: Buffer | null = Buffer.alloc(0); // the first bytes, until there are enough to see a BOM
  // the current record
  private start = 0; // its first line; 0 while it has no byte
  private parts: Buffer[] = [];
  private size = 0;
  private tooLong = false;
  private quotedBreak = false; // a line break inside a quoted field: a sign of a missing closing quote when too long
  private quoted = false;
  private quoteSeen = false; // a quote inside a quoted field: `""` or the closing quote, as the next byte tells
  private fieldStart = true;

  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): FramedRecord[] {
    let buf = chunk;
    if (this.head) {
      buf = Buffer.concat([this.head, chunk]);
      if (buf.length < BOM.length) {
        this.head = buf;
        return [];
      }
      this.head = null;
      if (buf.subarray(0, BOM.length).equals(BOM)) buf = buf.subarray(BOM.length);
    }
    const out: FramedRecord[] = [];
    let from = 0; // where the current record's bytes begin in this chunk
    for (let i = 0; i < buf.length; i++) {
      const b = buf[i]!;
      const at = this.line;
      if (b === CR || (b === LF && !this.prevCR)) this.line++;
      this.prevCR = b === CR;
      if (this.skipLF) {
        this.skipLF = false;
        if (b === LF) {
          from = i + 1;
          continue;
        }
      }
      if (this.quoteSeen) {
        this.quoteSeen = false;
        if (b === QUOTE) continue; // `""`
        this.quoted = false;
      }
      if (this.quoted) {
        if (b === QUOTE) this.quoteSeen = true;
        else if (b === CR || b === LF) this.quotedBreak = true;
        continue;
      }
      if (b === CR || b === LF) {
        this.keep(buf, from, i);
        const record = this.finish();
        if (record) out.push(record);
        from = i + 1;
        this.skipLF = b === CR;
        continue;
      }
      if (this.start === 0) this.start = at;
      if (b === QUOTE && this.fieldStart) this.quoted = true;
      this.fieldStart = b === COMMA;
    }
    this.keep(buf, from, buf.length);
    return out;
  }

  end(): FramedRecord[] {
    const out: FramedRecord[] = [];
    if (this.head) {
      const short = this.head; // a file of one or two bytes: too short to hold a BOM
      this.head = null;
      out.push(...this.push(short));
    }
    const record = this.finish();
    if (record) out.push(record);
    return out;
  }

  private keep(buf: Buffer, from: number, to: number): void {
    this.size += to - from;
    if (this.size > this.maxBytes) {
      this.tooLong = true;
      this.parts = [];
    } else if (to > from) {
      this.parts.push(buf.subarray(from, to));
    }
  }

  private finish(): FramedRecord | undefined {
    const { start: line, parts, tooLong, quotedBreak } = this;
    this.start = 0;
    this.parts = [];
    this.size = 0;
    this.tooLong = false;
    this.quotedBreak = false;
    this.quoted = false;
    this.quoteSeen = false;
    this.fieldStart = true;
    if (line === 0) return undefined; // a blank line
    if (tooLong) {
      const hint = quotedBreak ? ' (a quoted field runs over several lines: is a closing quote missing?)' : '';
      const message = `the row is longer than ${this.maxBytes} bytes${hint}`;
      return { line, problem: { code: 'import.row_too_large', message } };
    }
    try {
      const text = utf8.decode(Buffer.concat(parts));
      return text.trim() === '' ? undefined : { line, text };
    } catch {
      return {
        line,
        problem: { code: 'import.malformed_row', message: 'the row is not valid UTF-8 (save the file as UTF-8)' },
      };
    }
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

const csvProblems: Partial<Record<string, string>> = {
  INVALID_OPENING_QUOTE:
    'a quote inside a field that does not start with one (quote the whole field and double the quote)',
  CSV_INVALID_CLOSING_QUOTE: 'characters after the closing quote of a field (double a quote that belongs to the text)',
  CSV_QUOTE_NOT_CLOSED: 'a quoted field is never closed',
};

/** The fields of one record, or why it is not valid CSV. */
export function splitFields(text: string, header?: readonly string[]): string[] | string {
  let rows: string[][];
  try {
    rows = parse(text, { bom: false, relax_column_count: false });
  } catch (err) {
    const column = err instanceof CsvError && typeof err.column === 'number' ? header?.[err.column] : undefined;
    const reason = (err instanceof CsvError && csvProblems[err.code]) || 'the row is not valid CSV';
    return column ? `${reason}, in column ${column}` : reason;
  }
  const fields = rows[0] ?? [];
  if (rows.length !== 1) return 'the row is not valid CSV';
  if (header && fields.length !== header.length) {
    return `the row has ${fields.length} field${fields.length === 1 ? '' : 's'}; the header has ${header.length}`;
  }
  return fields;
}
