/**
 * An identity check for someone already registered (DOMAIN §5.1): documents, place and the photo taken at the meeting
 * raise their identity to level 3. The photo arrives as JSON from ra-photo.js, so this page needs JavaScript; without
 * it the form says so.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../domain/errors.ts';
import { isAllowed } from '../../domain/policy.ts';
import type { WebDeps } from '../../http/deps.ts';
import { verifyIdentity } from '../../services/ra.ts';
import { withDone } from './banners.ts';
import { documentFieldMap, documentRowsView, readDocuments } from './documents.ts';
import { FormErrors, type FormValues, formErrorsFrom, formValues } from './forms.ts';
import { param, type RaCaller, raApi, raPage, renderRa } from './guard.ts';
import { checkFields, isJson, jsonProblems, photoData, readCheckDetails } from './identity.ts';
import { personFor, personSummary } from './people.ts';

export function registerRaIdentityCheck(app: FastifyInstance, deps: WebDeps): void {
  const hidden = { schema: { hide: true } };
  // The photo is at most 5 MB: about 6.7 MB as base64, plus the form.
  const withPhoto = { preHandler: app.csrfProtection, schema: { hide: true }, bodyLimit: 8 * 1024 * 1024 };

  async function checkPage(
    req: FastifyRequest,
    reply: FastifyReply,
    caller: RaCaller,
    values: FormValues,
    errors?: FormErrors,
  ) {
    const { person, target } = await personFor(deps, caller, param(req, 'userId'));
    if (!isAllowed(caller.actor, 'person:verify_identity', target)) {
      throw new AppError('auth.forbidden', { statement: 'person:verify_identity' });
    }
    return renderRa(
      reply,
      caller,
      'ra/identity-check.njk',
      {
        title: `Record an identity check: ${personSummary(person).name}`,
        person: personSummary(person),
        values,
        rows: documentRowsView(),
        ...(errors?.view() ?? {}),
      },
      errors ? 400 : 200,
    );
  }

  app.get('/ra/people/:userId/identity-check', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    return checkPage(req, reply, caller, {});
  });

  app.post('/ra/people/:userId/identity-check', withPhoto, async (req, reply) => {
    const json = isJson(req);
    const caller = json ? await raApi(deps, req) : await raPage(deps, req, reply);
    if (!caller) return reply;
    const { person } = await personFor(deps, caller, param(req, 'userId'));
    const values = formValues(req.body);
    const errors = new FormErrors();
    const { documents, rowOf } = readDocuments(values, errors, deps.clock.now());
    const { place, notes } = readCheckDetails(values, errors);
    const photo = photoData(req);
    if (!photo) {
      errors.add(
        'photo',
        json
          ? 'Choose the photo taken at the check'
          : 'Choose the photo taken at the check (adding a photo needs JavaScript)',
      );
    }
    if (errors.any) {
      if (json) return jsonProblems(reply, 400, 'request.invalid', 'There is a problem.', errors.list);
      return checkPage(req, reply, caller, values, errors);
    }
    try {
      await verifyIdentity(caller.ctx, person.userId, {
        method: 'face_to_face',
        place,
        notes,
        documents,
        photo: { data: photo },
      });
    } catch (err) {
      const e = formErrorsFrom(err, (p) => documentFieldMap(rowOf)(p) ?? checkFields(p), { id: 'photo' });
      const appErr = err instanceof AppError ? err : new AppError('request.invalid');
      return jsonProblems(reply, appErr.status, appErr.code, appErr.message, e.list);
    }
    return reply.send({ userId: person.userId, redirect: withDone(`/ra/people/${person.userId}`, 'identity_checked') });
  });
}
