/**
 * Register a person with a face-to-face identity check (DOMAIN §5.1), in steps that work without JavaScript:
 *   1. details and documents (POST /ra/people/new) — checked against the identity check standard;
 *   2. if the duplicate check finds candidates: use an existing record, or confirm this is someone else;
 *   3. the photo taken at the meeting: ra-photo.js sends the form and the photo as JSON, and the person is registered
 *      with the check in one transaction (level 3). Without a photo (or without JavaScript) the record is created
 *      unverified (level 1); the check is recorded later from the person's page, at /ra/people/:userId/identity-check.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { AppError } from '../../domain/errors.ts';
import type { IdentityDocument } from '../../domain/identity/documents.ts';
import type { WebDeps } from '../../http/deps.ts';
import { findDuplicates, registerPerson } from '../../services/people.ts';
import { registerWithIdentityCheck } from '../../services/ra.ts';
import { withDone } from './banners.ts';
import { documentFieldMap, documentRowsView, documentsView, readDocuments } from './documents.ts';
import { duplicateCandidates, FormErrors, type FormValues, formErrorsFrom, formValues, list, text } from './forms.ts';
import { mayAnywhere, type RaCaller, raApi, raPage, renderRa } from './guard.ts';
import {
  type Candidate,
  candidatesView,
  checkFields,
  decodeDraft,
  encodeDraft,
  isJson,
  jsonProblems,
  personFields,
  photoData,
  readCheckDetails,
  readPerson,
  readResolution,
} from './identity.ts';
import { dayName } from './labels.ts';

const isRegistrationKey = (k: string) =>
  /^(title|givenName|middleNames|familyName|preferredName|niNumber|email|mobile|place|notes|dob-(day|month|year)|doc\d-(type|lastChars|issuedOn-(day|month|year)|expiresOn-(day|month|year)))$/.test(
    k,
  );

interface Registration {
  person: NonNullable<ReturnType<typeof readPerson>>;
  documents: IdentityDocument[];
  rowOf: number[];
  place: string | null;
  notes: string | null;
}

function readRegistration(caller: RaCaller, values: FormValues, errors: FormErrors, now: Date): Registration | null {
  const person = readPerson(caller.ctx, values, errors);
  const { documents, rowOf } = readDocuments(values, errors, now);
  const { place, notes } = readCheckDetails(values, errors);
  if (!person || errors.any) return null;
  return { person, documents, rowOf, place, notes };
}

export function registerRaRegistration(app: FastifyInstance, deps: WebDeps): void {
  const hidden = { schema: { hide: true } };
  const csrf = { preHandler: app.csrfProtection, schema: { hide: true } };
  // The photo is at most 5 MB: about 6.7 MB as base64, plus the form.
  const withPhoto = { ...csrf, bodyLimit: 8 * 1024 * 1024 };

  function formPage(reply: FastifyReply, caller: RaCaller, values: FormValues, errors?: FormErrors) {
    return renderRa(
      reply,
      caller,
      'ra/register.njk',
      { title: 'Register a person', values, rows: documentRowsView(), ...(errors?.view() ?? {}) },
      errors ? 400 : 200,
    );
  }

  function duplicatesPage(
    reply: FastifyReply,
    caller: RaCaller,
    draft: string,
    candidates: Candidate[],
    errors?: FormErrors,
  ) {
    return renderRa(
      reply,
      caller,
      'ra/duplicates.njk',
      {
        title: 'Is this someone already registered?',
        action: '/ra/people/new',
        draft,
        candidates,
        allowNew: !candidates.some((c) => c.sameNi),
        ...(errors?.view() ?? {}),
      },
      errors ? 400 : 200,
    );
  }

  function photoPage(
    reply: FastifyReply,
    caller: RaCaller,
    reg: Registration,
    draft: string,
    resolution: { duplicateResolution?: string; confirmedDifferentFrom: string[] },
    errors?: FormErrors,
  ) {
    const existing = resolution.duplicateResolution?.startsWith('existing:')
      ? resolution.duplicateResolution.slice(9)
      : null;
    return renderRa(
      reply,
      caller,
      'ra/photo.njk',
      {
        title: 'Add the photo taken at the check',
        draft,
        duplicateResolution: resolution.duplicateResolution ?? '',
        confirmedDifferentFrom: resolution.confirmedDifferentFrom,
        existing,
        summary: {
          name: [reg.person.title, reg.person.givenName, reg.person.middleNames, reg.person.familyName]
            .filter(Boolean)
            .join(' '),
          dateOfBirth: dayName(reg.person.dateOfBirth),
          niNumber: reg.person.niNumber,
          email: reg.person.email,
          place: reg.place,
          documents: documentsView(reg.documents),
        },
        ...(errors?.view() ?? {}),
      },
      errors ? 400 : 200,
    );
  }

  app.get('/ra/people/new', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    if (!mayAnywhere(caller.actor, 'person:create'))
      throw new AppError('auth.forbidden', { statement: 'person:create' });
    return formPage(reply, caller, {});
  });

  app.post('/ra/people/new', csrf, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const body = formValues(req.body);
    // Back from a later step ("change details") or on from the duplicates page: the form rides in `draft`.
    const values = text(body, 'draft') ? decodeDraft(text(body, 'draft')) : body;
    if (text(body, 'edit')) return formPage(reply, caller, values);
    const errors = new FormErrors();
    const reg = readRegistration(caller, values, errors, deps.clock.now());
    if (!reg) return formPage(reply, caller, values, errors);
    const draft = encodeDraft(values, isRegistrationKey);
    const found = await findDuplicates(caller.ctx, reg.person);
    if (found.length === 0) return photoPage(reply, caller, reg, draft, { confirmedDifferentFrom: [] });
    const candidates = await candidatesView(
      caller.ctx,
      found.map((p) => p.userId),
      reg.person.niNumber,
    );
    if (!text(body, 'resolution')) return duplicatesPage(reply, caller, draft, candidates);
    const resolution = readResolution(body, candidates);
    if (!resolution) {
      const e = new FormErrors();
      e.add('resolution', 'Choose the existing record, or confirm this is a different person', `resolution-0`);
      return duplicatesPage(reply, caller, draft, candidates, e);
    }
    return photoPage(reply, caller, reg, draft, resolution);
  });

  // Step 3. JSON (from ra-photo.js) with the photo: register with the identity check. A plain form: without a photo.
  app.post('/ra/people/new/complete', withPhoto, async (req, reply) => {
    const json = isJson(req);
    const caller = json ? await raApi(deps, req) : await raPage(deps, req, reply);
    if (!caller) return reply;
    const body = formValues(req.body);
    const values = decodeDraft(text(body, 'draft'));
    const errors = new FormErrors();
    const reg = readRegistration(caller, values, errors, deps.clock.now());
    if (!reg) {
      if (json)
        return jsonProblems(
          reply,
          400,
          'request.invalid',
          'Some details need changing.',
          errors.list.map((e) => ({ href: '#change-details', message: e.message })),
        );
      return formPage(reply, caller, values, errors);
    }
    const draft = encodeDraft(values, isRegistrationKey);
    const resolution = {
      ...(text(body, 'duplicateResolution') ? { duplicateResolution: text(body, 'duplicateResolution') } : {}),
      confirmedDifferentFrom: list(body, 'confirmedDifferentFrom'),
    };
    const photo = photoData(req);
    if (photo) {
      try {
        const res = await registerWithIdentityCheck(caller.ctx, {
          person: reg.person,
          method: 'face_to_face',
          place: reg.place,
          notes: reg.notes,
          documents: reg.documents,
          photo: { data: photo },
          ...resolution,
        });
        return reply.status(res.created ? 201 : 200).send({
          userId: res.person.userId,
          redirect: withDone(`/ra/people/${res.person.userId}`, res.created ? 'registered' : 'identity_checked'),
        });
      } catch (err) {
        if (duplicateCandidates(err)) {
          return jsonProblems(
            reply,
            409,
            'identity_check.duplicate_unresolved',
            'Someone with these details was registered meanwhile. Go back to check the duplicates again.',
            [
              {
                href: '#change-details',
                message:
                  'Someone with these details was registered meanwhile: choose "Change details" and continue to check the duplicates again.',
              },
            ],
          );
        }
        const e = formErrorsFrom(err, (p) => personFields(p) ?? documentFieldMap(reg.rowOf)(p) ?? checkFields(p), {
          id: 'photo',
        });
        const code = err instanceof AppError ? err.code : 'request.invalid';
        const message = err instanceof AppError ? err.message : 'That did not work.';
        const photoProblem = code.startsWith('photo.');
        return jsonProblems(
          reply,
          err instanceof AppError ? err.status : 400,
          code,
          message,
          e.list.map((x) => ({ href: photoProblem ? '#photo' : '#change-details', message: x.message })),
        );
      }
    }
    if (json)
      return jsonProblems(reply, 400, 'request.invalid', 'Choose a photo.', [
        { href: '#photo', message: 'Choose the photo taken at the check' },
      ]);
    if (!text(body, 'withoutPhoto')) {
      const e = new FormErrors();
      e.add(
        'photo',
        'Choose the photo taken at the check. Adding a photo needs JavaScript; without it, register without a photo and record the check later.',
      );
      return photoPage(reply, caller, reg, draft, resolution, e);
    }
    // Without a photo: no identity check can be recorded (it needs the photo), so the record is created unverified.
    if (resolution.duplicateResolution?.startsWith('existing:')) {
      return reply.redirect(`/ra/people/${resolution.duplicateResolution.slice(9)}`, 303);
    }
    try {
      const person = await registerPerson(caller.ctx, reg.person, {
        confirmedDifferentFrom: resolution.confirmedDifferentFrom,
      });
      return reply.redirect(withDone(`/ra/people/${person.userId}`, 'registered_unverified'), 303);
    } catch (err) {
      const ids = duplicateCandidates(err);
      if (ids) return duplicatesPage(reply, caller, draft, await candidatesView(caller.ctx, ids, reg.person.niNumber));
      return formPage(reply, caller, values, formErrorsFrom(err, personFields, { id: 'givenName' }));
    }
  });
}
