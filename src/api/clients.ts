import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError } from '../domain/errors.ts';
import { mayAnywhere } from '../domain/policy.ts';
import { apiActor, csrfCheck } from '../http/api-auth.ts';
import { contextFor, rememberCaller, requireApiSession, type WebDeps } from '../http/deps.ts';
import { jsonSchemaOf, security } from '../http/openapi.ts';
import { SESSION_COOKIE } from '../http/web.ts';
import { CIS2_SCOPES, clientInputSchema, listClients, registerClient, setClientStatus } from '../services/clients.ts';
import type { ServiceContext } from '../services/context.ts';
import { personActorWithPowers } from '../services/ra-powers.ts';

/**
 * The relying-party registry API (clinical systems that sign their users in through OpenCIS, and organisations' RA API
 * clients). Callers are RA Managers signed in at AAL3; a client belongs to an organisation and its RA Managers
 * register and manage it in their subtree only (policy statements `client:register`, `client:manage`); the operator's
 * national clients are the operator's alone. State changes carry the CSRF token in a `csrf-token` header. A client secret is returned once, by the registration, and
 * never again: listings carry the metadata only.
 */
const registeredClientSchema = z.object({
  clientId: z.string(),
  name: z.string(),
  odsCode: z.string().nullable().describe('The organisation that owns it; null for the operator’s national clients'),
  status: z.enum(['active', 'disabled']),
  minimumAal: z.union([z.literal(1), z.literal(2), z.literal(3)]),
  metadata: z
    .object({
      client_id: z.string(),
      client_name: z.string(),
      redirect_uris: z.array(z.string()),
      // API clients (client credentials) sign nobody in: no logout URIs, no ID tokens.
      post_logout_redirect_uris: z.array(z.string()).optional(),
      grant_types: z.array(z.string()),
      token_endpoint_auth_method: z.enum(['private_key_jwt', 'client_secret_basic', 'client_secret_post']),
      id_token_signed_response_alg: z.enum(['RS256', 'ES256', 'PS256']).optional(),
      scope: z.string(),
      backchannel_logout_uri: z.string().optional(),
      jwks_uri: z.string().optional(),
    })
    .catchall(z.unknown())
    .describe('The OpenID Connect client metadata oidc-provider is given (never the secret)'),
});

const CLIENT_ID = /^[A-Za-z0-9._-]{3,100}$/;

export function registerClientApi(app: FastifyInstance, deps: WebDeps): void {
  const tags = ['relying parties'];
  // Before route validation: CSRF for cookie-authenticated changes (none at all is told to authenticate), then the
  // RA Manager (a bearer token is refused below).
  const csrf = csrfCheck(app);
  const managers = new WeakMap<FastifyRequest, ServiceContext>();
  const asManager = async (req: FastifyRequest) => {
    managers.set(req, await managerContext(req));
  };
  const reader = { preValidation: asManager };
  const guarded = {
    preValidation: async (req: FastifyRequest, reply: FastifyReply) => {
      await csrf(req, reply);
      await asManager(req);
    },
  };
  const manager = async (req: FastifyRequest) => managers.get(req) ?? managerContext(req);
  const clientJson = jsonSchemaOf(registeredClientSchema);

  /**
   * An RA Manager at AAL3, who may register clients somewhere (the services decide on each client; the CLI operator
   * reaches the same services without HTTP). API clients never manage clients.
   */
  async function managerContext(req: FastifyRequest) {
    if (req.headers.authorization !== undefined && req.cookies?.[SESSION_COOKIE] === undefined) {
      // An API client (its token checked: a bad one is told to authenticate) is a script, never an RA Manager.
      rememberCaller(deps, req, await apiActor(app, deps, req));
      throw new AppError('auth.forbidden', { statement: 'client:register' });
    }
    const session = await requireApiSession(deps, req, 3);
    const ctx = contextFor(deps, req, await personActorWithPowers(deps.repos, session.userId, deps.clock.now()));
    if (!mayAnywhere(ctx.actor, 'client:register'))
      throw new AppError('auth.forbidden', { statement: 'client:register' });
    return ctx;
  }
  function clientIdParam(req: FastifyRequest): string {
    const clientId = String((req.params as { clientId?: string }).clientId ?? '');
    if (!CLIENT_ID.test(clientId)) throw new AppError('oidc.client_not_found');
    return clientId;
  }

  app.get(
    '/api/v1/clients',
    {
      ...reader,
      schema: {
        tags,
        security: security.sessionRead,
        summary: 'The registered relying parties (OpenID Connect clients), oldest first',
        response: { 200: { type: 'object', properties: { clients: { type: 'array', items: clientJson } } } },
      },
    },
    async (req) => {
      const ctx = await manager(req);
      return { clients: await listClients(ctx) };
    },
  );

  app.post(
    '/api/v1/clients',
    {
      ...guarded,
      schema: {
        tags,
        security: security.sessionWrite,
        summary: 'Register a relying party; a client secret (client_secret_* methods) is returned this once only',
        description: `Client IDs look like CIS2's (12 digits + ".apps.national") unless one is given. Scopes: ${CIS2_SCOPES.join(', ')}. private_key_jwt clients register their public keys (jwks or jwksUri).`,
        body: clientInputSchema,
        response: {
          201: {
            type: 'object',
            properties: {
              client: clientJson,
              clientSecret: {
                type: ['string', 'null'],
                description: 'Shown once; null for private_key_jwt clients',
              },
            },
          },
        },
      },
    },
    async (req, reply) => {
      const ctx = await manager(req);
      const res = await registerClient(ctx, req.body ?? {});
      return reply.status(201).send(res);
    },
  );

  for (const [verb, status] of [
    ['disable', 'disabled'],
    ['enable', 'active'],
  ] as const) {
    app.post(
      `/api/v1/clients/:clientId/${verb}`,
      {
        ...guarded,
        schema: {
          tags,
          security: security.sessionWrite,
          summary:
            verb === 'disable'
              ? 'Disable a relying party: it can no longer sign anyone in, redeem codes or call userinfo'
              : 'Enable a disabled relying party again',
          params: z.object({ clientId: z.string() }),
          response: {
            200: {
              type: 'object',
              properties: { clientId: { type: 'string' }, status: { type: 'string', enum: ['active', 'disabled'] } },
            },
          },
        },
      },
      async (req) => {
        const ctx = await manager(req);
        const clientId = clientIdParam(req);
        await setClientStatus(ctx, clientId, status);
        return { clientId, status };
      },
    );
  }
}
