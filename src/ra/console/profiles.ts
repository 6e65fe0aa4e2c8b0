/** A person's role profiles (DOMAIN §5.4): end one now, or change its dates (temporary staff). */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../domain/errors.ts';
import type { WebDeps } from '../../http/deps.ts';
import { roleProfilesOf } from '../../services/access.ts';
import { changeRoleDates, endPosition } from '../../services/ra.ts';
import { withDone } from './banners.ts';
import { confirmPage, reasonField } from './confirm.ts';
import {
  dateField,
  dateValues,
  type FieldMap,
  FormErrors,
  type FormValues,
  formErrorsFrom,
  formValues,
  text,
} from './forms.ts';
import { param, type RaCaller, raPage, renderRa } from './guard.ts';
import { dayName } from './labels.ts';
import { personFor, personSummary } from './people.ts';

export function registerRaProfiles(app: FastifyInstance, deps: WebDeps): void {
  const hidden = { schema: { hide: true } };
  const csrf = { preHandler: app.csrfProtection, schema: { hide: true } };

  async function profileOf(req: FastifyRequest, caller: RaCaller) {
    const { person } = await personFor(deps, caller, param(req, 'userId'));
    const profile = (await roleProfilesOf(caller.ctx, person.userId)).find(
      (p) => p.personRoleId === param(req, 'personRoleId'),
    );
    if (!profile) throw new AppError('role_profile.not_found');
    const position = await deps.repos.positions.findPosition(profile.positionId);
    return { person, profile, positionName: position?.name ?? profile.positionId };
  }

  app.get('/ra/people/:userId/roles/:personRoleId/end', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const { positionName, profile } = await profileOf(req, caller);
    return confirmPage(deps, req, reply, caller, {
      heading: 'End a role profile',
      button: 'End this role profile today',
      warning: `${positionName} (${profile.odsCode}) ends today. Sessions that may carry it end too.`,
      reasonRequired: true,
    });
  });

  app.post('/ra/people/:userId/roles/:personRoleId/end', csrf, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const { person, profile, positionName } = await profileOf(req, caller);
    const values = formValues(req.body);
    try {
      await endPosition(caller.ctx, profile.personRoleId, { reason: text(values, 'reason') });
    } catch (err) {
      const errors = formErrorsFrom(err, reasonField, { id: 'reason' });
      return confirmPage(
        deps,
        req,
        reply,
        caller,
        {
          heading: 'End a role profile',
          button: 'End this role profile today',
          warning: `${positionName} (${profile.odsCode}) ends today.`,
          reasonRequired: true,
          values,
          ...errors.view(),
        },
        400,
      );
    }
    return reply.redirect(withDone(`/ra/people/${person.userId}`, 'role_ended'), 303);
  });

  async function datesPage(
    req: FastifyRequest,
    reply: FastifyReply,
    caller: RaCaller,
    values?: FormValues,
    errors?: FormErrors,
  ) {
    const { person, profile, positionName } = await profileOf(req, caller);
    return renderRa(
      reply,
      caller,
      'ra/dates.njk',
      {
        title: `Change dates: ${positionName}`,
        person: personSummary(person),
        positionName,
        odsCode: profile.odsCode,
        startDate: dayName(profile.startDate),
        values: values ?? { ...dateValues('startDate', profile.startDate), ...dateValues('endDate', profile.endDate) },
        ...(errors?.view() ?? {}),
      },
      errors ? 400 : 200,
    );
  }

  app.get('/ra/people/:userId/roles/:personRoleId/dates', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    return datesPage(req, reply, caller);
  });

  app.post('/ra/people/:userId/roles/:personRoleId/dates', csrf, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const { person, profile } = await profileOf(req, caller);
    const values = formValues(req.body);
    const errors = new FormErrors();
    const start = dateField(values, 'startDate');
    const end = dateField(values, 'endDate');
    if (start.kind !== 'date') errors.add('startDate', 'Start date must be a real date', 'startDate-day');
    if (end.kind === 'invalid') errors.add('endDate', 'End date must be a real date, or leave it blank', 'endDate-day');
    if (errors.any) return datesPage(req, reply, caller, values, errors);
    try {
      await changeRoleDates(caller.ctx, profile.personRoleId, {
        ...(start.kind === 'date' && start.value !== profile.startDate ? { startDate: start.value } : {}),
        endDate: end.kind === 'date' ? end.value : null,
        reason: text(values, 'reason'),
      });
    } catch (err) {
      const map: FieldMap = (path) =>
        path === 'startDate'
          ? { id: 'startDate', label: 'Start date:', target: 'startDate-day' }
          : path === 'endDate'
            ? { id: 'endDate', label: 'End date:', target: 'endDate-day' }
            : reasonField(path);
      return datesPage(req, reply, caller, values, formErrorsFrom(err, map, { id: 'endDate', target: 'endDate-day' }));
    }
    return reply.redirect(withDone(`/ra/people/${person.userId}`, 'dates_changed'), 303);
  });
}
