import { createHash, randomBytes, randomInt } from 'node:crypto';
import { z } from 'zod';
import { type AcrValue, supportedAcrValues } from '../domain/credentials/acr.ts';
import { AppError } from '../domain/errors.ts';
import { isNationalId } from '../domain/identity/user-id.ts';
import { authorize, homeOrganisationsWhere, organisationsWhere, type Target } from '../domain/policy.ts';
import { assertOutboundUris, STRICT_OUTBOUND } from '../net/outbound.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { appendAudit } from './audit.ts';
import { CLIENT_AUTH_ALGS, publicJwkSetSchema } from './client-keys.ts';
import type { ServiceContext } from './context.ts';
import { parseInput } from './validation.ts';

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
  // CIS2's scope for changing role (with prompt=login): the role list is shown again, as for selectedrole.
  'changedrole',
  'offline_access',
] as const;

/**
 * The scopes a relying party may ask for when its registration names none: what CIS2 applications ask for (NHS
 * England's manage-breast-screening: openid profile email nhsperson associatedorgs; manage-vaccinations-in-schools:
 * openid profile email nationalrbacaccess associatedorgs, plus selectedrole or changedrole), so an unmodified CIS2
 * client is not refused invalid_scope. Refresh tokens (offline_access) and the membership scopes are asked for.
 */
export const DEFAULT_SCOPES = [
  'openid',
  'profile',
  'email',
  'nhsperson',
  'associatedorgs',
  'nationalrbacaccess',
  'selectedrole',
  'changedrole',
] as const satisfies readonly (typeof CIS2_SCOPES)[number][];

const SECRET_PURPOSE = 'oidc.client-secret';
const url = z.url().max(2_000);

/** A registration's fields, unchecked as a whole (edits pick from it; registration adds the cross-field checks). */
export const clientInputFields = z.object({
  name: z.string().trim().min(1).max(200),
  /**
   * The organisation that owns it: its RA Managers (in that organisation's subtree) register and manage it. Required
   * when an RA Manager registers a relying party in more than one organisation; an API client's is its `apiAccess`
   * organisation. Absent for the operator's national clients (CLI), which only the operator manages.
   */
  odsCode: z
    .string()
    .regex(/^[A-Z0-9]{3,6}$/)
    .optional(),
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
  jwks: publicJwkSetSchema.optional(),
  jwksUri: url.optional(),
  /** private_key_jwt only: the one algorithm its assertions must use. Unset: any of RS256, RS512, PS256, ES256. */
  tokenEndpointAuthSigningAlg: z.enum(CLIENT_AUTH_ALGS).optional(),
  scopes: z
    .array(z.enum(CIS2_SCOPES))
    .min(1)
    .default([...DEFAULT_SCOPES]),
  idTokenSignedResponseAlg: z.enum(['RS256', 'ES256', 'PS256']).default('RS256'),
  /**
   * Where OpenCIS may be stricter than CIS2: PKCE demanded of this (confidential) client too. CIS2 supports PKCE but
   * does not require it of confidential clients, so the default is off: an unmodified CIS2 client works. A client that
   * sends a code_challenge is always held to it.
   */
  requirePkce: z.boolean().default(false),
  /**
   * The least level a session must reach for this client, whatever acr_values it sends — where OpenCIS may be stricter
   * than CIS2, which has no such floor. Default 2 (CIS2 offers AAL1 only in test environments): the client's own
   * acr_values decide, as at CIS2.
   */
  minimumAal: z.union([z.literal(1), z.literal(2), z.literal(3)]).default(2),
  /** What a request naming no acr_values asks for (client metadata default_acr_values); CIS2's default is AAL3_ANY. */
  defaultAcrValues: z
    .array(z.enum(supportedAcrValues as [AcrValue, ...AcrValue[]]))
    .min(1)
    .max(5)
    .default(['AAL3_ANY']),
  accessTokenTtlSeconds: z.number().int().min(60).max(86_400).default(3_600),
  refreshTokenTtlSeconds: z
    .number()
    .int()
    .min(0)
    .max(30 * 86_400)
    .default(12 * 3_600),
});

export const clientInputSchema = clientInputFields.superRefine((c, zctx) => {
  const alg = c.tokenEndpointAuthSigningAlg;
  if (!alg) return;
  if (c.tokenEndpointAuthMethod !== 'private_key_jwt') {
    zctx.addIssue({ code: 'custom', path: ['tokenEndpointAuthSigningAlg'], message: 'only for private_key_jwt' });
    return;
  }
  const kty = alg === 'ES256' ? 'EC' : 'RSA';
  if (c.jwks && !c.jwks.keys.some((k) => k.kty === kty && (k.alg === undefined || k.alg === alg))) {
    zctx.addIssue({ code: 'custom', path: ['jwks'], message: `no registered key can sign ${alg} assertions` });
  }
});
export type ClientInput = z.input<typeof clientInputSchema>;

export interface RegisteredClient {
  clientId: string;
  name: string;
  /** The owning organisation; null for the operator's. */
  odsCode: string | null;
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
  const odsCode = ownerOf(ctx, c);
  // A client belongs to an organisation whose RA Managers register it (policy: `client:register` in that subtree);
  // an API client acts for that organisation, with at most its registrar's powers (policy, at each call).
  authorize(ctx.actor, 'client:register', { kind: 'client', client: { odsCode, lockedByOperator: false } });
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
        ...(c.tokenEndpointAuthSigningAlg ? { token_endpoint_auth_signing_alg: c.tokenEndpointAuthSigningAlg } : {}),
        'urn:opencis:require_pkce': c.requirePkce,
        default_acr_values: c.defaultAcrValues,
        'urn:opencis:access_token_ttl': c.accessTokenTtlSeconds,
        'urn:opencis:refresh_token_ttl': c.refreshTokenTtlSeconds,
      };
  const now = ctx.clock.now();
  const client = await ctx.transaction(async (tx) => {
    if (odsCode !== null) {
      if (!(await tx.organisations.findOrganisation(odsCode))) throw new AppError('organisation.not_found');
    }
    if (await tx.clients.clientExists(clientId))
      throw new AppError('request.invalid', { problems: [{ field: 'clientId', message: 'already registered' }] });
    await tx.clients.insertClient({
      clientId,
      name: c.name,
      metadata,
      secretSealed: secret ? ctx.sealer.seal(secret, SECRET_PURPOSE) : null,
      minimumAal: c.minimumAal,
      createdBy: ctx.actor.id,
      at: now,
      odsCode,
    });
    await appendAudit(tx, ctx, {
      action: 'oidc.client_registered',
      targetType: 'oidc_client',
      targetId: clientId,
      before: null,
      after: { ...metadata, odsCode, minimumAal: c.minimumAal, secretIssued: secret !== null },
    });
    return { clientId, name: c.name, odsCode, metadata, minimumAal: c.minimumAal, status: 'active' as const };
  });
  return { client, clientSecret: secret };
}

/**
 * The organisation a new client belongs to: an API client's `apiAccess` organisation; else the one named; else, for an
 * RA Manager, the one organisation where they may register clients (several: they must name it). The operator's
 * clients may belong to none.
 */
function ownerOf(ctx: ServiceContext, c: z.output<typeof clientInputSchema>): string | null {
  const problem = (message: string) => new AppError('request.invalid', { problems: [{ field: 'odsCode', message }] });
  if (c.apiAccess) {
    if (c.odsCode && c.odsCode !== c.apiAccess.odsCode) throw problem('must be the API client’s organisation');
    return c.apiAccess.odsCode;
  }
  if (c.odsCode) return c.odsCode;
  if (ctx.actor.kind === 'operator' || ctx.actor.kind === 'system') return null;
  const homes = homeOrganisationsWhere(ctx.actor, 'client:register');
  if (homes.length > 1) throw problem(`say which organisation owns it: ${homes.join(', ')}`);
  return homes[0] ?? null;
}

/** A client's owner and who last changed its status, as the policy sees them. */
export async function clientTarget(repos: Repositories, clientId: string): Promise<Target & { kind: 'client' }> {
  const row = await repos.clients.clientOwnership(clientId);
  if (!row) throw new AppError('oidc.client_not_found');
  // Disabled by the operator (or the system): not a person's to switch back on.
  const byOperator = row.statusChangedBy !== null && !isNationalId(row.statusChangedBy);
  return {
    kind: 'client',
    client: { odsCode: row.odsCode, lockedByOperator: row.status === 'disabled' && byOperator },
  };
}

export async function setClientStatus(
  ctx: ServiceContext,
  clientId: string,
  status: 'active' | 'disabled',
  reason: string | null = null,
): Promise<void> {
  await ctx.transaction(async (tx) => {
    authorize(ctx.actor, 'client:manage', await clientTarget(tx, clientId));
    await tx.clients.setClientStatus(clientId, status, ctx.actor.id, ctx.clock.now());
    await appendAudit(tx, ctx, {
      action: `oidc.client_${status}`,
      targetType: 'oidc_client',
      targetId: clientId,
      before: null,
      after: { status },
      reason,
    });
  });
  forgetCachedClient(clientId);
}

/** The relying parties and API clients the actor may manage (the operator: all), oldest first. */
export async function listClients(ctx: Pick<ServiceContext, 'repos' | 'actor'>): Promise<RegisteredClient[]> {
  const orgs = organisationsWhere(ctx.actor, 'client:manage');
  const rows = await ctx.repos.clients.listClients(orgs === 'all' ? null : [...orgs]);
  return rows.map((r) => ({ ...r, minimumAal: r.minimumAal as 1 | 2 | 3 }));
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
  repos: Repositories,
  sealer: ServiceContext['sealer'],
  clientId: string,
): Promise<Record<string, unknown> | undefined> {
  const cached = clientCache.get(clientId);
  if (cached && Date.now() - cached.at < CLIENT_CACHE_MS) return cached.value;
  const value = await loadClientMetadata(repos, sealer, clientId);
  if (clientCache.size > 5_000) clientCache.clear();
  clientCache.set(clientId, { at: Date.now(), value });
  return value;
}

async function loadClientMetadata(
  repos: Repositories,
  sealer: ServiceContext['sealer'],
  clientId: string,
): Promise<Record<string, unknown> | undefined> {
  const row = await repos.clients.clientForProvider(clientId);
  if (row?.status !== 'active') return undefined;
  return {
    ...row.metadata,
    'urn:opencis:minimum_aal': row.minimumAal,
    ...(row.secretSealed ? { client_secret: sealer.open(row.secretSealed, SECRET_PURPOSE).toString() } : {}),
  };
}

export function secretFingerprint(secret: string): string {
  return createHash('sha256').update(secret).digest('hex').slice(0, 12);
}
