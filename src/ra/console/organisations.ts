/** An organisation: details, children, positions (assignable or not), and a new position if the caller may. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../domain/errors.ts';
import { type OrganisationType, organisationTypes } from '../../domain/organisations/organisation.ts';
import { isAllowed } from '../../domain/policy.ts';
import type { WebDeps } from '../../http/deps.ts';
import { createPosition } from '../../services/access.ts';
import { listCatalogue } from '../../services/catalogue.ts';
import { getOrganisation, saveOrganisation } from '../../services/organisations.ts';
import { withDone } from './banners.ts';
import { type FieldMap, FormErrors, type FormValues, formErrorsFrom, formValues, list, text } from './forms.ts';
import { param, type RaCaller, raPage, renderRa } from './guard.ts';

const positionFields: FieldMap = (path) =>
  path === 'name'
    ? { id: 'positionName', label: 'Position name:' }
    : path.startsWith('jobRoles')
      ? { id: 'jobRoles', label: 'Job roles:', target: 'jobRoles-0' }
      : path.startsWith('activities')
        ? { id: 'activities', label: 'Activities:', target: 'activities-0' }
        : path === 'codes'
          ? { id: 'jobRoles', label: 'Codes:', target: 'jobRoles-0' }
          : undefined;

const typeNames: Record<OrganisationType, string> = {
  national: 'National body',
  icb: 'Integrated care board',
  csu: 'Commissioning support unit',
  trust: 'Trust',
  site: 'Site (of a trust)',
  gp_practice: 'GP practice',
  pharmacy: 'Pharmacy',
  care_home: 'Care home',
  other: 'Other',
};

const childFields: FieldMap = (path) =>
  path === 'odsCode'
    ? { id: 'childOdsCode', label: 'ODS code:' }
    : path === 'name'
      ? { id: 'childName', label: 'Name:' }
      : path === 'type'
        ? { id: 'childType', label: 'Type:' }
        : undefined;

export function registerRaOrganisations(app: FastifyInstance, deps: WebDeps): void {
  const hidden = { schema: { hide: true } };
  const csrf = { preHandler: app.csrfProtection, schema: { hide: true } };

  async function page(
    req: FastifyRequest,
    reply: FastifyReply,
    caller: RaCaller,
    values: FormValues = {},
    errors?: FormErrors,
    childValues?: FormValues,
  ) {
    const org = await getOrganisation(caller.ctx, param(req, 'odsCode'));
    const parent =
      org.parentOdsCode &&
      isAllowed(caller.actor, 'organisation:read', { kind: 'organisation', odsCode: org.parentOdsCode })
        ? org.parentOdsCode
        : null;
    const mayCreate = isAllowed(caller.actor, 'position:create', { kind: 'organisation', odsCode: org.odsCode });
    // Adding an organisation within this one (a site, a ward, a practice): the policy's organisation:create here.
    const mayAddChild = isAllowed(caller.actor, 'organisation:create', { kind: 'organisation', odsCode: org.odsCode });
    const catalogue = mayCreate ? await listCatalogue(deps.repos) : null;
    const chosenRoles = new Set(list(values, 'jobRoles'));
    const chosenActivities = new Set(list(values, 'activities'));
    return renderRa(
      reply,
      caller,
      'ra/organisation.njk',
      {
        title: `${org.name} (${org.odsCode})`,
        org: { ...org, type: org.type.replaceAll('_', ' ') },
        parent,
        children: await deps.repos.organisations.childrenOf(org.odsCode),
        childValues: childValues ?? {},
        positions: (await deps.repos.positions.positionsOf(org.odsCode)).map((p) => ({
          ...p,
          jobRoles: p.jobRoles.join(', '),
          activities: p.activities.join(', '),
        })),
        mayCreate,
        mayAddChild,
        organisationTypes: [
          { value: '', text: 'Choose a type' },
          ...organisationTypes.filter((t) => t !== 'national').map((t) => ({ value: t, text: typeNames[t] })),
        ],
        jobRoles: catalogue?.jobRoles.map((j) => ({ ...j, checked: chosenRoles.has(j.code) })) ?? [],
        activities: catalogue?.activities.map((a) => ({ ...a, checked: chosenActivities.has(a.code) })) ?? [],
        values,
        ...(errors?.view() ?? {}),
      },
      errors ? 400 : 200,
    );
  }

  app.get('/ra/organisations/:odsCode', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    return page(req, reply, caller);
  });

  // An organisation within this one. The service asks the policy (organisation:create on this, the parent).
  app.post('/ra/organisations/:odsCode/organisations', csrf, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const parent = await getOrganisation(caller.ctx, param(req, 'odsCode'));
    const values = formValues(req.body);
    const errors = new FormErrors();
    if (!text(values, 'childOdsCode')) errors.add('childOdsCode', 'Enter its ODS code');
    if (!text(values, 'childName')) errors.add('childName', 'Enter its name');
    if (!text(values, 'childType')) errors.add('childType', 'Choose its type');
    if (errors.any) return page(req, reply, caller, {}, errors, values);
    try {
      const { organisation } = await saveOrganisation(caller.ctx, {
        odsCode: text(values, 'childOdsCode'),
        name: text(values, 'childName'),
        type: text(values, 'childType'),
        parentOdsCode: parent.odsCode,
      });
      return reply.redirect(withDone(`/ra/organisations/${organisation.odsCode}`, 'organisation_created'), 303);
    } catch (err) {
      if (err instanceof AppError && err.code === 'organisation.exists') {
        const exists = new FormErrors();
        exists.add('childOdsCode', 'An organisation with that ODS code already exists');
        return page(req, reply, caller, {}, exists, values);
      }
      return page(req, reply, caller, {}, formErrorsFrom(err, childFields, { id: 'childOdsCode' }), values);
    }
  });

  app.post('/ra/organisations/:odsCode/positions', csrf, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const values = formValues(req.body);
    const errors = new FormErrors();
    if (!text(values, 'positionName')) errors.add('positionName', 'Enter a name for the position');
    if (list(values, 'jobRoles').length === 0) errors.add('jobRoles', 'Choose at least one job role', 'jobRoles-0');
    if (errors.any) return page(req, reply, caller, values, errors);
    try {
      const position = await createPosition(caller.ctx, param(req, 'odsCode'), {
        name: text(values, 'positionName'),
        jobRoles: list(values, 'jobRoles'),
        activities: list(values, 'activities'),
        assignable: text(values, 'assignable') === 'yes',
      });
      return reply.redirect(withDone(`/ra/organisations/${position.odsCode}#positions`, 'position_created'), 303);
    } catch (err) {
      return page(req, reply, caller, values, formErrorsFrom(err, positionFields, { id: 'positionName' }));
    }
  });
}
