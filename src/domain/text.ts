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
