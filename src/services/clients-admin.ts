/**
 * Looking after a registered relying party (issue #14: the console does what the CLI does): read one, change what it
 * may change (its name, where it is sent back to, scopes, assurance, token lifetimes), and re-key it — a new client
 * secret (shown once, kept sealed) or new public keys. Registering, disabling and enabling stay in services/clients.ts.
 *
 * Who may: the policy's `client:register`. The target is the client as loaded here (`clientTarget`), so when clients
 * belong to an organisation the policy scopes these changes as it scopes their status.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { AppError } from '../domain/errors.ts';
import { isNationalId } from '../domain/identity/user-id.ts';
import { authorize, type Target } from '../domain/policy.ts';
import { text } from '../domain/text.ts';
import type { ClientRecord } from '../storage/repositories/clients.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { appendAudit } from './audit.ts';
import { clientInputFields, forgetCachedClient, type RegisteredClient } from './clients.ts';
import type { ServiceContext } from './context.ts';
import { parseInput } from './validation.ts';

/** The sealing purpose of client secrets: the same as services/clients.ts's, which oidc-provider's lookup opens. */
const SECRET_PURPOSE = 'oidc.client-secret';

export interface ClientDetails extends RegisteredClient {
  createdBy: string;
  createdAt: string;
  updatedAt: string;
  /** Disabled by the operator: only the operator changes it. */
  lockedByOperator: boolean;
  kind: 'sign_in' | 'api';
  authMethod: 'private_key_jwt' | 'client_secret_basic' | 'client_secret_post';
}

function detailsOf(r: ClientRecord): ClientDetails {
  const metadata = r.metadata;
  const api = Array.isArray(metadata.grant_types) && metadata.grant_types.includes('client_credentials');
  return {
    clientId: r.clientId,
    name: r.name,
    metadata,
    minimumAal: r.minimumAal as 1 | 2 | 3,
    status: r.status,
    createdBy: r.createdBy,
    createdAt: new Date(r.createdAt).toISOString(),
    updatedAt: new Date(r.updatedAt).toISOString(),
    odsCode: r.odsCode,
    // Disabled by the operator (or the system): the operator's alone to switch back on or change.
    lockedByOperator: r.status === 'disabled' && r.statusChangedBy !== null && !isNationalId(r.statusChangedBy),
    kind: api ? 'api' : 'sign_in',
    authMethod: metadata.token_endpoint_auth_method as ClientDetails['authMethod'],
  };
}

/** The client as a policy target: the organisation it belongs to (none: the operator's), and whether locked. */
export function clientTarget(c: Pick<ClientDetails, 'odsCode' | 'lockedByOperator'>): Target {
  return { kind: 'client', client: { odsCode: c.odsCode, lockedByOperator: c.lockedByOperator } };
}

async function loadClient(repos: Repositories, clientId: string, lock = false): Promise<ClientDetails> {
  if (!/^[A-Za-z0-9._-]{3,100}$/.test(clientId)) throw new AppError('oidc.client_not_found');
  const row = await repos.clients.findClient(clientId, lock);
  if (!row) throw new AppError('oidc.client_not_found');
  return detailsOf(row);
}

/** One relying party, for those who may look after relying parties. */
export async function getClient(ctx: ServiceContext, clientId: string): Promise<ClientDetails> {
  const client = await loadClient(ctx.repos, clientId);
  authorize(ctx.actor, 'client:manage', clientTarget(client));
  return client;
}

/** What may change after registration: everything but the client ID, its kind and its authentication method. */
export const clientUpdateSchema = clientInputFields
  .pick({
    name: true,
    redirectUris: true,
    postLogoutRedirectUris: true,
    backchannelLogoutUri: true,
    scopes: true,
    idTokenSignedResponseAlg: true,
    minimumAal: true,
    accessTokenTtlSeconds: true,
    refreshTokenTtlSeconds: true,
  })
  .extend({ reason: text(1000).optional() });

/** The rules registerClient applies to the URIs it is given (no fragments; https, or http for localhost). */
function checkUris(redirectUris: readonly string[], postLogout: readonly string[]): void {
  if (redirectUris.length === 0) {
    throw new AppError('request.invalid', {
      problems: [{ field: 'redirectUris', message: 'at least one redirect URI' }],
    });
  }
  for (const [field, list] of [
    ['redirectUris', redirectUris],
    ['postLogoutRedirectUris', postLogout],
  ] as const) {
    for (const u of list) {
      const parsed = new URL(u);
      if (parsed.hash) throw new AppError('request.invalid', { problems: [{ field, message: 'no fragments' }] });
      if (parsed.protocol !== 'https:' && parsed.hostname !== 'localhost' && parsed.hostname !== '127.0.0.1') {
        throw new AppError('request.invalid', { problems: [{ field, message: 'https only (http for localhost)' }] });
      }
    }
  }
}

/** Changes a sign-in client's settings (an API client: its name only). Takes effect on every node within 10 s. */
export async function updateClient(ctx: ServiceContext, clientId: string, input: unknown): Promise<ClientDetails> {
  const u = parseInput(clientUpdateSchema, input);
  return ctx.transaction(async (tx) => {
    const before = await loadClient(tx, clientId, true);
    authorize(ctx.actor, 'client:manage', clientTarget(before));
    const m = before.metadata;
    const metadata: Record<string, unknown> =
      before.kind === 'api'
        ? { ...m, client_name: u.name }
        : (() => {
            checkUris(u.redirectUris, u.postLogoutRedirectUris);
            const { backchannel_logout_uri: _b, backchannel_logout_session_required: _s, ...rest } = m;
            return {
              ...rest,
              client_name: u.name,
              redirect_uris: u.redirectUris,
              post_logout_redirect_uris: u.postLogoutRedirectUris,
              grant_types: u.scopes.includes('offline_access')
                ? ['authorization_code', 'refresh_token']
                : ['authorization_code'],
              id_token_signed_response_alg: u.idTokenSignedResponseAlg,
              scope: u.scopes.join(' '),
              ...(u.backchannelLogoutUri
                ? { backchannel_logout_uri: u.backchannelLogoutUri, backchannel_logout_session_required: true }
                : {}),
              'urn:opencis:access_token_ttl': u.accessTokenTtlSeconds,
              'urn:opencis:refresh_token_ttl': u.refreshTokenTtlSeconds,
            };
          })();
    const minimumAal = before.kind === 'api' ? before.minimumAal : u.minimumAal;
    const updated = await tx.clients.updateClientRegistration(clientId, {
      name: u.name,
      metadata,
      minimumAal,
      at: ctx.clock.now(),
    });
    await appendAudit(tx, ctx, {
      action: 'oidc.client_updated',
      targetType: 'oidc_client',
      targetId: clientId,
      before: { ...before.metadata, minimumAal: before.minimumAal },
      after: { ...metadata, minimumAal },
      reason: u.reason ?? null,
    });
    forgetCachedClient(clientId);
    return detailsOf(updated);
  });
}

const jwksSchema = clientInputFields.shape.jwks.unwrap();

export const rekeySchema = z.object({
  reason: text(1000),
  /** For a private_key_jwt client: its new public keys, or where to fetch them. */
  jwks: jwksSchema.optional(),
  jwksUri: z.url().max(2_000).optional(),
});

/**
 * New credentials for a client: a new secret (client_secret_* methods; returned once, the old one stops working at
 * once) or new public keys (private_key_jwt: a JWK Set or a JWKS URI, no private key material). Audited with the
 * reason; never the secret.
 */
export async function rekeyClient(
  ctx: ServiceContext,
  clientId: string,
  input: unknown,
): Promise<{ client: ClientDetails; clientSecret: string | null }> {
  const r = parseInput(rekeySchema, input);
  return ctx.transaction(async (tx) => {
    const before = await loadClient(tx, clientId, true);
    authorize(ctx.actor, 'client:manage', clientTarget(before));
    let secret: string | null = null;
    let metadata = before.metadata;
    if (before.authMethod === 'private_key_jwt') {
      if (!r.jwks === !r.jwksUri) {
        throw new AppError('request.invalid', {
          problems: [{ field: 'jwks', message: 'give the new public keys (a JWK Set) or a JWKS URI, one of them' }],
        });
      }
      if (r.jwks?.keys.some((k) => ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].some((f) => f in k))) {
        throw new AppError('request.invalid', {
          problems: [{ field: 'jwks', message: 'holds private key material: give the public keys only' }],
        });
      }
      const { jwks: _j, jwks_uri: _u, ...rest } = metadata;
      metadata = { ...rest, ...(r.jwks ? { jwks: r.jwks } : { jwks_uri: r.jwksUri }) };
    } else {
      secret = randomBytes(32).toString('base64url');
    }
    const rekeyed = await tx.clients.rekeyClient(clientId, {
      metadata,
      secretSealed: secret ? ctx.sealer.seal(secret, SECRET_PURPOSE) : null,
      at: ctx.clock.now(),
    });
    await appendAudit(tx, ctx, {
      action: 'oidc.client_rekeyed',
      targetType: 'oidc_client',
      targetId: clientId,
      before: null,
      after: { secretIssued: secret !== null, keys: secret ? null : r.jwks ? 'jwks' : 'jwks_uri' },
      reason: r.reason,
    });
    forgetCachedClient(clientId);
    return { client: detailsOf(rekeyed), clientSecret: secret };
  });
}
