import type { FastifyInstance } from 'fastify';
import { contextFor, type WebDeps } from '../http/deps.ts';
import { security } from '../http/openapi.ts';
import {
  applicationImage,
  getApplication,
  listApplications,
  rejectApplication,
  submitApplication,
  verifyApplication,
} from '../services/ra.ts';
import { applicationBody, applicationQuery, rejectApplicationBody, verifyBody } from './ra-bodies.ts';
import { raApi } from './ra-common.ts';

/** Apply for Care ID (DOMAIN §5.2): the public application, and its review by the RA. */
export function registerApplicationApi(app: FastifyInstance, deps: WebDeps): void {
  const { tags, raContext, param, sendImage } = raApi(app, deps);

  app.post(
    '/api/v1/applications',
    {
      // Public: no session, hence no CSRF token either. Two images of at most 5 MB each, as base64 in JSON.
      bodyLimit: 12 * 1024 * 1024,
      schema: {
        tags,
        security: security.none,
        summary: 'Apply for Care ID (public): your details, an image of your photo ID and a selfie',
        body: applicationBody,
      },
    },
    async (req, reply) => {
      const ctx = contextFor(deps, req, { kind: 'system', id: 'web:apply-for-care-id' });
      return reply.status(201).send(await submitApplication(ctx, req.body ?? {}, { ip: req.ip ?? null }));
    },
  );

  app.get(
    '/api/v1/applications',
    {
      schema: {
        tags,
        security: security.raRead,
        summary: 'Applications to review in my organisations',
        querystring: applicationQuery,
      },
    },
    async (req) => ({ applications: await listApplications(await raContext(req), req.query ?? {}) }),
  );

  app.get(
    '/api/v1/applications/:applicationId',
    { schema: { tags, security: security.raRead, summary: 'One application' } },
    async (req) => getApplication(await raContext(req), param(req, 'applicationId')),
  );

  app.get(
    '/api/v1/applications/:applicationId/images/:photoId',
    {
      schema: {
        tags,
        security: security.raRead,
        summary: "An application's selfie or photo ID image (until it is decided)",
      },
    },
    async (req, reply) =>
      sendImage(
        reply,
        await applicationImage(await raContext(req), param(req, 'applicationId'), param(req, 'photoId')),
      ),
  );

  app.post(
    '/api/v1/applications/:applicationId/verify',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Verify an application after the video check: the person is at level 2',
        body: verifyBody,
      },
    },
    async (req) => verifyApplication(await raContext(req), param(req, 'applicationId'), req.body ?? {}),
  );

  app.post(
    '/api/v1/applications/:applicationId/reject',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Reject an application, with a reason',
        body: rejectApplicationBody,
      },
    },
    async (req) => rejectApplication(await raContext(req), param(req, 'applicationId'), req.body ?? {}),
  );
}
