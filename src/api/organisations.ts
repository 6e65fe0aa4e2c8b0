import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { newPositionSchema } from '../domain/access/role-profile.ts';
import { newOrganisationSchema, organisationTypes } from '../domain/organisations/organisation.ts';
import { apiActor, csrfUnlessBearer } from '../http/api-auth.ts';
import { contextFor, type WebDeps } from '../http/deps.ts';
import { jsonSchemaOf, security } from '../http/openapi.ts';
import { createPosition } from '../services/access.ts';
import {
  moveOrganisation,
  organisationChangeSchema,
  organisationMoveSchema,
  organisationTree,
  updateOrganisation,
} from '../services/organisation-changes.ts';
import { saveOrganisation } from '../services/organisations.ts';
import { listPositions, positionChangeSchema, updatePosition } from '../services/positions.ts';

/**
 * Organisations and positions (issue 18): what the console's organisation pages and `opencis import orgs` do, for an
 * organisation's scripts. The same services decide, with the same policy statements: organisation:read (the tree, the
 * positions), organisation:create on the parent, organisation:update on the organisation and, for a move, on its new
 * parent; position:create in the organisation, position:update on the change as a whole (what the position appointed,
 * what it will appoint, who holds it).
 */
const organisationSchema = z.object({
  odsCode: z.string(),
  name: z.string(),
  type: z.enum(organisationTypes),
  parentOdsCode: z.string().nullable(),
  status: z.enum(['active', 'closed']),
  createdAt: z.string(),
  updatedAt: z.string(),
});
const saved = z.object({ organisation: organisationSchema, outcome: z.enum(['created', 'updated', 'unchanged']) });
const treeSchema = z.object({
  root: z.string(),
  organisations: z
    .array(organisationSchema.pick({ odsCode: true, name: true, type: true, parentOdsCode: true, status: true }))
    .describe('The root first, then each level below it; each names its parent (the root’s only if you may read it)'),
});
const positionSchema = z.object({
  positionId: z.string(),
  odsCode: z.string(),
  name: z.string(),
  assignable: z.boolean().describe('Whether sponsors may give it directly'),
  jobRoles: z.array(z.string()),
  activities: z.array(z.string()),
  areasOfWork: z.array(z.string()),
  workgroups: z.array(z.string()),
  status: z.enum(['active', 'retired']),
});
const odsParams = z.object({
  odsCode: z
    .string()
    .max(10)
    .meta({ examples: ['RR8'] }),
});
const positionParams = z.object({ positionId: z.string().regex(/^[0-9]{1,18}$/) });

const newOrganisationBody = {
  ...jsonSchemaOf(newOrganisationSchema, 'input'),
  examples: [{ odsCode: 'RR813', name: 'St James’s Hospital', type: 'site', parentOdsCode: 'RR8' }],
};
const organisationChangeBody = {
  ...jsonSchemaOf(organisationChangeSchema, 'input'),
  examples: [{ name: 'Leeds Teaching Hospitals' }],
};
const organisationMoveBody = { ...jsonSchemaOf(organisationMoveSchema, 'input'), examples: [{ parentOdsCode: 'RR8' }] };
const newPositionBody = {
  ...jsonSchemaOf(newPositionSchema, 'input'),
  examples: [{ name: 'Ward nurse, ward 7', jobRoles: ['R8001'], activities: ['B0825'], assignable: true }],
};
const positionChangeBody = {
  ...jsonSchemaOf(positionChangeSchema, 'input'),
  examples: [{ name: 'Staff nurse, ward 7', activities: ['B0825', 'B0380'] }],
};
const assignableBody = z
  .object({ assignable: z.boolean() })
  .strict()
  .meta({ examples: [{ assignable: true }] });

export function registerOrganisationApi(app: FastifyInstance, deps: WebDeps): void {
  const tags = ['organisations and positions'];
  const guarded = { preHandler: csrfUnlessBearer(app) };
  const read = { tags, security: security.raRead };
  const write = { tags, security: security.raWrite };
  const context = async (req: FastifyRequest) => contextFor(deps, req, await apiActor(app, deps, req));
  const param = (req: FastifyRequest, name: string): string =>
    String((req.params as Record<string, string | undefined>)[name] ?? '');
  const ok = (schema: z.ZodType) => ({ 200: jsonSchemaOf(schema) });

  app.get(
    '/api/v1/organisations/:odsCode/tree',
    {
      schema: {
        ...read,
        summary: 'An organisation and every organisation below it (sites, wards, practices)',
        params: jsonSchemaOf(odsParams),
        response: ok(treeSchema),
      },
    },
    async (req) => organisationTree(await context(req), param(req, 'odsCode')),
  );

  app.post(
    '/api/v1/organisations',
    {
      ...guarded,
      schema: {
        ...write,
        summary: 'Add an organisation below one of yours (an RA Manager’s; a top-level one is the operator’s)',
        body: newOrganisationBody,
        response: { 201: jsonSchemaOf(saved) },
      },
    },
    async (req, reply) => reply.status(201).send(await saveOrganisation(await context(req), req.body ?? {})),
  );

  app.patch(
    '/api/v1/organisations/:odsCode',
    {
      ...guarded,
      schema: {
        ...write,
        summary: 'Change an organisation’s name or type',
        params: jsonSchemaOf(odsParams),
        body: organisationChangeBody,
        response: ok(saved),
      },
    },
    async (req) => updateOrganisation(await context(req), param(req, 'odsCode'), req.body ?? {}),
  );

  app.post(
    '/api/v1/organisations/:odsCode/move',
    {
      ...guarded,
      schema: {
        ...write,
        summary: 'Move an organisation (and its subtree) under another parent: you need power over both',
        params: jsonSchemaOf(odsParams),
        body: organisationMoveBody,
        response: ok(saved),
      },
    },
    async (req) => moveOrganisation(await context(req), param(req, 'odsCode'), req.body ?? {}),
  );

  app.get(
    '/api/v1/organisations/:odsCode/positions',
    {
      schema: {
        ...read,
        summary: 'An organisation’s positions, active ones first',
        params: jsonSchemaOf(odsParams),
        response: ok(z.object({ positions: z.array(positionSchema) })),
      },
    },
    async (req) => ({ positions: await listPositions(await context(req), param(req, 'odsCode')) }),
  );

  app.post(
    '/api/v1/organisations/:odsCode/positions',
    {
      ...guarded,
      schema: {
        ...write,
        summary: 'Create a position in an organisation (RA Managers and Advanced RA Agents)',
        params: jsonSchemaOf(odsParams),
        body: newPositionBody,
        response: { 201: jsonSchemaOf(z.object({ position: positionSchema })) },
      },
    },
    async (req, reply) =>
      reply
        .status(201)
        .send({ position: await createPosition(await context(req), param(req, 'odsCode'), req.body ?? {}) }),
  );

  app.patch(
    '/api/v1/positions/:positionId',
    {
      ...guarded,
      schema: {
        ...write,
        summary:
          'Change a position: its name, job roles, activities, whether it is assignable (changes its holders’ access)',
        params: jsonSchemaOf(positionParams),
        body: positionChangeBody,
        response: ok(z.object({ position: positionSchema })),
      },
    },
    async (req) => ({ position: await updatePosition(await context(req), param(req, 'positionId'), req.body ?? {}) }),
  );

  app.put(
    '/api/v1/positions/:positionId/assignable',
    {
      ...guarded,
      schema: {
        ...write,
        summary: 'Mark a position assignable (sponsors may give it directly) or not',
        params: jsonSchemaOf(positionParams),
        body: jsonSchemaOf(assignableBody, 'input'),
        response: ok(z.object({ position: positionSchema })),
      },
    },
    async (req) => {
      const { assignable } = (req.body ?? {}) as { assignable?: unknown };
      return {
        position: await updatePosition(await context(req), param(req, 'positionId'), { assignable }),
      };
    },
  );
}
