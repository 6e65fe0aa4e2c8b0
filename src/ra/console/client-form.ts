/**
 * The relying-party form of the console (register, change) and what every client page shares: the form's fields and
 * choices, reading it into the settings the services take, showing a client's settings in it, who may open the client
 * pages at all, and the client a URL names.
 */
import type { FastifyRequest } from 'fastify';
import { AppError } from '../../domain/errors.ts';
import { CIS2_SCOPES } from '../../services/clients.ts';
import { type ClientDetails, getClient } from '../../services/clients-admin.ts';
import { type FieldMap, type FormErrors, type FormValues, list, text } from './forms.ts';
import { mayAnywhere, param, type RaCaller } from './guard.ts';

/** Where a service's error about a setting shows on the form. */
export const fields: FieldMap = (path) => {
  const top = path.split('.')[0]!;
  const map: Record<string, { id: string; label: string; target?: string }> = {
    name: { id: 'name', label: 'Name:' },
    clientId: { id: 'name', label: 'Client ID:' },
    odsCode: { id: 'odsCode', label: 'Organisation:' },
    redirectUris: { id: 'redirectUris', label: 'Redirect URIs:' },
    postLogoutRedirectUris: { id: 'postLogoutRedirectUris', label: 'Signed-out URIs:' },
    backchannelLogoutUri: { id: 'backchannelLogoutUri', label: 'Back-channel logout URI:' },
    tokenEndpointAuthMethod: { id: 'authMethod', label: 'How it proves who it is:', target: 'authMethod-0' },
    jwks: { id: 'jwks', label: 'Public keys:' },
    jwksUri: { id: 'jwksUri', label: 'JWKS URI:' },
    scopes: { id: 'scopes', label: 'Scopes:', target: 'scopes-0' },
    idTokenSignedResponseAlg: { id: 'alg', label: 'ID token algorithm:' },
    minimumAal: { id: 'minimumAal', label: 'Least assurance:', target: 'minimumAal-0' },
    accessTokenTtlSeconds: { id: 'accessTtl', label: 'Access token lifetime:' },
    refreshTokenTtlSeconds: { id: 'refreshTtl', label: 'Refresh token lifetime:' },
    reason: { id: 'reason', label: 'Reason:' },
  };
  return map[top];
};

const authMethods = [
  { value: 'private_key_jwt', text: 'Its own key pair (private_key_jwt, recommended)' },
  { value: 'client_secret_basic', text: 'A client secret, sent in the Authorization header (client_secret_basic)' },
  { value: 'client_secret_post', text: 'A client secret, sent in the form (client_secret_post)' },
];
const aals = [
  { value: '3', text: 'AAL3: smartcard or security key' },
  { value: '2', text: 'AAL2: also passkeys and authenticator apps' },
  { value: '1', text: 'AAL1: test environments only' },
];
const algs = ['RS256', 'ES256', 'PS256'].map((a) => ({ value: a, text: a }));
/** The scopes a new relying party starts with ticked. */
export const defaultScopes = ['openid', 'profile', 'nationalrbacaccess', 'selectedrole'];

function lines(values: FormValues, name: string): string[] {
  return text(values, name)
    .split(/\s*[\r\n]+\s*/)
    .map((s) => s.trim())
    .filter(Boolean);
}

function seconds(values: FormValues, name: string, errors: FormErrors, id: string): number | undefined {
  const v = text(values, name);
  if (!v) return undefined;
  if (!/^[0-9]{1,8}$/.test(v)) {
    errors.add(id, 'Enter a whole number of seconds');
    return undefined;
  }
  return Number(v);
}

/** The JWK Set typed or pasted in, if any. */
export function jwksOf(values: FormValues, errors: FormErrors): unknown {
  const raw = text(values, 'jwks');
  if (!raw) return undefined;
  try {
    const parsed: unknown = JSON.parse(raw);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed) && !('keys' in parsed))
      return { keys: [parsed] };
    return parsed;
  } catch {
    errors.add('jwks', 'Public keys must be a JWK Set in JSON, like {"keys":[{…}]}');
    return undefined;
  }
}

/** The settings form as the services take it (registration, or a change). */
export function settingsOf(values: FormValues, errors: FormErrors) {
  const aal = Number(text(values, 'minimumAal') || '3');
  return {
    name: text(values, 'name'),
    redirectUris: lines(values, 'redirectUris'),
    postLogoutRedirectUris: lines(values, 'postLogoutRedirectUris'),
    ...(text(values, 'backchannelLogoutUri') ? { backchannelLogoutUri: text(values, 'backchannelLogoutUri') } : {}),
    scopes: list(values, 'scopes'),
    idTokenSignedResponseAlg: text(values, 'alg') || 'RS256',
    minimumAal: aal,
    ...(seconds(values, 'accessTtl', errors, 'accessTtl') !== undefined
      ? { accessTokenTtlSeconds: Number(text(values, 'accessTtl')) }
      : {}),
    ...(seconds(values, 'refreshTtl', errors, 'refreshTtl') !== undefined
      ? { refreshTokenTtlSeconds: Number(text(values, 'refreshTtl')) }
      : {}),
  };
}

/** A client's settings as the form shows them. */
export function valuesOf(c: ClientDetails): FormValues {
  const m = c.metadata;
  return {
    name: c.name,
    redirectUris: ((m.redirect_uris as string[] | undefined) ?? []).join('\n'),
    postLogoutRedirectUris: ((m.post_logout_redirect_uris as string[] | undefined) ?? []).join('\n'),
    backchannelLogoutUri: String(m.backchannel_logout_uri ?? ''),
    scopes: String(m.scope ?? '')
      .split(' ')
      .filter(Boolean),
    alg: String(m.id_token_signed_response_alg ?? 'RS256'),
    minimumAal: String(c.minimumAal),
    accessTtl: String(m['urn:opencis:access_token_ttl'] ?? ''),
    refreshTtl: String(m['urn:opencis:refresh_token_ttl'] ?? ''),
  };
}

/** The form's choices, the scopes ticked as `values` has them. */
export function formOptions(values: FormValues) {
  const chosen = new Set(Array.isArray(values.scopes) ? values.scopes : values.scopes ? [values.scopes] : []);
  return {
    authMethods,
    aals,
    algs,
    scopes: CIS2_SCOPES.map((s) => ({ value: s, checked: chosen.has(s) })),
  };
}

/** The client pages are for those who may register a relying party somewhere. */
export function allowed(caller: RaCaller): void {
  if (!mayAnywhere(caller.actor, 'client:register')) {
    throw new AppError('auth.forbidden', { statement: 'client:register' });
  }
}

/** The client the URL names, as the caller may see it (the service decides). */
export async function clientFor(req: FastifyRequest, caller: RaCaller): Promise<ClientDetails> {
  return getClient(caller.ctx, decodeURIComponent(param(req, 'clientId')));
}
