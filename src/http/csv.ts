import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';

/**
 * CSV exports (RFC 4180) that are safe to open in a spreadsheet: a cell that starts with `=`, `+`, `-`, `@`, a tab or a
 * carriage return would be read as a formula (OWASP "CSV injection"), so it is written with a leading apostrophe.
 * Exports stream row by row and stop at a limit; when they stop early, their last line says so.
 */
export function csvCell(value: unknown): string {
  let s = value === null || value === undefined ? '' : String(value);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function csvLine(cells: readonly unknown[]): string {
  return `${cells.map(csvCell).join(',')}\r\n`;
}

export interface CsvExport<T> {
  filename: string;
  header: readonly string[];
  /** Rows in order, read lazily (in batches) so a huge result is never held in memory at once. */
  rows: AsyncIterable<T>;
  cells: (row: T) => readonly unknown[];
  /** At most this many rows; one more means the export was cut, and its last line says so. */
  limit: number;
  /** Called once the export has ended, with the rows written and whether it was cut. */
  done?: (written: number, cut: boolean) => Promise<void>;
}

/** Sends a CSV export as a stream (UTF-8 with a byte-order mark, so spreadsheets read accents right). */
export function sendCsv<T>(reply: FastifyReply, e: CsvExport<T>): FastifyReply {
  async function* lines(): AsyncGenerator<string> {
    yield `\uFEFF${csvLine(e.header)}`;
    let written = 0;
    let cut = false;
    for await (const row of e.rows) {
      if (written >= e.limit) {
        cut = true;
        break;
      }
      written++;
      yield csvLine(e.cells(row));
    }
    if (cut) {
      yield csvLine([
        `Export cut at ${e.limit.toLocaleString('en-GB')} rows: narrow the filters (organisation and dates) to export the rest.`,
      ]);
    }
    await e.done?.(written, cut);
  }
  return reply
    .type('text/csv; charset=utf-8')
    .header('content-disposition', `attachment; filename="${e.filename.replace(/[^A-Za-z0-9._-]/g, '_')}"`)
    .header('cache-control', 'no-store')
    .send(Readable.from(lines()));
}
