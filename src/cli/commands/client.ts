import { readFileSync } from 'node:fs';
import { type ClientSettings, updateClientSettings } from '../../oidc/client-settings.ts';
import { CLIENT_AUTH_ALGS } from '../../services/client-keys.ts';
import {
  CIS2_SCOPES,
  type ClientInput,
  DEFAULT_SCOPES,
  listClients,
  registerClient,
  setClientStatus,
} from '../../services/clients.ts';
import type { Command } from '../command.ts';
import { parseOptions } from '../command.ts';
import { withOperatorContext } from '../database.ts';
import { UsageError } from '../io.ts';

const AUTH_METHODS = ['private_key_jwt', 'client_secret_basic', 'client_secret_post'] as const;
const ALGS = ['RS256', 'ES256', 'PS256'] as const;

function wholeSeconds(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^[0-9]{1,9}$/.test(raw)) throw new UsageError(`--${name} is a whole number of seconds`);
  return Number(raw);
}

function oneOf<T extends string>(name: string, raw: string | undefined, allowed: readonly T[]): T | undefined {
  if (raw === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(raw)) throw new UsageError(`--${name} is one of ${allowed.join('|')}`);
  return raw as T;
}

/** The JWK Set of a private_key_jwt client, from a file: `{"keys":[…]}` (a single JWK is accepted and wrapped). */
function readJwks(file: string): ClientInput['jwks'] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read --jwks ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UsageError(`--jwks ${file} is not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null) throw new UsageError(`--jwks ${file} is not a JWK Set`);
  const set = parsed as { keys?: unknown; kty?: unknown; d?: unknown };
  const keys = Array.isArray(set.keys) ? set.keys : typeof set.kty === 'string' ? [parsed] : null;
  if (!keys) throw new UsageError(`--jwks ${file} is not a JWK Set ({"keys": [...]})`);
  for (const k of keys) {
    if (typeof k === 'object' && k !== null && 'd' in k) {
      throw new UsageError(`--jwks ${file} holds a private key: register the public key only`);
    }
  }
  // Checked in full (key types, sizes, algorithms) by the registration itself.
  return { keys } as ClientInput['jwks'];
}

export const clientCommand: Command = {
  summary: 'Relying parties (OpenID Connect clients): register, list, set, disable, enable',
  help: `Usage: opencis client register --name NAME --redirect-uri URI [--redirect-uri URI2 …]
                               [--post-logout-uri URI …] [--backchannel-logout-uri URI]
                               [--auth ${AUTH_METHODS.join('|')}]
                               [--jwks FILE] [--jwks-uri URI] [--auth-signing-alg ${CLIENT_AUTH_ALGS.join('|')}]
                               [--scopes "openid profile …"] [--alg ${ALGS.join('|')}] [--minimum-aal 2|3]
                               [--require-pkce] [--default-acr "AAL3_ANY …"]
                               [--access-token-ttl SECONDS] [--refresh-token-ttl SECONDS] [--client-id ID]
       opencis client list
       opencis client set CLIENT_ID [--pkce required|optional] [--minimum-aal 1|2|3] [--default-acr "AAL3_ANY …"]
       opencis client disable CLIENT_ID
       opencis client enable CLIENT_ID

register  registers a clinical system that signs its users in through OpenCIS and prints its client ID. With
          --auth client_secret_basic or client_secret_post it also prints the client secret: it is shown this once
          and cannot be shown again. private_key_jwt (the default, as CIS2 prefers) needs the client's public keys:
          --jwks FILE (a JWK Set) or --jwks-uri URI; RSA keys of 2048 bits or more, or EC P-256.
            --auth-signing-alg  the one algorithm its client assertions must use (default: any of
                              ${CLIENT_AUTH_ALGS.join(', ')})
            --scopes          scopes it may ask for (default "${DEFAULT_SCOPES.join(' ')}"); add
                              offline_access to allow refresh tokens. Known: ${CIS2_SCOPES.join(' ')}
            --require-pkce    demand PKCE (S256) of this client too; CIS2 does not, so by default a client that
                              sends no code_challenge is not refused (one that sends it is held to it)
            --alg             ID token signing algorithm (default RS256)
            --minimum-aal     the least assurance level it accepts, whatever acr_values it sends (default 2, as
                              CIS2: its acr_values decide; 3 to hold it to AAL3; 1 only for test environments)
            --default-acr     what a request naming no acr_values asks for (default AAL3_ANY, as CIS2)
            --access-token-ttl   seconds (60–86400, default 3600)
            --refresh-token-ttl  seconds (0–2592000, default 43200)
            --client-id       a client ID of your choosing (default: 12 random digits + ".apps.national")
          Redirect URIs must be https (http only for localhost).
list      every relying party: client ID, status, authentication method, name, redirect URIs
set       changes the settings where OpenCIS may be stricter than CIS2 (see docs/cis2.md): PKCE demanded or not,
          the least assurance level, the default acr_values. Clients registered before these settings existed keep
          PKCE required until set otherwise.
disable   stops a relying party at once: no new sign-ins, code redemptions, refreshes or userinfo calls
enable    enables a disabled relying party again

Exit codes: 0 done, 1 refused (invalid registration, unknown client ID), 2 usage error.`,
  async run(args, io) {
    const { values, positionals } = parseOptions(
      args,
      {
        name: { type: 'string' },
        'redirect-uri': { type: 'string', multiple: true },
        'post-logout-uri': { type: 'string', multiple: true },
        'backchannel-logout-uri': { type: 'string' },
        auth: { type: 'string' },
        jwks: { type: 'string' },
        'jwks-uri': { type: 'string' },
        scopes: { type: 'string' },
        alg: { type: 'string' },
        'minimum-aal': { type: 'string' },
        'access-token-ttl': { type: 'string' },
        'refresh-token-ttl': { type: 'string' },
        'client-id': { type: 'string' },
        'auth-signing-alg': { type: 'string' },
        'require-pkce': { type: 'boolean' },
        pkce: { type: 'string' },
        'default-acr': { type: 'string' },
      },
      2,
    );
    const [verb, id] = positionals;
    switch (verb) {
      case 'register': {
        if (id) throw new UsageError(`unexpected argument "${id}"`);
        if (!values.name?.trim()) throw new UsageError('register needs --name');
        const redirectUris = values['redirect-uri'] ?? [];
        if (redirectUris.length === 0) throw new UsageError('register needs at least one --redirect-uri');
        const auth = oneOf('auth', values.auth, AUTH_METHODS) ?? 'private_key_jwt';
        if (auth !== 'private_key_jwt' && (values.jwks || values['jwks-uri'])) {
          throw new UsageError('--jwks and --jwks-uri are for --auth private_key_jwt');
        }
        if (auth === 'private_key_jwt' && !values.jwks && !values['jwks-uri']) {
          throw new UsageError('--auth private_key_jwt needs --jwks FILE or --jwks-uri URI');
        }
        const aal = oneOf('minimum-aal', values['minimum-aal'], ['1', '2', '3'] as const);
        const scopes = values.scopes?.split(/[\s,]+/).filter(Boolean);
        if (scopes && scopes.length === 0) throw new UsageError('--scopes names at least one scope');
        const input: ClientInput = {
          name: values.name,
          redirectUris,
          tokenEndpointAuthMethod: auth,
          ...(values['client-id'] ? { clientId: values['client-id'] } : {}),
          ...(values['post-logout-uri'] ? { postLogoutRedirectUris: values['post-logout-uri'] } : {}),
          ...(values['backchannel-logout-uri'] ? { backchannelLogoutUri: values['backchannel-logout-uri'] } : {}),
          ...(values.jwks ? { jwks: readJwks(values.jwks) } : {}),
          ...(values['jwks-uri'] ? { jwksUri: values['jwks-uri'] } : {}),
          ...(scopes ? { scopes: scopes as ClientInput['scopes'] } : {}),
          ...(values.alg ? { idTokenSignedResponseAlg: oneOf('alg', values.alg, ALGS) } : {}),
          ...(aal ? { minimumAal: Number(aal) as 1 | 2 | 3 } : {}),
          ...(values['auth-signing-alg']
            ? { tokenEndpointAuthSigningAlg: oneOf('auth-signing-alg', values['auth-signing-alg'], CLIENT_AUTH_ALGS) }
            : {}),
          ...(values['require-pkce'] ? { requirePkce: true } : {}),
          ...(values['default-acr']
            ? {
                defaultAcrValues: values['default-acr']
                  .split(/[\s,]+/)
                  .filter(Boolean) as ClientInput['defaultAcrValues'],
              }
            : {}),
          ...(values['access-token-ttl'] !== undefined
            ? { accessTokenTtlSeconds: wholeSeconds('access-token-ttl', values['access-token-ttl']) }
            : {}),
          ...(values['refresh-token-ttl'] !== undefined
            ? { refreshTokenTtlSeconds: wholeSeconds('refresh-token-ttl', values['refresh-token-ttl']) }
            : {}),
        };
        const { client, clientSecret } = await withOperatorContext((ctx) => registerClient(ctx, input));
        io.out(`client_id      ${client.clientId}`);
        io.out(`name           ${client.name}`);
        io.out(`auth           ${String(client.metadata.token_endpoint_auth_method)}`);
        io.out(`scopes         ${String(client.metadata.scope)}`);
        io.out(`require_pkce   ${client.metadata['urn:opencis:require_pkce'] === true ? 'yes' : 'no'}`);
        if (clientSecret) {
          io.out(`client_secret  ${clientSecret}`);
          io.err('The client secret is shown this once: give it to the relying party now. It cannot be shown again.');
        }
        return 0;
      }
      case 'list': {
        if (id) throw new UsageError(`unexpected argument "${id}"`);
        const clients = await withOperatorContext((ctx) => listClients(ctx));
        if (clients.length === 0) io.out('no relying parties');
        for (const c of clients) {
          const uris = (c.metadata.redirect_uris as string[] | undefined) ?? [];
          io.out(
            `${c.clientId}  ${c.status.padEnd(8)}  ${String(c.metadata.token_endpoint_auth_method).padEnd(19)}  ` +
              `AAL${c.minimumAal}  ${c.name}  ${uris.join(' ')}`,
          );
        }
        return 0;
      }
      case 'set': {
        if (!id) throw new UsageError('set needs a CLIENT_ID');
        const pkce = oneOf('pkce', values.pkce, ['required', 'optional'] as const);
        const aal = oneOf('minimum-aal', values['minimum-aal'], ['1', '2', '3'] as const);
        const settings: ClientSettings = {
          ...(pkce ? { requirePkce: pkce === 'required' } : {}),
          ...(aal ? { minimumAal: Number(aal) as 1 | 2 | 3 } : {}),
          ...(values['default-acr']
            ? {
                defaultAcrValues: values['default-acr']
                  .split(/[\s,]+/)
                  .filter(Boolean) as ClientSettings['defaultAcrValues'],
              }
            : {}),
        };
        if (Object.keys(settings).length === 0) {
          throw new UsageError('set needs --pkce, --minimum-aal or --default-acr');
        }
        await withOperatorContext((ctx) => updateClientSettings(ctx, id, settings));
        io.out(`client ${id} updated`);
        return 0;
      }
      case 'disable':
      case 'enable': {
        if (!id) throw new UsageError(`${verb} needs a CLIENT_ID`);
        const status = verb === 'disable' ? 'disabled' : 'active';
        await withOperatorContext((ctx) => setClientStatus(ctx, id, status));
        io.out(`client ${id} ${status === 'active' ? 'enabled' : 'disabled'}`);
        return 0;
      }
      default:
        throw new UsageError('expected register, list, set, disable or enable');
    }
  },
};
