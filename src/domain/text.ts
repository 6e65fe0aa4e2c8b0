import { z } from 'zod';

/**
 * Free text from outside. Stored and returned verbatim (SQL- or HTML-looking strings included: SQL is always
 * parameterised and pages escape on output), but control characters are refused: NUL cannot be stored by PostgreSQL,
 * and the others only serve to spoof logs and screens.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to find control characters
const CONTROL = /[\u0000-\u001f\u007f]/;

export function text(max: number, min = 1) {
  return z
    .string()
    .transform((s) => s.trim())
    .pipe(
      z
        .string()
        .min(min, { message: min === 1 ? 'must not be empty' : `must be at least ${min} characters` })
        .max(max, { message: `must be at most ${max} characters` })
        .refine((s) => !CONTROL.test(s), { message: 'must not contain control characters' }),
    );
}

/** Optional text: absent, null or blank all mean "not recorded". */
export function optionalText(max: number) {
  return z
    .string()
    .nullish()
    .transform((s) => (s == null || s.trim() === '' ? null : s.trim()))
    .pipe(
      z
        .string()
        .max(max, { message: `must be at most ${max} characters` })
        .refine((s) => !CONTROL.test(s), { message: 'must not contain control characters' })
        .nullable(),
    );
}

/**
 * Text no database column can hold as given: NUL (PostgreSQL refuses 0x00 in text and `\u0000` in jsonb, SQLSTATE
 * 22021 / 22P05) and lone UTF-16 surrogates (not Unicode at all: silently stored as U+FFFD in text, refused in jsonb).
 * Such a value is never a real name, code or token, so it is refused at the door (400), wherever it is.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is what is looked for
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function isStorableText(value: string): boolean {
  return !UNSTORABLE.test(value);
}

const PERCENT_RUN = /(?:%[0-9A-Fa-f]{2})+/g;
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * True when percent-encoded bytes in `encoded` (a query string, a form body) are not UTF-8 — `%FF`, an encoded
 * surrogate `%ED%A0%80`, an overlong `%C0%80`, a cut-off sequence — or encode NUL. Browsers never send these; the
 * form and query parsers would otherwise keep such bytes as literal text or replace them with U+FFFD.
 */
export function hasInvalidPercentEncoding(encoded: string): boolean {
  for (const run of encoded.match(PERCENT_RUN) ?? []) {
    const bytes = Buffer.from(run.replaceAll('%', ''), 'hex');
    if (bytes.includes(0)) return true;
    try {
      STRICT_UTF8.decode(bytes);
    } catch {
      return true;
    }
  }
  return false;
}
