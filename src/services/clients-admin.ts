/**
 * Looking after a registered relying party (issue #14: the console does what the CLI does): read one, change what it
 * may change (its name, where it is sent back to, scopes, assurance, token lifetimes), and re-key it — a new client
 * secret (shown once, kept sealed) or new public keys. Registering, disabling and enabling stay in oidc/clients.ts.
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
import { clientInputFields, forgetCachedClient, type RegisteredClient } from '../oidc/clients.ts';
import type { Queryable } from '../storage/database.ts';
import { appendAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';
import { parseInput } from './validation.ts';

/** The sealing purpose of client secrets: the same as oidc/clients.ts's, which oidc-provider's lookup opens. */
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

interface ClientRow {
  client_id: string;
  name: string;
  metadata: Record<string, unknown> | string;
  minimum_aal: number;
  status: 'active' | 'disabled';
  created_by: string;
  created_at: Date;
  updated_at: Date;
  ods_code: string | null;
  status_changed_by: string | null;
}

function detailsOf(r: ClientRow): ClientDetails {
  const metadata = typeof r.metadata === 'string' ? (JSON.parse(r.metadata) as Record<string, unknown>) : r.metadata;
  const api = Array.isArray(metadata.grant_types) && metadata.grant_types.includes('client_credentials');
  return {
    clientId: r.client_id,
    name: r.name,
    metadata,
    minimumAal: r.minimum_aal as 1 | 2 | 3,
    status: r.status,
    createdBy: r.created_by,
    createdAt: new Date(r.created_at).toISOString(),
    updatedAt: new Date(r.updated_at).toISOString(),
    odsCode: r.ods_code,
    // Disabled by the operator (or the system): the operator's alone to switch back on or change.
    lockedByOperator: r.status === 'disabled' && r.status_changed_by !== null && !isNationalId(r.status_changed_by),
    kind: api ? 'api' : 'sign_in',
    authMethod: metadata.token_endpoint_auth_method as ClientDetails['authMethod'],
  };
}

/** The client as a policy target: the organisation it belongs to (none: the operator's), and whether locked. */
export function clientTarget(c: Pick<ClientDetails, 'odsCode' | 'lockedByOperator'>): Target {
  return { kind: 'client', client: { odsCode: c.odsCode, lockedByOperator: c.lockedByOperator } };
}

async function loadClient(q: Queryable, clientId: string, lock = false): Promise<ClientDetails> {
  if (!/^[A-Za-z0-9._-]{3,100}$/.test(clientId)) throw new AppError('oidc.client_not_found');
  const { rows } = await q.query<ClientRow>(
    `SELECT client_id, name, metadata, minimum_aal, status, created_by, created_at, updated_at, ods_code, status_changed_by
     FROM oidc_clients WHERE client_id = $1${lock ? ' FOR UPDATE' : ''}`,
    [clientId],
  );
  if (!rows[0]) throw new AppError('oidc.client_not_found');
  return detailsOf(rows[0]);
}

/** One relying party, for those who may look after relying parties. */
export async function getClient(ctx: ServiceContext, clientId: string): Promise<ClientDetails> {
  const client = await loadClient(ctx.db, clientId);
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
  return ctx.db.transaction(async (tx) => {
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
    const { rows } = await tx.query<ClientRow>(
      `UPDATE oidc_clients SET name = $2, metadata = $3, minimum_aal = $4, updated_at = $5 WHERE client_id = $1
       RETURNING client_id, name, metadata, minimum_aal, status, created_by, created_at, updated_at, ods_code, status_changed_by`,
      [clientId, u.name, JSON.stringify(metadata), minimumAal, ctx.clock.now()],
    );
    await appendAudit(tx, ctx, {
      action: 'oidc.client_updated',
      targetType: 'oidc_client',
      targetId: clientId,
      before: { ...before.metadata, minimumAal: before.minimumAal },
      after: { ...metadata, minimumAal },
      reason: u.reason ?? null,
    });
    forgetCachedClient(clientId);
    return detailsOf(rows[0]!);
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
  return ctx.db.transaction(async (tx) => {
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
    const { rows } = await tx.query<ClientRow>(
      `UPDATE oidc_clients SET metadata = $2, secret_sealed = COALESCE($3, secret_sealed), updated_at = $4
       WHERE client_id = $1
       RETURNING client_id, name, metadata, minimum_aal, status, created_by, created_at, updated_at, ods_code, status_changed_by`,
      [clientId, JSON.stringify(metadata), secret ? ctx.sealer.seal(secret, SECRET_PURPOSE) : null, ctx.clock.now()],
    );
    await appendAudit(tx, ctx, {
      action: 'oidc.client_rekeyed',
      targetType: 'oidc_client',
      targetId: clientId,
      before: null,
      after: { secretIssued: secret !== null, keys: secret ? null : r.jwks ? 'jwks' : 'jwks_uri' },
      reason: r.reason,
    });
    forgetCachedClient(clientId);
    return { client: detailsOf(rows[0]!), clientSecret: secret };
  });
}
