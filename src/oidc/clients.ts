import { createHash, randomBytes, randomInt } from 'node:crypto';
import { z } from 'zod';
import { AppError } from '../domain/errors.ts';
import { authorize } from '../domain/policy.ts';
import { assertOutboundUris, STRICT_OUTBOUND } from '../http/outbound.ts';
import { appendAudit } from '../services/audit.ts';
import type { ServiceContext } from '../services/context.ts';
import { parseInput } from '../services/validation.ts';
import type { Queryable } from '../storage/database.ts';

/**
 * The relying-party registry: clinical systems that sign their users in through OpenCIS. RA Managers register them
 * (console, API, CLI). Client IDs look like CIS2's: 12 digits + ".apps.national". A client secret is shown once and
 * kept sealed (oidc-provider must compare it); private_key_jwt clients register their public keys (jwks or jwks_uri).
 */
/** The scope of RA API access tokens (client credentials). */
export const API_SCOPE = 'opencis.ra_api';

export const CIS2_SCOPES = [
  'openid',
  'profile',
  'email',
  'nhsperson',
  'associatedorgs',
  'nationalrbacaccess',
  'professionalmemberships',
  'organisationalmemberships',
  'selectedrole',
  'offline_access',
] as const;

const SECRET_PURPOSE = 'oidc.client-secret';
const url = z.url().max(2_000);

export const clientInputSchema = z.object({
  name: z.string().trim().min(1).max(200),
  clientId: z
    .string()
    .regex(/^[A-Za-z0-9._-]{3,100}$/)
    .optional(),
  redirectUris: z.array(url).max(20).default([]),
  /**
   * An API client (OAuth client credentials) instead of a sign-in client: it scripts the RA work of one organisation
   * (and its subtree) with the listed RA activities — B0274 RA agent, B0267 ID checker, B1300 sponsor, B0264 LSA.
   */
  apiAccess: z
    .object({
      odsCode: z.string().regex(/^[A-Z0-9]{3,6}$/),
      activities: z
        .array(z.enum(['B0274', 'B0267', 'B1300', 'B0264']))
        .min(1)
        .max(4),
    })
    .optional(),
  postLogoutRedirectUris: z.array(url).max(20).default([]),
  backchannelLogoutUri: url.optional(),
  tokenEndpointAuthMethod: z
    .enum(['private_key_jwt', 'client_secret_basic', 'client_secret_post'])
    .default('private_key_jwt'),
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(10) }).optional(),
  jwksUri: url.optional(),
  scopes: z.array(z.enum(CIS2_SCOPES)).min(1).default(['openid', 'profile', 'nationalrbacaccess', 'selectedrole']),
  idTokenSignedResponseAlg: z.enum(['RS256', 'ES256', 'PS256']).default('RS256'),
  minimumAal: z.union([z.literal(1), z.literal(2), z.literal(3)]).default(3),
  accessTokenTtlSeconds: z.number().int().min(60).max(86_400).default(3_600),
  refreshTokenTtlSeconds: z
    .number()
    .int()
    .min(0)
    .max(30 * 86_400)
    .default(12 * 3_600),
});
export type ClientInput = z.input<typeof clientInputSchema>;

export interface RegisteredClient {
  clientId: string;
  name: string;
  metadata: Record<string, unknown>;
  minimumAal: 1 | 2 | 3;
  status: 'active' | 'disabled';
}

function newClientId(): string {
  return `${String(randomInt(1, 10))}${Array.from({ length: 11 }, () => randomInt(0, 10)).join('')}.apps.national`;
}

/** Registers a relying party. Returns the client secret once (for client_secret_* methods); it is never shown again. */
export async function registerClient(
  ctx: ServiceContext,
  input: unknown,
): Promise<{ client: RegisteredClient; clientSecret: string | null }> {
  const c = parseInput(clientInputSchema, input);
  // Sign-in clients are national (RA Managers register them); an API client acts for one organisation, so only that
  // organisation's RA Manager may register it (its RA policy statement, scoped to the organisation).
  if (c.apiAccess) authorize(ctx.actor, 'ra:set_policy', { odsCode: c.apiAccess.odsCode });
  else authorize(ctx.actor, 'client:register');
  if (!c.apiAccess && c.redirectUris.length === 0) {
    throw new AppError('request.invalid', {
      problems: [{ field: 'redirectUris', message: 'at least one redirect URI' }],
    });
  }
  if (c.tokenEndpointAuthMethod === 'private_key_jwt' && !c.jwks && !c.jwksUri) {
    throw new AppError('request.invalid', {
      problems: [{ field: 'jwks', message: 'private_key_jwt needs jwks or jwksUri' }],
    });
  }
  for (const u of [...c.redirectUris, ...c.postLogoutRedirectUris]) {
    const parsed = new URL(u);
    if (parsed.hash)
      throw new AppError('request.invalid', { problems: [{ field: 'redirectUris', message: 'no fragments' }] });
    if (parsed.protocol !== 'https:' && parsed.hostname !== 'localhost' && parsed.hostname !== '127.0.0.1') {
      throw new AppError('request.invalid', {
        problems: [{ field: 'redirectUris', message: 'https only (http for localhost)' }],
      });
    }
  }
  // URIs the server itself fetches: refused unless https to public addresses (SSRF; src/http/outbound.ts).
  await assertOutboundUris(ctx.outbound ?? STRICT_OUTBOUND, [
    { field: 'jwksUri', uri: c.jwksUri },
    { field: 'backchannelLogoutUri', uri: c.backchannelLogoutUri },
  ]);
  const clientId = c.clientId ?? newClientId();
  const secret = c.tokenEndpointAuthMethod === 'private_key_jwt' ? null : randomBytes(32).toString('base64url');
  const metadata: Record<string, unknown> = c.apiAccess
    ? {
        client_id: clientId,
        client_name: c.name,
        redirect_uris: [],
        response_types: [],
        grant_types: ['client_credentials'],
        token_endpoint_auth_method: c.tokenEndpointAuthMethod,
        scope: API_SCOPE,
        ...(c.jwks ? { jwks: c.jwks } : {}),
        ...(c.jwksUri ? { jwks_uri: c.jwksUri } : {}),
        'urn:opencis:api_ods': c.apiAccess.odsCode,
        'urn:opencis:api_activities': c.apiAccess.activities,
      }
    : {
        client_id: clientId,
        client_name: c.name,
        redirect_uris: c.redirectUris,
        post_logout_redirect_uris: c.postLogoutRedirectUris,
        response_types: ['code'],
        grant_types: c.scopes.includes('offline_access')
          ? ['authorization_code', 'refresh_token']
          : ['authorization_code'],
        token_endpoint_auth_method: c.tokenEndpointAuthMethod,
        id_token_signed_response_alg: c.idTokenSignedResponseAlg,
        scope: c.scopes.join(' '),
        ...(c.backchannelLogoutUri
          ? { backchannel_logout_uri: c.backchannelLogoutUri, backchannel_logout_session_required: true }
          : {}),
        ...(c.jwks ? { jwks: c.jwks } : {}),
        ...(c.jwksUri ? { jwks_uri: c.jwksUri } : {}),
        'urn:opencis:access_token_ttl': c.accessTokenTtlSeconds,
        'urn:opencis:refresh_token_ttl': c.refreshTokenTtlSeconds,
      };
  const now = ctx.clock.now();
  const client = await ctx.db.transaction(async (tx) => {
    const exists = await tx.query('SELECT 1 FROM oidc_clients WHERE client_id = $1', [clientId]);
    if (exists.rows.length > 0)
      throw new AppError('request.invalid', { problems: [{ field: 'clientId', message: 'already registered' }] });
    await tx.query(
      `INSERT INTO oidc_clients (client_id, name, metadata, secret_sealed, minimum_aal, created_by, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`,
      [
        clientId,
        c.name,
        JSON.stringify(metadata),
        secret ? ctx.sealer.seal(secret, SECRET_PURPOSE) : null,
        c.minimumAal,
        ctx.actor.id,
        now,
      ],
    );
    await appendAudit(tx, ctx, {
      action: 'oidc.client_registered',
      targetType: 'oidc_client',
      targetId: clientId,
      before: null,
      after: { ...metadata, minimumAal: c.minimumAal, secretIssued: secret !== null },
    });
    return { clientId, name: c.name, metadata, minimumAal: c.minimumAal, status: 'active' as const };
  });
  return { client, clientSecret: secret };
}

export async function setClientStatus(
  ctx: ServiceContext,
  clientId: string,
  status: 'active' | 'disabled',
): Promise<void> {
  authorize(ctx.actor, 'client:register');
  await ctx.db.transaction(async (tx) => {
    const { rowCount } = await tx.query('UPDATE oidc_clients SET status = $2, updated_at = $3 WHERE client_id = $1', [
      clientId,
      status,
      ctx.clock.now(),
    ]);
    if (rowCount === 0) throw new AppError('oidc.client_not_found');
    await appendAudit(tx, ctx, {
      action: `oidc.client_${status}`,
      targetType: 'oidc_client',
      targetId: clientId,
      before: null,
      after: { status },
    });
  });
  forgetCachedClient(clientId);
}

export async function listClients(q: Queryable): Promise<RegisteredClient[]> {
  const { rows } = await q.query<{
    client_id: string;
    name: string;
    metadata: Record<string, unknown>;
    minimum_aal: number;
    status: 'active' | 'disabled';
  }>('SELECT client_id, name, metadata, minimum_aal, status FROM oidc_clients ORDER BY created_at');
  return rows.map((r) => ({
    clientId: r.client_id,
    name: r.name,
    metadata: r.metadata,
    minimumAal: r.minimum_aal as 1 | 2 | 3,
    status: r.status,
  }));
}

/** What oidc-provider's Client adapter returns: the metadata, with the secret unsealed, or nothing when disabled. */
/**
 * oidc-provider looks a client up on every request of a flow. Registrations are kept for a few seconds per node, so a
 * disabled client is refused everywhere within CLIENT_CACHE_MS (at once on the node that disabled it).
 */
const CLIENT_CACHE_MS = 10_000;
const clientCache = new Map<string, { at: number; value: Record<string, unknown> | undefined }>();

export function forgetCachedClient(clientId: string): void {
  clientCache.delete(clientId);
}

export async function clientMetadataForProvider(
  q: Queryable,
  sealer: ServiceContext['sealer'],
  clientId: string,
): Promise<Record<string, unknown> | undefined> {
  const cached = clientCache.get(clientId);
  if (cached && Date.now() - cached.at < CLIENT_CACHE_MS) return cached.value;
  const value = await loadClientMetadata(q, sealer, clientId);
  if (clientCache.size > 5_000) clientCache.clear();
  clientCache.set(clientId, { at: Date.now(), value });
  return value;
}

async function loadClientMetadata(
  q: Queryable,
  sealer: ServiceContext['sealer'],
  clientId: string,
): Promise<Record<string, unknown> | undefined> {
  const { rows } = await q.query<{
    metadata: Record<string, unknown>;
    secret_sealed: string | null;
    status: string;
    minimum_aal: number;
  }>('SELECT metadata, secret_sealed, status, minimum_aal FROM oidc_clients WHERE client_id = $1', [clientId]);
  const row = rows[0];
  if (row?.status !== 'active') return undefined;
  const metadata =
    typeof row.metadata === 'string' ? (JSON.parse(row.metadata) as Record<string, unknown>) : row.metadata;
  return {
    ...metadata,
    'urn:opencis:minimum_aal': row.minimum_aal,
    ...(row.secret_sealed ? { client_secret: sealer.open(row.secret_sealed, SECRET_PURPOSE).toString() } : {}),
  };
}

export function secretFingerprint(secret: string): string {
  return createHash('sha256').update(secret).digest('hex').slice(0, 12);
}
