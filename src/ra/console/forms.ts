/**
 * Reading the console's HTML forms (application/x-www-form-urlencoded, or the same fields as JSON when a script adds a
 * photo) and turning refusals into the NHS.UK error summary: each problem links to the field it is about.
 */
import { isCalendarDate } from '../../domain/dates.ts';
import { AppError } from '../../domain/errors.ts';

export type FormValues = Record<string, string | string[]>;

const MAX_FIELD = 4_000;

/** The body as form values: strings (trimmed of nothing, cut at a sane length) and lists of strings. */
export function formValues(body: unknown): FormValues {
  // No prototype: a field named like an Object method ("constructor", "toString") is just a field.
  const out: FormValues = Object.create(null);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return out;
  for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
    if (key.length > 100 || key === '__proto__') continue;
    if (typeof value === 'string') out[key] = value.slice(0, MAX_FIELD);
    else if (Array.isArray(value)) {
      out[key] = value
        .filter((v): v is string => typeof v === 'string')
        .slice(0, 500)
        .map((v) => v.slice(0, MAX_FIELD));
    }
  }
  return out;
}

/** One text field, trimmed ('' when absent; the first value when repeated). */
export function text(values: FormValues, name: string): string {
  const v = values[name];
  return (Array.isArray(v) ? (v[0] ?? '') : (v ?? '')).trim();
}

/** A field that may repeat (checkboxes), without blanks. */
export function list(values: FormValues, name: string): string[] {
  const v = values[name];
  return (Array.isArray(v) ? v : v === undefined ? [] : [v]).map((s) => s.trim()).filter(Boolean);
}

/** Text or null when blank. */
export function optional(values: FormValues, name: string): string | null {
  return text(values, name) || null;
}

export type DateField = { kind: 'empty' } | { kind: 'invalid' } | { kind: 'date'; value: string };

/** An NHS.UK date input: `<id>-day`, `<id>-month`, `<id>-year` → YYYY-MM-DD. */
export function dateField(values: FormValues, id: string): DateField {
  const day = text(values, `${id}-day`);
  const month = text(values, `${id}-month`);
  const year = text(values, `${id}-year`);
  if (!day && !month && !year) return { kind: 'empty' };
  if (!/^[0-9]{1,2}$/.test(day) || !/^[0-9]{1,2}$/.test(month) || !/^[0-9]{4}$/.test(year)) return { kind: 'invalid' };
  const value = `${year}-${month.padStart(2, '0')}-${day.padStart(2, '0')}`;
  return isCalendarDate(value) ? { kind: 'date', value } : { kind: 'invalid' };
}

/** The values of a date input for a YYYY-MM-DD date (to fill a form in). */
export function dateValues(id: string, date: string | null | undefined): Record<string, string> {
  const m = date ? /^(\d{4})-(\d{2})-(\d{2})/.exec(date) : null;
  if (!m) return {};
  return { [`${id}-day`]: String(Number(m[3])), [`${id}-month`]: String(Number(m[2])), [`${id}-year`]: m[1]! };
}

export interface FormError {
  /** The element the summary links to, e.g. `#dob-day`. */
  href: string;
  message: string;
}

/** The problems of one form: a list for the error summary, and a message per field for the inline errors. */
export class FormErrors {
  readonly list: FormError[] = [];
  readonly byField: Record<string, string> = {};

  /** `field` is the id of the form group; `target` the element to focus (a date's day box), if not the field. */
  add(field: string, message: string, target?: string): void {
    this.byField[field] ??= message;
    const href = `#${target ?? field}`;
    if (!this.list.some((e) => e.href === href && e.message === message)) this.list.push({ href, message });
  }

  get any(): boolean {
    return this.list.length > 0;
  }

  /** What templates take: `errors` for the summary, `fieldErrors` for inline messages. */
  view(): { errors: FormError[]; fieldErrors: Record<string, string> } {
    return { errors: this.list, fieldErrors: this.byField };
  }
}

/** How a form names its fields: service field path → [form field id, label, focus target]. */
export type FieldMap = (path: string) => { id: string; label: string; target?: string } | undefined;

interface Problem {
  field: string;
  message: string;
}

function problemsOf(err: AppError): Problem[] {
  const d = err.details as { problems?: unknown; field?: unknown; message?: unknown } | undefined;
  if (d && Array.isArray(d.problems)) {
    return d.problems.filter(
      (p): p is Problem =>
        typeof p === 'object' &&
        p !== null &&
        typeof (p as Problem).field === 'string' &&
        typeof (p as Problem).message === 'string',
    );
  }
  if (d && typeof d.field === 'string' && typeof d.message === 'string')
    return [{ field: d.field, message: d.message }];
  return [];
}

/**
 * A refusal that the person filling in the form can put right (invalid input, a conflict such as "already decided")
 * becomes form errors; anything else — not signed in, not allowed, not found, a fault — is thrown on, so the policy's
 * 403 stays a 403.
 */
export function formErrorsFrom(err: unknown, map: FieldMap, fallback: { id: string; target?: string }): FormErrors {
  if (!(err instanceof AppError) || ![400, 409, 413].includes(err.status)) throw err;
  const errors = new FormErrors();
  for (const p of problemsOf(err)) {
    const f = map(p.field);
    if (f) errors.add(f.id, `${f.label} ${p.message}`, f.target);
    else errors.add(fallback.id, `${err.message} (${p.field}: ${p.message})`, fallback.target);
  }
  if (!errors.any) errors.add(fallback.id, err.message, fallback.target);
  return errors;
}

/** The user IDs an `identity_check.duplicate_unresolved` or `person.duplicate` refusal names, if it is one. */
export function duplicateCandidates(err: unknown): string[] | null {
  if (!(err instanceof AppError)) return null;
  if (err.code !== 'identity_check.duplicate_unresolved' && err.code !== 'person.duplicate') return null;
  const c = (err.details as { candidates?: unknown } | undefined)?.candidates;
  return Array.isArray(c) ? c.filter((x): x is string => typeof x === 'string') : [];
}
