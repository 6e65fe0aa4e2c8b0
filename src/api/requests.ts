import type { FastifyInstance } from 'fastify';
import type { WebDeps } from '../http/deps.ts';
import { security } from '../http/openapi.ts';
import {
  approveRequest,
  expireRequests,
  getRequest,
  listRequests,
  rejectRequest,
  requestAccess,
  withdrawRequest,
} from '../services/ra.ts';
import { accessRequestBody, approveBody, decisionBody, requestQuery, withdrawBody } from './ra-bodies.ts';
import { raApi } from './ra-common.ts';

/** Access requests (DOMAIN §5.3): ask for a position for a person, approve, reject, withdraw, expire. */
export function registerAccessRequestApi(app: FastifyInstance, deps: WebDeps): void {
  const { tags, raContext, param } = raApi(app, deps);

  app.post(
    '/api/v1/access-requests',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Request a position for a person (applied at once when you may give it directly)',
        body: accessRequestBody,
      },
    },
    async (req, reply) => reply.status(201).send(await requestAccess(await raContext(req), req.body ?? {})),
  );

  app.get(
    '/api/v1/access-requests',
    {
      schema: {
        tags,
        security: security.raRead,
        summary: 'Access requests I made, about me, or in my organisations',
        querystring: requestQuery,
      },
    },
    async (req) => ({ requests: await listRequests(await raContext(req), req.query ?? {}) }),
  );

  app.post(
    '/api/v1/access-requests/expire',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Expire pending requests past their expiry (normally a scheduled job)',
      },
    },
    async (req) => ({ expired: await expireRequests(await raContext(req)) }),
  );

  app.get(
    '/api/v1/access-requests/:requestId',
    { schema: { tags, security: security.raRead, summary: 'A request and its history' } },
    async (req) => getRequest(await raContext(req), param(req, 'requestId')),
  );

  app.post(
    '/api/v1/access-requests/:requestId/approve',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Approve a pending request: the position is given at once',
        body: approveBody,
      },
    },
    async (req) => approveRequest(await raContext(req), param(req, 'requestId'), req.body ?? {}),
  );

  app.post(
    '/api/v1/access-requests/:requestId/reject',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Reject a pending request, with a reason',
        body: decisionBody,
      },
    },
    async (req) => rejectRequest(await raContext(req), param(req, 'requestId'), req.body ?? {}),
  );

  app.post(
    '/api/v1/access-requests/:requestId/withdraw',
    {
      schema: { tags, security: security.raWrite, summary: 'Withdraw a pending request', body: withdrawBody },
    },
    async (req) => withdrawRequest(await raContext(req), param(req, 'requestId'), req.body ?? {}),
  );
}
