import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { newPositionSchema } from '../domain/access/role-profile.ts';
import { organisationTypes } from '../domain/organisations/organisation.ts';
import { raActorOf } from '../http/api-auth.ts';
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
import { newOrganisationInput, saveOrganisation } from '../services/organisations.ts';
import { listPositions, positionChangeSchema, updatePosition } from '../services/positions.ts';
import { withExamples } from '../services/validation.ts';

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
// Malformed IDs in a path are looked up like any other and not found (404), as before route validation.
const odsParams = z.object({ odsCode: z.string().meta({ description: 'An ODS code', examples: ['RR8'] }) });
const positionParams = z.object({ positionId: z.string().meta({ description: 'A position ID (digits)' }) });

const newOrganisationBody = withExamples(newOrganisationInput, [
  { odsCode: 'RR813', name: 'St James’s Hospital', type: 'site', parentOdsCode: 'RR8' },
]);
const organisationChangeBody = withExamples(organisationChangeSchema, [{ name: 'Leeds Teaching Hospitals' }]);
const organisationMoveBody = withExamples(organisationMoveSchema, [{ parentOdsCode: 'RR8' }]);
const newPositionBody = withExamples(newPositionSchema, [
  { name: 'Ward nurse, ward 7', jobRoles: ['R8001'], activities: ['B0825'], assignable: true },
]);
const positionChangeBody = withExamples(positionChangeSchema, [
  { name: 'Staff nurse, ward 7', activities: ['B0825', 'B0380'] },
]);
const assignableBody = z
  .object({ assignable: z.boolean() })
  .strict()
  .meta({ examples: [{ assignable: true }] });

export function registerOrganisationApi(app: FastifyInstance, deps: WebDeps): void {
  const tags = ['organisations and positions'];
  const read = { tags, security: security.raRead };
  const write = { tags, security: security.raWrite };
  const context = async (req: FastifyRequest) => contextFor(deps, req, await raActorOf(app, deps, req));
  const param = (req: FastifyRequest, name: string): string =>
    String((req.params as Record<string, string | undefined>)[name] ?? '');
  const ok = (schema: z.ZodType) => ({ 200: jsonSchemaOf(schema) });

  app.get(
    '/api/v1/organisations/:odsCode/tree',
    {
      schema: {
        ...read,
        summary: 'An organisation and every organisation below it (sites, wards, practices)',
        params: odsParams,
        response: ok(treeSchema),
      },
    },
    async (req) => organisationTree(await context(req), param(req, 'odsCode')),
  );

  app.post(
    '/api/v1/organisations',
    {
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
      schema: {
        ...write,
        summary: 'Change an organisation’s name or type',
        params: odsParams,
        body: organisationChangeBody,
        response: ok(saved),
      },
    },
    async (req) => updateOrganisation(await context(req), param(req, 'odsCode'), req.body ?? {}),
  );

  app.post(
    '/api/v1/organisations/:odsCode/move',
    {
      schema: {
        ...write,
        summary: 'Move an organisation (and its subtree) under another parent: you need power over both',
        params: odsParams,
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
        params: odsParams,
        response: ok(z.object({ positions: z.array(positionSchema) })),
      },
    },
    async (req) => ({ positions: await listPositions(await context(req), param(req, 'odsCode')) }),
  );

  app.post(
    '/api/v1/organisations/:odsCode/positions',
    {
      schema: {
        ...write,
        summary: 'Create a position in an organisation (RA Managers and Advanced RA Agents)',
        params: odsParams,
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
      schema: {
        ...write,
        summary:
          'Change a position: its name, job roles, activities, whether it is assignable (changes its holders’ access)',
        params: positionParams,
        body: positionChangeBody,
        response: ok(z.object({ position: positionSchema })),
      },
    },
    async (req) => ({ position: await updatePosition(await context(req), param(req, 'positionId'), req.body ?? {}) }),
  );

  app.put(
    '/api/v1/positions/:positionId/assignable',
    {
      schema: {
        ...write,
        summary: 'Mark a position assignable (sponsors may give it directly) or not',
        params: positionParams,
        body: assignableBody,
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
