/**
 * The parts of the identity forms shared by registration, a later identity check and Apply for Care ID review: the
 * person's details, the duplicate choice (DOMAIN §2) and how a photo arrives (base64 in JSON, sent by ra-photo.js:
 * multipart is not installed, and a form without the photo still works).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../domain/errors.ts';
import type { NewPerson } from '../../domain/identity/person.ts';
import { isNationalId } from '../../domain/identity/user-id.ts';
import { optionalText, text as textSchema } from '../../domain/text.ts';
import type { ServiceContext } from '../../services/context.ts';
import { validateNewPerson } from '../../services/people.ts';
import {
  dateField,
  type FieldMap,
  type FormErrors,
  type FormValues,
  formErrorsFrom,
  formValues,
  optional,
  text,
} from './forms.ts';
import { dayName } from './labels.ts';

export const personFields: FieldMap = (path) =>
  (
    ({
      title: { id: 'title', label: 'Title' },
      givenName: { id: 'givenName', label: 'Given name' },
      middleNames: { id: 'middleNames', label: 'Middle names' },
      familyName: { id: 'familyName', label: 'Family name' },
      preferredName: { id: 'preferredName', label: 'Preferred name' },
      dateOfBirth: { id: 'dob', label: 'Date of birth', target: 'dob-day' },
      niNumber: { id: 'niNumber', label: 'National Insurance number' },
      email: { id: 'email', label: 'Email address' },
      mobile: { id: 'mobile', label: 'Mobile number' },
    }) as Record<string, { id: string; label: string; target?: string }>
  )[path];

/** The person's details from the form, validated as a new person record would be. */
export function readPerson(ctx: ServiceContext, values: FormValues, errors: FormErrors): NewPerson | null {
  const dob = dateField(values, 'dob');
  if (dob.kind === 'empty') errors.add('dob', 'Enter the date of birth', 'dob-day');
  if (dob.kind === 'invalid') errors.add('dob', 'Date of birth must be a real date, like 15 3 1984', 'dob-day');
  const input = {
    title: optional(values, 'title'),
    givenName: text(values, 'givenName'),
    middleNames: optional(values, 'middleNames'),
    familyName: text(values, 'familyName'),
    preferredName: optional(values, 'preferredName'),
    dateOfBirth: dob.kind === 'date' ? dob.value : '',
    niNumber: optional(values, 'niNumber'),
    email: optional(values, 'email'),
    mobile: optional(values, 'mobile'),
  };
  try {
    return validateNewPerson(ctx, input);
  } catch (err) {
    const found = formErrorsFrom(err, personFields, { id: 'givenName' });
    for (const [id, message] of Object.entries(found.byField)) {
      if (id === 'dob' && errors.byField.dob) continue;
      errors.add(id, message, id === 'dob' ? 'dob-day' : id);
    }
    return null;
  }
}

/** A form carried from one step to the next as a hidden field (the RA's own input; re-validated at every step). */
export function encodeDraft(values: FormValues, keys: (k: string) => boolean): string {
  return JSON.stringify(Object.fromEntries(Object.entries(values).filter(([k]) => keys(k))));
}

export function decodeDraft(draft: string): FormValues {
  try {
    return formValues(JSON.parse(draft));
  } catch {
    throw new AppError('request.invalid', { problems: [{ field: 'draft', message: 'the form could not be read' }] });
  }
}

export interface Candidate {
  userId: string;
  name: string;
  dateOfBirth: string;
  status: string;
  sameNi: boolean;
}

/** Duplicate candidates as the RA sees them: enough to tell people apart, nothing more. */
export async function candidatesView(ctx: ServiceContext, ids: readonly string[], niNumber: string | null) {
  const out: Candidate[] = [];
  for (const id of ids.filter(isNationalId).slice(0, 20)) {
    const p = await ctx.repos.people.findPersonByUserId(id);
    if (!p) continue;
    out.push({
      userId: p.userId,
      name: [p.givenName, p.middleNames, p.familyName].filter(Boolean).join(' '),
      dateOfBirth: dayName(p.dateOfBirth),
      status: p.status,
      sameNi: niNumber !== null && p.niNumber === niNumber,
    });
  }
  return out;
}

export interface Resolution {
  duplicateResolution?: string;
  confirmedDifferentFrom: string[];
}

/** The RA's answer on the duplicates page: one of the candidates, or "someone else" (never for the same NI number). */
export function readResolution(values: FormValues, candidates: readonly Candidate[]): Resolution | null {
  const choice = text(values, 'resolution');
  if (choice === 'new_person' && !candidates.some((c) => c.sameNi)) {
    return { duplicateResolution: 'new_person', confirmedDifferentFrom: candidates.map((c) => c.userId) };
  }
  if (choice.startsWith('existing:') && candidates.some((c) => c.userId === choice.slice(9))) {
    return { duplicateResolution: choice, confirmedDifferentFrom: [] };
  }
  return null;
}

/** The photo a script added to the form (base64 in JSON), if any. */
export function photoData(req: FastifyRequest): string | null {
  const body = req.body as { photo?: { data?: unknown } } | undefined;
  const data = body?.photo?.data;
  return typeof data === 'string' && data.length > 0 ? data : null;
}

export function isJson(req: FastifyRequest): boolean {
  return (req.headers['content-type'] ?? '').includes('application/json');
}

/** For the scripts: a refusal as `{ error: { code, message, problems: [{ href, message }] } }`. */
export function jsonProblems(
  reply: FastifyReply,
  status: number,
  code: string,
  message: string,
  problems: { href: string; message: string }[],
) {
  return reply.status(status).send({ error: { code, message, problems } });
}

export const checkFields: FieldMap = (path) =>
  path === 'place'
    ? { id: 'place', label: 'Where the check took place:' }
    : path === 'notes'
      ? { id: 'notes', label: 'Notes:' }
      : undefined;

/** Place and notes, checked as the service will check them. */
export function readCheckDetails(
  values: FormValues,
  errors: FormErrors,
): { place: string | null; notes: string | null } {
  const place = textSchema(200).safeParse(text(values, 'place'));
  if (!place.success) errors.add('place', 'Enter where the face-to-face check took place (at most 200 characters)');
  const notes = optionalText(1000).safeParse(optional(values, 'notes'));
  if (!notes.success) errors.add('notes', 'Notes must be at most 1000 characters');
  return { place: place.success ? place.data : null, notes: notes.success ? notes.data : null };
}
