import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import { AppError } from '../domain/errors.ts';
import type { WebDeps } from '../http/deps.ts';
import { security } from '../http/openapi.ts';
import { findDuplicates, type SearchQuery, searchPeople } from '../services/people.ts';
import {
  changeName,
  identityChecksOf,
  markLeaver,
  personPhoto,
  registerWithIdentityCheck,
  rejoin,
  restore,
  suspend,
  verifyIdentity,
} from '../services/ra.ts';
import { parseInput } from '../services/validation.ts';
import { checkBody, leaverBody, nameBody, personBody, reasonBody, registerBody, searchBody } from './ra-bodies.ts';
import { raApi } from './ra-common.ts';

/** People and their identity checks: search, duplicates, registration, identity checks, photo, name, status. */
export function registerPeopleApi(app: FastifyInstance, deps: WebDeps): void {
  const { tags, withPhoto, raContext, userIdParam, sendImage } = raApi(app, deps);

  app.post(
    '/api/v1/people/search',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Find people by user ID, NI number, email, or family name (+ given name, date of birth)',
        body: searchBody,
      },
    },
    async (req) => {
      const ctx = await raContext(req);
      const body = parseInput(searchBody, req.body ?? {});
      return searchPeople(ctx, toSearchQuery(body), { limit: body.limit, after: body.after ?? null });
    },
  );

  app.post(
    '/api/v1/people/duplicates',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Duplicate candidates for a would-be new person (before registering)',
        body: personBody,
      },
    },
    async (req) => ({ candidates: await findDuplicates(await raContext(req), req.body ?? {}) }),
  );

  app.post(
    '/api/v1/identity-checks',
    {
      ...withPhoto,
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Register a person with an identity check (face to face: level 3; remote: level 2)',
        body: registerBody,
      },
    },
    async (req, reply) => {
      const res = await registerWithIdentityCheck(await raContext(req), req.body ?? {});
      return reply.status(res.created ? 201 : 200).send(res);
    },
  );

  app.post(
    '/api/v1/people/:userId/identity-checks',
    {
      ...withPhoto,
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Record an identity check for a registered person (raises their level)',
        body: checkBody,
      },
    },
    async (req, reply) => {
      const ctx = await raContext(req);
      return reply.status(201).send(await verifyIdentity(ctx, userIdParam(req), req.body ?? {}));
    },
  );

  app.get(
    '/api/v1/people/:userId/identity-checks',
    {
      schema: {
        tags,
        security: security.raRead,
        summary: "A person's identity checks (documents seen, never their numbers)",
      },
    },
    async (req) => ({ checks: await identityChecksOf(await raContext(req), userIdParam(req)) }),
  );

  app.get(
    '/api/v1/people/:userId/photo',
    { schema: { tags, security: security.raRead, summary: "A person's photo" } },
    async (req, reply) => sendImage(reply, await personPhoto(await raContext(req), userIdParam(req))),
  );

  app.post(
    '/api/v1/people/:userId/name',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Change a name, with evidence (the user ID stays)',
        body: nameBody,
      },
    },
    async (req) => changeName(await raContext(req), userIdParam(req), req.body ?? {}),
  );

  const statusRoutes = [
    ['suspend', 'Suspend a person: no access until restored; their sessions end', suspend],
    ['restore', 'Restore a suspended person', restore],
    ['rejoin', 'Take back a leaver under the same user ID', rejoin],
  ] as const;
  for (const [path, summary, action] of statusRoutes) {
    app.post(
      `/api/v1/people/:userId/${path}`,
      { schema: { tags, security: security.raWrite, summary, body: reasonBody } },
      async (req) => action(await raContext(req), userIdParam(req), req.body ?? {}),
    );
  }

  app.post(
    '/api/v1/people/:userId/leaver',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Leaver: end every role profile, cancel every card and authenticator, end every session',
        body: leaverBody,
      },
    },
    async (req) => markLeaver(await raContext(req), userIdParam(req), req.body ?? {}),
  );
}

function toSearchQuery(body: z.output<typeof searchBody>): SearchQuery {
  if (body.userId) return { userId: body.userId };
  if (body.niNumber) return { niNumber: body.niNumber };
  if (body.email) return { email: body.email };
  if (body.familyName) {
    return {
      familyName: body.familyName,
      ...(body.givenName ? { givenName: body.givenName } : {}),
      ...(body.dateOfBirth ? { dateOfBirth: body.dateOfBirth } : {}),
    };
  }
  throw new AppError('request.invalid', {
    problems: [{ field: '(body)', message: 'give a user ID, NI number, email or family name' }],
  });
}
