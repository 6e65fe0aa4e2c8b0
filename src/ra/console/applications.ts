/**
 * Apply for Care ID (DOMAIN §5.2). The public form at /apply sends the applicant's details, an image of their photo ID
 * and a selfie to POST /api/v1/applications (src/api/ra.ts) as JSON — ra-apply.js reads the images, because multipart
 * is not installed. RA staff review the applications of their organisations at /ra/applications: verify after a video
 * call (the person is at identity assurance level 2), or reject with a reason.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ukDate } from '../../domain/dates.ts';
import { AppError } from '../../domain/errors.ts';
import { text as textSchema } from '../../domain/text.ts';
import type { WebDeps } from '../../http/deps.ts';
import { sessionOf } from '../../http/deps.ts';
import { findOrganisation } from '../../services/organisations.ts';
import {
  type Application,
  type ApplicationStatus,
  applicationImage,
  getApplication,
  listApplications,
  rejectApplication,
  verifyApplication,
} from '../../services/ra.ts';
import { withDone } from './banners.ts';
import { documentFieldMap, documentRowsView, readDocuments } from './documents.ts';
import {
  dateField,
  dateValues,
  duplicateCandidates,
  type FieldMap,
  FormErrors,
  type FormValues,
  formErrorsFrom,
  formValues,
  optional,
  text,
} from './forms.ts';
import { mayAnywhere, param, type RaCaller, raPage, renderRa } from './guard.ts';
import { candidatesView, decodeDraft, encodeDraft, readResolution } from './identity.ts';
import { dateTime, dayName, statusColours } from './labels.ts';
import { sendImage } from './people.ts';

const statuses: ApplicationStatus[] = ['submitted', 'verified', 'rejected'];
const statusNames: Record<ApplicationStatus, string> = {
  submitted: 'Waiting for review',
  verified: 'Verified',
  rejected: 'Rejected',
};

/** Minutes London is ahead of UTC at an instant (0 in winter, 60 in summer). */
function londonOffsetMinutes(at: Date): number {
  const name =
    new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/London', timeZoneName: 'longOffset' })
      .formatToParts(at)
      .find((p) => p.type === 'timeZoneName')?.value ?? '';
  const m = /GMT([+-])(\d{2}):(\d{2})/.exec(name);
  return m ? (m[1] === '+' ? 1 : -1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
}

/** A UK wall-clock date and time (what the RA reads off their clock) as an instant. */
export function londonInstant(date: string, time: string): Date | null {
  const t = /^([01]?\d|2[0-3])[:.]([0-5]\d)$/.exec(time.trim());
  if (!t) return null;
  const [y, mo, d] = date.split('-').map(Number) as [number, number, number];
  const wall = Date.UTC(y, mo - 1, d, Number(t[1]), Number(t[2]));
  let utc = wall - londonOffsetMinutes(new Date(wall)) * 60_000;
  utc = wall - londonOffsetMinutes(new Date(utc)) * 60_000;
  return new Date(utc);
}

function londonTime(at: Date): string {
  return new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/London', hour: '2-digit', minute: '2-digit' }).format(at);
}

const isVerifyKey = (k: string) =>
  /^(notes|videoDate-(day|month|year)|videoTime|doc\d-(type|lastChars|issuedOn-(day|month|year)|expiresOn-(day|month|year)))$/.test(
    k,
  );

function applicationView(a: Application) {
  const p = a.applicant;
  return {
    applicationId: a.applicationId,
    status: a.status,
    statusName: statusNames[a.status],
    odsCode: a.odsCode,
    name: [p.title, p.givenName, p.middleNames, p.familyName].filter(Boolean).join(' '),
    preferredName: p.preferredName,
    dateOfBirth: dayName(p.dateOfBirth),
    niNumber: p.niNumber,
    email: p.email,
    mobile: p.mobile,
    submittedAt: dateTime(a.submittedAt),
    reviewedBy: a.reviewedBy,
    reviewedAt: dateTime(a.reviewedAt),
    reason: a.reason,
    userId: a.userId,
    selfiePhotoId: a.selfiePhotoId,
    documentPhotoIds: a.documentPhotoIds,
  };
}

export function registerRaApplications(app: FastifyInstance, deps: WebDeps): void {
  const hidden = { schema: { hide: true } };
  const csrf = { preHandler: app.csrfProtection, schema: { hide: true } };

  // Public: the application form. Its script posts to the API; without JavaScript the images cannot be attached.
  async function applyPage(req: FastifyRequest, reply: FastifyReply, values: FormValues, errors?: FormErrors) {
    return reply.page(
      'ra/apply.njk',
      {
        title: 'Apply for a Care ID',
        serviceName: 'OpenCIS – Care Identity',
        homeHref: '/',
        signedIn: (await sessionOf(deps, req)) !== null,
        values,
        ...(errors?.view() ?? {}),
      },
      errors ? 400 : 200,
    );
  }

  app.get('/apply', hidden, async (req, reply) => applyPage(req, reply, {}));

  app.post('/apply', csrf, async (req, reply) => {
    const errors = new FormErrors();
    errors.add(
      'selfie',
      'Attach a photo of yourself and of your photo ID. Attaching photos needs JavaScript: turn it on, or ask your Registration Authority to register you in person.',
    );
    return applyPage(req, reply, formValues(req.body), errors);
  });

  app.get('/apply/done', hidden, async (req, reply) => {
    const ref = (req.query as Record<string, unknown>).ref;
    const reference = typeof ref === 'string' && /^[0-9a-f-]{36}$/.test(ref) ? ref : null;
    return reply.page('ra/apply-done.njk', {
      title: 'Application sent',
      serviceName: 'OpenCIS – Care Identity',
      homeHref: '/',
      reference,
    });
  });

  // The RA queue.
  app.get('/ra/applications', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    if (!mayAnywhere(caller.actor, 'application:review'))
      throw new AppError('auth.forbidden', { statement: 'application:review' });
    const q = (req.query as Record<string, unknown>).status;
    const status: ApplicationStatus = statuses.includes(q as ApplicationStatus)
      ? (q as ApplicationStatus)
      : 'submitted';
    const applications = (await listApplications(caller.ctx, { status, limit: 200 })).map(applicationView);
    return renderRa(reply, caller, 'ra/applications.njk', {
      title: `Applications: ${statusNames[status].toLowerCase()}`,
      status,
      statusName: statusNames[status],
      tabs: statuses.map((s) => ({ status: s, name: statusNames[s], current: s === status })),
      applications,
      statusColours,
    });
  });

  async function applicationPage(
    req: FastifyRequest,
    reply: FastifyReply,
    caller: RaCaller,
    values?: FormValues,
    errors?: FormErrors,
    rejectValues?: FormValues,
  ) {
    const a = await getApplication(caller.ctx, param(req, 'applicationId'));
    const now = deps.clock.now();
    const org = await findOrganisation(deps.repos, a.odsCode);
    return renderRa(
      reply,
      caller,
      'ra/application.njk',
      {
        title: `Application from ${applicationView(a).name}`,
        application: applicationView(a),
        orgName: org?.name ?? a.odsCode,
        values: values ?? { ...dateValues('videoDate', ukDate(now)), videoTime: londonTime(now) },
        rejectValues: rejectValues ?? {},
        rows: documentRowsView(),
        statusColours,
        ...(errors?.view() ?? {}),
      },
      errors ? 400 : 200,
    );
  }

  app.get('/ra/applications/:applicationId', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    return applicationPage(req, reply, caller);
  });

  app.get('/ra/applications/:applicationId/images/:photoId', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    return sendImage(reply, await applicationImage(caller.ctx, param(req, 'applicationId'), param(req, 'photoId')));
  });

  app.post('/ra/applications/:applicationId/verify', csrf, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const applicationId = param(req, 'applicationId');
    const a = await getApplication(caller.ctx, applicationId);
    const body = formValues(req.body);
    const values = text(body, 'draft') ? decodeDraft(text(body, 'draft')) : body;
    const errors = new FormErrors();
    const day = dateField(values, 'videoDate');
    const at = day.kind === 'date' ? londonInstant(day.value, text(values, 'videoTime')) : null;
    if (day.kind !== 'date') errors.add('videoDate', 'Enter the date of the video call', 'videoDate-day');
    else if (!at) errors.add('videoTime', 'Enter the time of the video call, like 14:30');
    else if (at.getTime() > deps.clock.now().getTime())
      errors.add('videoTime', 'The video call must not be in the future');
    const { documents, rowOf } = readDocuments(values, errors, deps.clock.now());
    const notes = optional(values, 'notes');
    if (notes && notes.length > 1000) errors.add('notes', 'Notes must be at most 1000 characters');
    if (errors.any || !at) return applicationPage(req, reply, caller, values, errors);
    const draft = encodeDraft(values, isVerifyKey);
    let resolution: { duplicateResolution?: string; confirmedDifferentFrom: string[] } = { confirmedDifferentFrom: [] };
    if (text(body, 'resolution')) {
      const ids = text(body, 'candidates').split(',').filter(Boolean);
      const candidates = await candidatesView(caller.ctx, ids, a.applicant.niNumber);
      const chosen = readResolution(body, candidates);
      if (!chosen) return duplicatesPage(reply, caller, applicationId, draft, candidates, true);
      resolution = chosen;
    }
    try {
      await verifyApplication(caller.ctx, applicationId, {
        videoCheckedAt: at.toISOString(),
        notes,
        documents,
        ...resolution,
      });
    } catch (err) {
      const ids = duplicateCandidates(err);
      if (ids) {
        const candidates = await candidatesView(caller.ctx, ids, a.applicant.niNumber);
        return duplicatesPage(reply, caller, applicationId, draft, candidates, false);
      }
      const map: FieldMap = (p) =>
        p === 'videoCheckedAt' ? { id: 'videoTime', label: 'Video call:' } : documentFieldMap(rowOf)(p);
      return applicationPage(req, reply, caller, values, formErrorsFrom(err, map, { id: 'videoTime' }));
    }
    return reply.redirect(withDone(`/ra/applications/${applicationId}`, 'application_verified'), 303);
  });

  function duplicatesPage(
    reply: FastifyReply,
    caller: RaCaller,
    applicationId: string,
    draft: string,
    candidates: Awaited<ReturnType<typeof candidatesView>>,
    invalid: boolean,
  ) {
    const errors = new FormErrors();
    if (invalid)
      errors.add('resolution', 'Choose the existing record, or confirm this is a different person', 'resolution-0');
    return renderRa(
      reply,
      caller,
      'ra/duplicates.njk',
      {
        title: 'Is this applicant already registered?',
        action: `/ra/applications/${applicationId}/verify`,
        draft,
        candidates,
        candidateIds: candidates.map((c) => c.userId).join(','),
        allowNew: !candidates.some((c) => c.sameNi),
        ...errors.view(),
      },
      invalid ? 400 : 200,
    );
  }

  app.post('/ra/applications/:applicationId/reject', csrf, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const applicationId = param(req, 'applicationId');
    const values = formValues(req.body);
    const reason = textSchema(1000).safeParse(text(values, 'rejectReason'));
    if (!reason.success) {
      const errors = new FormErrors();
      errors.add('rejectReason', 'Enter the reason for rejecting the application (the applicant is told it)');
      return applicationPage(req, reply, caller, undefined, errors, values);
    }
    try {
      await rejectApplication(caller.ctx, applicationId, { reason: reason.data });
    } catch (err) {
      const errors = formErrorsFrom(err, () => undefined, { id: 'rejectReason' });
      return applicationPage(req, reply, caller, undefined, errors, values);
    }
    return reply.redirect(withDone(`/ra/applications/${applicationId}`, 'application_rejected'), 303);
  });
}
