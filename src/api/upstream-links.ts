import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError } from '../domain/errors.ts';
import { isNationalId } from '../domain/identity/user-id.ts';
import { authorize } from '../domain/policy.ts';
import { raActorOf } from '../http/api-auth.ts';
import { contextFor, type WebDeps } from '../http/deps.ts';
import { security } from '../http/openapi.ts';
import { personTarget } from '../services/targets.ts';
import { activeUpstreamProvider } from '../services/upstream-idps.ts';
import { linkUpstreamAccount, unlinkUpstreamAccount, upstreamLinksOf } from '../services/upstream-links.ts';
import { parseInput } from '../services/validation.ts';

/**
 * A person's links to accounts at upstream identity providers (federated sign-in, AAL2_NHSMAIL), for RA staff: an RA
 * with power over the person (authenticator:enrol, scoped to the person's organisations) links the account the person
 * shows them (its subject: `sub`, or for Entra ID the object ID `oid`, as the provider is registered), lists and removes
 * links. Removing a link ends the sessions signed in through it.
 */
const linkBody = z.object({ idpId: z.string().max(40), subject: z.string().trim().min(1).max(255) });

export function registerUpstreamLinkApi(app: FastifyInstance, deps: WebDeps): void {
  const tags = ['authenticators'];

  function userIdParam(req: FastifyRequest): string {
    const userId = (req.params as { userId?: string }).userId ?? '';
    if (!isNationalId(userId)) throw new AppError('person.invalid_user_id');
    return userId;
  }

  app.get(
    '/api/v1/people/:userId/upstream-links',
    {
      schema: {
        tags,
        security: security.raRead,
        summary: "A person's linked accounts at upstream identity providers (e.g. NHSmail)",
      },
    },
    async (req) => {
      const ctx = contextFor(deps, req, await raActorOf(app, deps, req));
      const userId = userIdParam(req);
      authorize(ctx.actor, 'person:read', await personTarget(deps.repos, deps.clock, userId));
      return { links: await upstreamLinksOf(deps.repos, userId) };
    },
  );

  app.post(
    '/api/v1/people/:userId/upstream-links',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary: "Link an account at an upstream identity provider to the person's record (sign-in at AAL2)",
        body: linkBody,
      },
    },
    async (req, reply) => {
      const ctx = contextFor(deps, req, await raActorOf(app, deps, req));
      const userId = userIdParam(req);
      const body = parseInput(linkBody, req.body ?? {});
      // Policy first: who may not link for this person learns nothing about the providers.
      authorize(ctx.actor, 'authenticator:enrol', await personTarget(deps.repos, deps.clock, userId));
      const idp = await activeUpstreamProvider(ctx, body.idpId);
      const link = await linkUpstreamAccount(ctx, idp, { userId, subject: body.subject });
      return reply.status(201).send({ link });
    },
  );

  app.delete(
    '/api/v1/people/:userId/upstream-links/:linkId',
    {
      schema: { tags, security: security.raWrite, summary: 'Remove a linked upstream account (its sessions end)' },
    },
    async (req, reply) => {
      const ctx = contextFor(deps, req, await raActorOf(app, deps, req));
      const linkId = String((req.params as { linkId?: string }).linkId ?? '').slice(0, 40);
      await unlinkUpstreamAccount(ctx, userIdParam(req), linkId);
      return reply.status(204).send();
    },
  );
}
