/** Request access for a person (DOMAIN §5.3): choose an organisation, then one of its positions, dates and a reason. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ukDate } from '../../domain/dates.ts';
import { AppError } from '../../domain/errors.ts';
import { isAllowed } from '../../domain/policy.ts';
import type { WebDeps } from '../../http/deps.ts';
import { findOrganisation } from '../../services/organisations.ts';
import { requestAccess } from '../../services/ra.ts';
import { positionTarget } from '../../services/targets.ts';
import { withDone } from './banners.ts';
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
import { accessOrganisations, personFor, personSummary } from './people.ts';

const fields: FieldMap = (path) =>
  (
    ({
      positionId: { id: 'positionId', label: 'Position:' },
      startDate: { id: 'startDate', label: 'Start date:', target: 'startDate-day' },
      endDate: { id: 'endDate', label: 'End date:', target: 'endDate-day' },
      reason: { id: 'reason', label: 'Reason:' },
      userId: { id: 'positionId', label: 'Person:' },
    }) as Record<string, { id: string; label: string; target?: string }>
  )[path];

export function registerRaAccess(app: FastifyInstance, deps: WebDeps): void {
  const hidden = { schema: { hide: true } };
  const csrf = { preHandler: app.csrfProtection, schema: { hide: true } };

  async function page(
    req: FastifyRequest,
    reply: FastifyReply,
    caller: RaCaller,
    odsCode: string,
    values: FormValues,
    errors?: FormErrors,
  ) {
    const { person } = await personFor(deps, caller, param(req, 'userId'));
    if (person.status !== 'active') throw new AppError('role_profile.person_inactive', { status: person.status });
    const reach = accessOrganisations(caller, person.userId);
    if (reach.length === 0) throw new AppError('auth.forbidden', { statement: 'request:create' });
    const organisations = [];
    for (const code of reach)
      organisations.push({
        value: code,
        text: `${(await findOrganisation(deps.repos, code))?.name ?? code} (${code})`,
      });
    const chosen = reach.includes(odsCode) ? odsCode : '';
    const positions = [];
    for (const p of chosen ? await deps.repos.positions.positionsOf(chosen) : []) {
      if (p.status !== 'active') continue;
      const target = await positionTarget(deps.repos, deps.clock, person.userId, p);
      const direct = isAllowed(caller.actor, 'role_profile:assign', target);
      if (!direct && !isAllowed(caller.actor, 'request:create', target)) continue;
      positions.push({ positionId: p.positionId, name: p.name, jobRoles: p.jobRoles.join(', '), direct });
    }
    return renderRa(
      reply,
      caller,
      'ra/access.njk',
      {
        title: `Give or request a position: ${personSummary(person).name}`,
        person: personSummary(person),
        organisations: [{ value: '', text: 'Choose an organisation' }, ...organisations],
        odsCode: chosen,
        orgName: organisations.find((o) => o.value === chosen)?.text ?? '',
        positions,
        values,
        ...(errors?.view() ?? {}),
      },
      errors ? 400 : 200,
    );
  }

  app.get('/ra/people/:userId/access', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const org = (req.query as Record<string, unknown>).org;
    const values = dateValues('startDate', ukDate(deps.clock.now()));
    return page(req, reply, caller, typeof org === 'string' ? org.trim().toUpperCase() : '', values);
  });

  app.post('/ra/people/:userId/access', csrf, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const { person } = await personFor(deps, caller, param(req, 'userId'));
    const values = formValues(req.body);
    const odsCode = text(values, 'odsCode');
    const errors = new FormErrors();
    const positionId = text(values, 'positionId');
    const start = dateField(values, 'startDate');
    const end = dateField(values, 'endDate');
    if (!positionId) errors.add('positionId', 'Choose a position', 'positionId-0');
    if (start.kind !== 'date') errors.add('startDate', 'Start date must be a real date', 'startDate-day');
    if (end.kind === 'invalid') errors.add('endDate', 'End date must be a real date, or leave it blank', 'endDate-day');
    if (!text(values, 'reason')) errors.add('reason', 'Enter the reason for the request');
    if (errors.any) return page(req, reply, caller, odsCode, values, errors);
    try {
      const { request, roleProfile } = await requestAccess(caller.ctx, {
        userId: person.userId,
        positionId,
        startDate: start.kind === 'date' ? start.value : '',
        endDate: end.kind === 'date' ? end.value : null,
        reason: text(values, 'reason'),
      });
      // Given at once (an assignable position, or an RA giving it): back to the person, whose record now has it.
      if (roleProfile) return reply.redirect(withDone(`/ra/people/${person.userId}`, 'position_given'), 303);
      return reply.redirect(withDone(`/ra/requests/${request.requestId}`, 'request_sent'), 303);
    } catch (err) {
      const e = formErrorsFrom(err, fields, { id: 'positionId', target: 'positionId-0' });
      return page(req, reply, caller, odsCode, values, e);
    }
  });
}
