import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError } from '../domain/errors.ts';
import { isNationalId } from '../domain/identity/user-id.ts';
import { apiActor, csrfUnlessBearer } from '../http/api-auth.ts';
import { contextFor, type WebDeps } from '../http/deps.ts';
import { security } from '../http/openapi.ts';
import { findDuplicates, type SearchQuery, searchPeople } from '../services/people.ts';
import {
  applicationImage,
  approveRequest,
  cardsExpiringReport,
  changeName,
  changeRoleDates,
  endPosition,
  expireRequests,
  getApplication,
  getRequest,
  identityChecksOf,
  leaversReport,
  listApplications,
  listRequests,
  lockedCardsReport,
  markLeaver,
  pendingRequestsReport,
  peopleWithoutRolesReport,
  personPhoto,
  registerWithIdentityCheck,
  rejectApplication,
  rejectRequest,
  rejoin,
  requestAccess,
  restore,
  rolesEndingReport,
  submitApplication,
  suspend,
  verifyApplication,
  verifyIdentity,
  withdrawRequest,
} from '../services/ra.ts';
import { parseInput } from '../services/validation.ts';

/**
 * The Registration Authority API (DOMAIN §5) for the RA console and scripts. Callers are signed-in RA staff at AAL3;
 * what each may do, to whom, is decided by the policy module from their role profiles. State changes carry the CSRF
 * token in a `csrf-token` header. No personal data travels in a URL: people are addressed by user ID, and searches by
 * name, NI number or email are POSTed. The one public route is Apply for Care ID.
 */
export function registerRaApi(app: FastifyInstance, deps: WebDeps): void {
  const tags = ['registration authority'];
  const guarded = { preHandler: csrfUnlessBearer(app) };
  // A photo is at most 5 MB: about 6.7 MB as base64, plus the rest of the form.
  const withPhoto = { ...guarded, bodyLimit: 8 * 1024 * 1024 };

  async function raContext(req: FastifyRequest) {
    return contextFor(deps, req, await apiActor(app, deps, req));
  }
  const param = (req: FastifyRequest, name: string): string =>
    String((req.params as Record<string, string | undefined>)[name] ?? '');
  function userIdParam(req: FastifyRequest): string {
    const userId = param(req, 'userId');
    if (!isNationalId(userId)) throw new AppError('person.invalid_user_id');
    return userId;
  }
  function sendImage(reply: FastifyReply, image: { mediaType: string; bytes: Buffer }) {
    // Served as an image only, never rendered as a document, whatever a browser might sniff.
    return reply
      .type(image.mediaType)
      .header('content-security-policy', "default-src 'none'; sandbox")
      .header('content-disposition', 'inline; filename="photo"')
      .send(image.bytes);
  }

  // -------------------------------------------------------------------------------------------------------------
  // People and identity checks

  app.post(
    '/api/v1/people/search',
    {
      ...guarded,
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Find people by user ID, NI number, email, or family name (+ given name, date of birth)',
        body: searchBody,
      },
    },
    async (req) => {
      const ctx = await raContext(req);
      const body = parseInput(searchSchema, req.body ?? {});
      return searchPeople(ctx, toSearchQuery(body), { limit: body.limit, after: body.after ?? null });
    },
  );

  app.post(
    '/api/v1/people/duplicates',
    {
      ...guarded,
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
      ...guarded,
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
      { ...guarded, schema: { tags, security: security.raWrite, summary, body: reasonBody } },
      async (req) => action(await raContext(req), userIdParam(req), req.body ?? {}),
    );
  }

  app.post(
    '/api/v1/people/:userId/leaver',
    {
      ...guarded,
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Leaver: end every role profile, cancel every card and authenticator, end every session',
        body: reasonBody,
      },
    },
    async (req) => markLeaver(await raContext(req), userIdParam(req), req.body ?? {}),
  );

  // -------------------------------------------------------------------------------------------------------------
  // Apply for Care ID

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
        querystring: {
          type: 'object',
          properties: {
            status: { type: 'string', enum: ['submitted', 'verified', 'rejected'] },
            limit: { type: 'integer' },
          },
        },
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
      ...guarded,
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
      ...guarded,
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Reject an application, with a reason',
        body: requiredReasonBody,
      },
    },
    async (req) => rejectApplication(await raContext(req), param(req, 'applicationId'), req.body ?? {}),
  );

  // -------------------------------------------------------------------------------------------------------------
  // Access requests and role profiles

  app.post(
    '/api/v1/access-requests',
    {
      ...guarded,
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
        querystring: {
          type: 'object',
          properties: {
            status: { type: 'string', enum: ['pending', 'approved', 'rejected', 'withdrawn', 'expired'] },
            odsCode: { type: 'string' },
            mine: { type: 'boolean' },
            limit: { type: 'integer' },
          },
        },
      },
    },
    async (req) => ({ requests: await listRequests(await raContext(req), req.query ?? {}) }),
  );

  app.post(
    '/api/v1/access-requests/expire',
    {
      ...guarded,
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
      ...guarded,
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Approve a pending request: the position is given at once',
        body: {
          type: 'object',
          properties: { expectedVersion: { type: 'integer' }, reason: { type: 'string', maxLength: 1000 } },
        },
      },
    },
    async (req) => approveRequest(await raContext(req), param(req, 'requestId'), req.body ?? {}),
  );

  app.post(
    '/api/v1/access-requests/:requestId/reject',
    {
      ...guarded,
      schema: {
        tags,
        security: security.raWrite,
        summary: 'Reject a pending request, with a reason',
        body: requiredReasonBody,
      },
    },
    async (req) => rejectRequest(await raContext(req), param(req, 'requestId'), req.body ?? {}),
  );

  app.post(
    '/api/v1/access-requests/:requestId/withdraw',
    {
      ...guarded,
      schema: { tags, security: security.raWrite, summary: 'Withdraw a pending request', body: reasonBody },
    },
    async (req) => withdrawRequest(await raContext(req), param(req, 'requestId'), req.body ?? {}),
  );

  app.post(
    '/api/v1/role-profiles/:personRoleId/end',
    {
      ...guarded,
      schema: { tags, security: security.raWrite, summary: 'End a role profile today', body: requiredReasonBody },
    },
    async (req) => endPosition(await raContext(req), param(req, 'personRoleId'), req.body ?? {}),
  );

  app.post(
    '/api/v1/role-profiles/:personRoleId/dates',
    {
      ...guarded,
      schema: {
        tags,
        security: security.raWrite,
        summary: "Change a role profile's dates (temporary staff: bank, agency, locum, students)",
        body: {
          type: 'object',
          required: ['reason'],
          properties: {
            startDate: { type: 'string', format: 'date' },
            endDate: { type: ['string', 'null'], format: 'date' },
            reason: { type: 'string', maxLength: 1000 },
          },
        },
      },
    },
    async (req) => changeRoleDates(await raContext(req), param(req, 'personRoleId'), req.body ?? {}),
  );

  // -------------------------------------------------------------------------------------------------------------
  // Reports (my organisations only)

  const days = { type: 'object', properties: { withinDays: { type: 'integer' }, limit: { type: 'integer' } } };
  const page = { type: 'object', properties: { limit: { type: 'integer' } } };
  const reports = [
    ['pending-requests', 'Pending access requests, soonest to expire first', pendingRequestsReport, page],
    [
      'cards-expiring',
      'Cards whose certificate expires within N days (30 by default; 90 for renewals)',
      cardsExpiringReport,
      days,
    ],
    ['locked-cards', 'Locked smartcards', lockedCardsReport, page],
    ['people-without-roles', 'Active people with no role profile in effect today', peopleWithoutRolesReport, page],
    ['roles-ending', 'Role profiles ending within N days (30 by default)', rolesEndingReport, days],
    ['leavers', 'People who have left', leaversReport, page],
  ] as const;
  for (const [path, summary, run, querystring] of reports) {
    app.get(
      `/api/v1/reports/${path}`,
      { schema: { tags, security: security.raRead, summary, querystring } },
      async (req) => ({
        lines: await run(await raContext(req), req.query ?? {}),
      }),
    );
  }
}

const searchSchema = z.object({
  userId: z.string().max(20).optional(),
  niNumber: z.string().max(20).optional(),
  email: z.string().max(254).optional(),
  familyName: z.string().max(100).optional(),
  givenName: z.string().max(100).optional(),
  dateOfBirth: z.string().max(10).optional(),
  limit: z.number().int().min(1).max(100).optional(),
  after: z.string().max(1000).nullish(),
});

function toSearchQuery(body: z.output<typeof searchSchema>): SearchQuery {
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

// OpenAPI documentation of the bodies. zod validates them for real inside the services.
const str = (maxLength: number) => ({ type: 'string', maxLength });
const date = { type: 'string', format: 'date' };
const reasonBody = { type: 'object', properties: { reason: str(1000) } };
const requiredReasonBody = { ...reasonBody, required: ['reason'] };
const image = {
  type: 'object',
  required: ['data'],
  properties: { data: { type: 'string', contentEncoding: 'base64' } },
};
const personBody = {
  type: 'object',
  required: ['givenName', 'familyName', 'dateOfBirth'],
  properties: {
    title: str(35),
    givenName: str(100),
    middleNames: str(200),
    familyName: str(100),
    preferredName: str(200),
    dateOfBirth: date,
    niNumber: str(20),
    email: str(254),
    mobile: str(20),
  },
};
const searchBody = {
  type: 'object',
  properties: {
    userId: str(12),
    niNumber: str(20),
    email: str(254),
    familyName: str(100),
    givenName: str(100),
    dateOfBirth: date,
    limit: { type: 'integer', minimum: 1, maximum: 100 },
    after: { type: ['string', 'null'] },
  },
};
const documentsBody = {
  type: 'array',
  maxItems: 10,
  items: {
    type: 'object',
    required: ['category', 'type'],
    properties: {
      category: { type: 'string', enum: ['photo_id', 'address', 'other'] },
      type: { type: 'string', description: 'passport, photocard_driving_licence, utility_bill, bank_statement, …' },
      lastChars: { type: 'string', maxLength: 4, description: 'the last 4 characters of the number only' },
      issuedOn: date,
      expiresOn: date,
    },
  },
};
const checkProperties = {
  method: { type: 'string', enum: ['face_to_face', 'remote'] },
  place: str(200),
  documents: documentsBody,
  photo: image,
  notes: str(1000),
};
const checkBody = { type: 'object', required: ['method', 'documents', 'photo'], properties: checkProperties };
const resolutionProperties = {
  duplicateResolution: { type: 'string', description: "'new_person' or 'existing:<user ID>'" },
  confirmedDifferentFrom: { type: 'array', items: str(12), maxItems: 20 },
};
const registerBody = {
  type: 'object',
  required: ['person', 'method', 'documents', 'photo'],
  properties: { person: personBody, ...checkProperties, ...resolutionProperties },
};
const nameBody = {
  type: 'object',
  required: ['evidence'],
  properties: {
    title: str(35),
    givenName: str(100),
    middleNames: str(200),
    familyName: str(100),
    preferredName: str(200),
    evidence: {
      type: 'object',
      required: ['type'],
      properties: { type: { type: 'string' }, lastChars: str(4) },
    },
    reason: str(1000),
  },
};
const applicationBody = {
  type: 'object',
  required: ['applicant', 'odsCode', 'selfie', 'photoIdImage'],
  properties: {
    applicant: personBody,
    odsCode: { type: 'string', description: 'the organisation you are joining' },
    selfie: image,
    photoIdImage: image,
  },
};
const verifyBody = {
  type: 'object',
  required: ['videoCheckedAt', 'documents'],
  properties: {
    videoCheckedAt: { type: 'string', format: 'date-time' },
    notes: str(1000),
    documents: documentsBody,
    ...resolutionProperties,
  },
};
const accessRequestBody = {
  type: 'object',
  required: ['userId', 'positionId', 'startDate', 'reason'],
  properties: {
    userId: str(12),
    positionId: { type: 'string' },
    startDate: date,
    endDate: { type: ['string', 'null'], format: 'date' },
    reason: str(1000),
    expiresInDays: { type: 'integer', minimum: 1, maximum: 90 },
  },
};
