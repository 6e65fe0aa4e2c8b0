/**
 * The OpenAPI description of the REST API as an integrator generates a client from it (issue 18): how a call
 * authenticates (security schemes named as the code reads them), which of them each operation accepts, and the one
 * JSON error body on every 4xx/5xx answer. Routes declare their `security` with the constants below; the document is
 * completed here, so no operation can go without its error responses.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { type ErrorCode, errorCatalogue, serverErrorCodes } from '../domain/errors.ts';
import { API_SCOPE } from '../services/clients.ts';
import { CSRF_COOKIE, SESSION_COOKIE } from './web.ts';

/** The header a cookie-authenticated change carries its CSRF token in (@fastify/csrf-protection reads it). */
export const CSRF_HEADER = 'csrf-token';

type SecurityRequirement = Record<string, string[]>;

export function securitySchemes(tokenUrl: string) {
  return {
    session: {
      type: 'apiKey' as const,
      in: 'cookie' as const,
      name: SESSION_COOKIE,
      description:
        'A signed-in session of OpenCIS’s own sign-in. RA operations need it at AAL3 (smartcard or security key); ' +
        `the holder’s own card (/api/v1/me) at AAL2. Changes need the \`${CSRF_HEADER}\` header too.`,
    },
    csrfCookie: {
      type: 'apiKey' as const,
      in: 'cookie' as const,
      name: CSRF_COOKIE,
      description: `The CSRF secret the server set with the page the token came from; the \`${CSRF_HEADER}\` header is checked against it.`,
    },
    csrfToken: {
      type: 'apiKey' as const,
      in: 'header' as const,
      name: CSRF_HEADER,
      description:
        'The CSRF token of the signed-in page (`data-csrf`), on every cookie-authenticated change. A bearer-token call needs none.',
    },
    clientCredentials: {
      type: 'oauth2' as const,
      description:
        'An organisation’s API client, registered by its RA Manager: an access token from the client-credentials grant, ' +
        'sent as `Authorization: Bearer …`. It may do what its registered activities allow in its organisation’s subtree, ' +
        'never more than its registrar holds now.',
      flows: {
        clientCredentials: {
          tokenUrl,
          scopes: { [API_SCOPE]: 'The Registration Authority API, within the client’s organisation subtree' },
        },
      },
    },
  };
}

/** Which authentications each operation accepts (OpenAPI `security`: any one of the listed requirements). */
export const security: Record<'raRead' | 'raWrite' | 'sessionRead' | 'sessionWrite' | 'none', SecurityRequirement[]> = {
  /** RA staff in the browser, or an organisation's API client: reads. */
  raRead: [{ session: [] }, { clientCredentials: [API_SCOPE] }],
  /** RA staff in the browser (with the CSRF token), or an organisation's API client: changes. */
  raWrite: [{ session: [], csrfCookie: [], csrfToken: [] }, { clientCredentials: [API_SCOPE] }],
  /** A signed-in person only (RA Managers' relying parties, audit, their own card): reads. */
  sessionRead: [{ session: [] }],
  /** A signed-in person only, with the CSRF token: changes. */
  sessionWrite: [{ session: [], csrfCookie: [], csrfToken: [] }],
  /** No credentials: public, or proven by what the body carries (a card agent's one-time grant). */
  none: [],
};

const errorExample = (code: ErrorCode, details?: unknown) => ({
  error: { code, message: errorCatalogue[code].message, ...(details === undefined ? {} : { details }) },
});

/** The JSON error body every refusal and failure answers with (src/http/errors.ts, errorBody). */
export const errorSchema = {
  type: 'object',
  required: ['error'],
  additionalProperties: false,
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      additionalProperties: false,
      properties: {
        code: {
          type: 'string',
          description:
            'A stable dotted code from the catalogue (src/domain/errors.ts, listed in docs/errors.md): scripts may depend on it.',
          enum: [...serverErrorCodes],
        },
        message: { type: 'string', description: 'For people: what went wrong and what to do. It may change.' },
        details: {
          description:
            'What the code needs to be acted on, when it needs anything: e.g. `problems` (field, message) for `request.invalid`, `statement` for `auth.forbidden`.',
        },
      },
    },
  },
  examples: [
    errorExample('auth.forbidden', { statement: 'organisation:update' }),
    errorExample('request.invalid', { problems: [{ field: 'name', message: 'Required' }] }),
  ],
};

const errorResponses: Record<string, { description: string; example: ErrorCode; details?: unknown }> = {
  '400': {
    description: 'The request is not valid',
    example: 'request.invalid',
    details: { problems: [{ field: 'name', message: 'Required' }] },
  },
  '401': { description: 'No credentials, or credentials that are not (or no longer) valid', example: 'auth.required' },
  '403': {
    description:
      'Not allowed: the policy refused it, the session is below the level needed, or the CSRF token is missing',
    example: 'auth.forbidden',
    details: { statement: 'person:read' },
  },
  '404': { description: 'Nothing with that identifier', example: 'request.not_found' },
  '409': { description: 'In a state that does not allow it, or already exists', example: 'organisation.exists' },
  '413': { description: 'The body is too large', example: 'request.too_large' },
  '415': { description: 'The body is not JSON', example: 'request.unsupported_media_type' },
  '429': { description: 'Too many requests', example: 'request.rate_limited' },
  '500': {
    description: 'An unexpected failure (logged on the server; nothing of it is shown)',
    example: 'internal.error',
  },
  '503': {
    description: 'A store (PostgreSQL, Redis) is unavailable or read-only: try again after Retry-After seconds',
    example: 'service.unavailable',
  },
};

function errorResponse(status: string) {
  const r = errorResponses[status]!;
  const headers: Record<string, unknown> = {};
  if (status === '401') {
    headers['WWW-Authenticate'] = {
      description:
        'The credentials the operation accepts: `Bearer realm="OpenCIS", scope="opencis.ra_api"` for an API client, ' +
        `\`Cookie realm="OpenCIS", cookie-name="${SESSION_COOKIE}"\` for a signed-in session.`,
      schema: { type: 'string' },
    };
  }
  if (status === '503') headers['Retry-After'] = { description: 'Seconds to wait', schema: { type: 'integer' } };
  return {
    description: r.description,
    ...(Object.keys(headers).length > 0 ? { headers } : {}),
    content: {
      'application/json': {
        schema: { $ref: '#/components/schemas/Error' },
        example: errorExample(r.example, r.details),
      },
    },
  };
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;
const CHANGES = new Set(['put', 'post', 'delete', 'patch']);

// biome-ignore lint/suspicious/noExplicitAny: the OpenAPI document is plain JSON walked by key
type Json = any;

/**
 * Completes the generated document: the error schema and responses in components, and on every /api operation the
 * error responses it can give (401 only where credentials are needed; 409, 413 and 415 only on changes).
 */
export function completeOpenApi(doc: Json): Json {
  doc.components ??= {};
  doc.components.schemas = { ...doc.components.schemas, Error: errorSchema };
  doc.components.responses = Object.fromEntries(Object.keys(errorResponses).map((s) => [s, errorResponse(s)]));
  for (const [path, item] of Object.entries<Json>(doc.paths ?? {})) {
    if (!path.startsWith('/api/')) continue;
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const secured = Array.isArray(op.security) && op.security.length > 0;
      const statuses = Object.keys(errorResponses).filter(
        (s) => (s !== '401' || secured) && (CHANGES.has(method) || !['409', '413', '415'].includes(s)),
      );
      op.responses ??= {};
      for (const s of statuses) op.responses[s] = { $ref: `#/components/responses/${s}` };
      // Any other 4xx/5xx (a card that is locked: 423) has the same body.
      op.responses['4XX'] = {
        description: 'Another refusal, with its code',
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      };
      op.responses['5XX'] = {
        description: 'Another failure, with its code',
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      };
    }
  }
  return doc;
}

/**
 * RFC 9110 §11.6.1: a 401 says how to authenticate. The challenges are the route's own security schemes: Bearer for an
 * API client (RFC 6750, with the scope it needs), and the session cookie (the Cookie scheme of
 * draft-broyer-http-cookie-auth, naming the cookie and where to sign in) for a person.
 */
export function challengesFor(req: FastifyRequest): string[] {
  const declared = (req.routeOptions.schema as { security?: SecurityRequirement[] } | undefined)?.security;
  const accepted = declared && declared.length > 0 ? declared : security.raRead;
  const challenges: string[] = [];
  if (accepted.some((r) => 'clientCredentials' in r)) {
    challenges.push(`Bearer realm="OpenCIS", scope="${API_SCOPE}"`);
  }
  if (accepted.some((r) => 'session' in r)) {
    challenges.push(`Cookie realm="OpenCIS", cookie-name="${SESSION_COOKIE}", form-action="/signin"`);
  }
  return challenges;
}

/** Every 401 of the REST API carries its WWW-Authenticate challenges. */
export function installAuthChallenges(app: FastifyInstance): void {
  app.addHook('onSend', async (req, reply) => {
    if (reply.statusCode !== 401 || !req.url.startsWith('/api/') || reply.hasHeader('www-authenticate')) return;
    const challenges = challengesFor(req);
    if (challenges.length > 0) reply.header('www-authenticate', challenges.join(', '));
  });
}

/** A zod schema as the JSON Schema of a route (for OpenAPI and the response serialiser): no `$schema` keyword. */
export function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output' = 'output'): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  // zod leaves a schema's own metadata out of its input's JSON Schema when a field transforms: put it back.
  const { id: _id, ...meta } = z.globalRegistry.get(schema) ?? {};
  return { ...rest, ...meta };
}
