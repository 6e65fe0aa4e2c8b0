import Provider, { type Adapter, type Configuration, interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import { type AcrValue, acrCandidates, meets, supportedAcrValues } from '../domain/credentials/acr.ts';
import { type Aal, authenticationMethods } from '../domain/credentials/assurance.ts';
import { ukDate } from '../domain/dates.ts';
import { isStorableText } from '../domain/text.ts';
import { storeFailure } from '../http/errors.ts';
import { SESSION_COOKIE } from '../http/web.ts';
import type { Sealer } from '../secrets/sealer.ts';
import { CLIENT_AUTH_ALGS } from '../services/client-keys.ts';
import { API_SCOPE, CIS2_SCOPES, clientMetadataForProvider } from '../services/clients.ts';
import type { Clock } from '../services/context.ts';
import { currentSession, endSession } from '../services/sessions.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { asksForRole, cis2ClaimsForGrant, scopeClaims } from './claims.ts';
import { limitClientAuthentication } from './client-auth-limits.ts';
import { keepingCodeState, stateOfRedeemedCode } from './code-state.ts';
import { answerInvalidInputWith400, refusingUnstorableText } from './hostile-input.ts';
import type { SigningKeys } from './keys.ts';
import { loggedOutPage, logoutPage, renderError } from './pages.ts';
import { takeClaims, takeDeferredConsume } from './read-together.ts';
import { answerStoreFailuresWith503 } from './store-failures.ts';

/**
 * oidc-provider configured as CIS2 (DOMAIN §7, docs/cis2.md): the CIS2 endpoint names, authorization code flow only
 * (PKCE S256 when the client sends it, or its registration demands it), private_key_jwt (RS256, RS512, PS256, ES256)
 * or client secrets, RS256 ID tokens by default, the NHS scopes and claims, acr_values and role selection, rotated
 * refresh tokens. Only what is OpenCIS's own is written here, through the library's documented configuration: accounts
 * and claims, interactions, storage, keys, pages. Every protocol step is the library's.
 */
export interface ProviderDeps {
  issuer: string;
  /** Path prefix the provider is mounted at (the issuer's path), e.g. /oidc. */
  mountPath: string;
  repos: Repositories;
  clock: Clock;
  sealer: Sealer;
  keys: SigningKeys;
  adapter: NonNullable<Configuration['adapter']>;
  /** The guarded outbound HTTP client (src/http/outbound.ts). */
  fetch: typeof fetch;
}

const AMR_AAL = new Map<string, Aal>(Object.values(authenticationMethods).map((m) => [m.amr, m.aal]));

/** The level a session reached, from the methods it used. */
export function aalOfAmr(amr: readonly string[] | undefined): Aal {
  return (amr ?? []).reduce<Aal>((best, m) => Math.max(best, AMR_AAL.get(m) ?? 1) as Aal, 1);
}

function minimumAalOf(ctx: KoaContextWithOIDC): 1 | 2 | 3 {
  const v = Number(
    (ctx.oidc.client as unknown as Record<string, unknown> | undefined)?.['urn:opencis:minimum_aal'] ?? 3,
  );
  return v === 1 || v === 2 ? v : 3;
}

/**
 * The acr value this request asked for (in its order of preference, raised to the client's minimum) that the SSO
 * session meets, if any. CIS2's `acr` is "the acr value met" by this authentication request, not the one the session
 * was first created for: a session made for AAL3_SMARTCARD that is reused for AAL2_OR_AAL3_ANY says AAL2_OR_AAL3_ANY.
 */
function acrMetBySession(ctx: KoaContextWithOIDC): AcrValue | undefined {
  const session = ctx.oidc.session;
  if (!session?.accountId) return undefined;
  const floor = minimumAalOf(ctx);
  const { candidates } = acrCandidates(ctx.oidc.params?.acr_values as string | undefined, floor);
  const reached = { aal: aalOfAmr(session.amr), amr: session.amr ?? [] };
  return candidates.find((acr) => meets(acr, reached, floor));
}

/**
 * The login prompt with OpenCIS's extra reasons to interact: the person's OpenCIS session has ended (signed out, idle
 * past its NIST limit, card cancelled, leaver…) — single sign-on never outlives it; an unmet acr_values; role selection.
 */
function policy(deps: ProviderDeps) {
  const { Check, base } = interactionPolicy;
  const prompts = base();
  const login = prompts.get('login')!;
  login.checks.add(
    new Check('web_session', 'the OpenCIS session has ended', 'login_required', async (ctx) => {
      const { oidc } = ctx;
      const accountId = oidc.session!.accountId;
      if (!accountId || oidc.result?.login) return Check.NO_NEED_TO_PROMPT;
      const web = await currentSession(deps.repos, ctx.cookies.get(SESSION_COOKIE) ?? undefined, deps.clock.now());
      return web?.userId === accountId ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
    }),
  );
  // Before every other check (the library's "no session" among them), so that with prompt=none too the relying party
  // learns that no sign-in could meet what it asked for.
  login.checks.add(
    new Check(
      'acr_unsupported',
      'none of the requested acr_values is offered by this OpenID Provider',
      'unmet_authentication_requirements',
      (ctx) => {
        const { unsupported } = acrCandidates(ctx.oidc.params!.acr_values as string | undefined, minimumAalOf(ctx));
        return unsupported ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
      },
    ),
    0,
  );
  login.checks.add(
    new Check('acr_values', 'the session does not meet the requested assurance', 'login_required', (ctx) => {
      const { oidc } = ctx;
      if (!oidc.session!.accountId || oidc.result?.login) return Check.NO_NEED_TO_PROMPT;
      return acrMetBySession(ctx) ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
    }),
  );
  login.checks.add(
    new Check(
      'select_role',
      'the relying party asked for a role profile to be chosen',
      'interaction_required',
      (ctx) => {
        const { oidc } = ctx;
        if (oidc.result?.login) return Check.NO_NEED_TO_PROMPT;
        return asksForRole(oidc.params!.scope) ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
      },
    ),
  );
  return prompts;
}

/**
 * ID token claims that bind it to this response, as CIS2's carry them (DOMAIN §7): `azp` (the client it was issued to),
 * `at_hash` (oidc-provider adds it only to ID tokens from the authorization endpoint; at the token endpoint an opaque
 * access token's value is its jti) and `s_hash` (the state of the authorization request whose code is redeemed, see
 * code-state.ts). The library hashes at_hash and s_hash with the ID token's algorithm.
 */
function idTokenBindings(ctx: KoaContextWithOIDC): Record<string, string> {
  const out: Record<string, string> = {};
  const clientId = ctx.oidc?.client?.clientId;
  if (clientId) out.azp = clientId;
  const accessToken = ctx.oidc?.entities?.AccessToken as { jti?: string } | undefined;
  if (accessToken?.jti) out.at_hash = accessToken.jti;
  const state = stateOfRedeemedCode(ctx);
  if (state) out.s_hash = state;
  return out;
}

export function createProvider(deps: ProviderDeps): Provider {
  // Clients live in the relying-party registry (oidc_clients): the library asks the 'Client' adapter for them by ID.
  // A client ID no client can have (NUL, a lone surrogate) is simply not found: invalid_client, never a database error.
  const clientAdapter = {
    find: async (id: string) =>
      isStorableText(id) ? clientMetadataForProvider(deps.repos, deps.sealer, id) : undefined,
  };
  const artefacts = refusingUnstorableText(keepingCodeState(deps.adapter as (name: string) => Adapter)) as (
    name: string,
  ) => object;
  const configuration: Configuration = {
    adapter: ((name: string) => (name === 'Client' ? clientAdapter : artefacts(name))) as never,
    clients: [],
    findAccount: async (ctx, sub, token) => ({
      accountId: sub,
      async claims(use) {
        const grantId = (token as { grantId?: string } | undefined)?.grantId;
        const kind = use === 'id_token' ? 'id_token' : 'userinfo';
        const now = deps.clock.now();
        // Read with the token, in the same request, when the adapter could (read-together.ts); otherwise read now.
        const known = takeClaims(ctx, sub, ukDate(now), grantId ?? null, kind);
        const claims = await cis2ClaimsForGrant(deps.repos, sub, now, kind, grantId, known);
        return (kind === 'id_token' ? { ...claims, ...idTokenBindings(ctx) } : claims) as never;
      },
    }),
    claims: scopeClaims,
    scopes: [...CIS2_SCOPES, API_SCOPE],
    acrValues: supportedAcrValues,
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    // CIS2 supports PKCE (S256 only) and requires it of public clients, not of confidential ones; OpenCIS registers
    // confidential clients only, and demands it of those whose registration says so. A client that sends a
    // code_challenge is always held to it at the token endpoint.
    pkce: {
      required: (_ctx, client) =>
        client.clientAuthMethod === 'none' ||
        (client as unknown as Record<string, unknown>)['urn:opencis:require_pkce'] === true,
    },
    clientAuthMethods: ['private_key_jwt', 'client_secret_basic', 'client_secret_post'],
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256'],
      // CIS2 documents RS512 for private_key_jwt client assertions (and NHS applications use it).
      clientAuthSigningAlgValues: [...CLIENT_AUTH_ALGS],
      userinfoSigningAlgValues: ['RS256', 'PS256', 'ES256'],
    },
    // A refresh gives a new refresh token and uses up the one presented (RFC 9700 §4.14.2); presenting a used one again
    // revokes the grant, and every token it gave.
    rotateRefreshToken: true,
    clientDefaults: {
      id_token_signed_response_alg: 'RS256',
      grant_types: ['authorization_code'],
      response_types: ['code'],
    },
    extraClientMetadata: {
      properties: [
        'urn:opencis:access_token_ttl',
        'urn:opencis:refresh_token_ttl',
        'urn:opencis:minimum_aal',
        'urn:opencis:require_pkce',
        'urn:opencis:api_ods',
        'urn:opencis:api_activities',
      ],
    },
    jwks: { keys: deps.keys.jwks as never },
    cookies: {
      keys: [deps.sealer.derive('oidc-cookies').toString('base64url')],
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    routes: {
      authorization: '/authorize',
      token: '/access_token',
      userinfo: '/userinfo',
      jwks: '/connect/jwk_uri',
      end_session: '/connect/endSession',
      introspection: '/introspect',
      revocation: '/token/revoke',
    },
    features: {
      devInteractions: { enabled: false },
      introspection: {
        enabled: true,
        // A client may introspect only its own tokens.
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      revocation: { enabled: true, allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: { enabled: true, logoutSource: logoutPage, postLogoutSuccessSource: loggedOutPage },
      claimsParameter: { enabled: false },
      userinfo: { enabled: true },
      // RA API clients: organisations script their RA work with OAuth client credentials, never a shared password.
      clientCredentials: { enabled: true },
      resourceIndicators: { enabled: false },
    },
    interactions: {
      policy: policy(deps),
      url: (_ctx, interaction) => `${deps.mountPath}/interaction/${interaction.uid}`,
    },
    // CIS2 gives refresh tokens to the relying parties registered for them (registered with offline_access, which gives
    // the refresh_token grant). oidc-provider drops offline_access from a request without prompt=consent (OpenID Connect
    // Core §11) and would then issue none, and CIS2 relying parties do not send prompt=consent. Such a refresh token is
    // bound to the SSO session (the library's expiresWithSession): signing out or a session end still ends it.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    loadExistingGrant: async (ctx) => {
      // Runs in every authorization (and its resume) before the code is made: the code records the session's acr, so
      // the session's acr becomes the value this request asked for and the session meets (acrMetBySession). When it
      // meets none, the acr_values check above sends the person to sign in again and the interaction sets it.
      const session = ctx.oidc.session!;
      const met = acrMetBySession(ctx);
      if (met && session.acr !== met) session.acr = met;
      const grantId = ctx.oidc.result?.consent?.grantId ?? session.grantIdFor(ctx.oidc.client!.clientId);
      return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined;
    },
    ttl: {
      AccessToken: (_ctx, _token, client) =>
        Number((client as unknown as Record<string, unknown>)['urn:opencis:access_token_ttl'] ?? 3_600),
      AuthorizationCode: 60,
      IdToken: 3_600,
      // Counted from the first refresh token of the chain: rotation never extends a grant past its registered lifetime.
      RefreshToken: (_ctx, token, client) =>
        Math.max(
          1,
          Number((client as unknown as Record<string, unknown>)['urn:opencis:refresh_token_ttl'] ?? 12 * 3_600) -
            token.totalLifetime(),
        ),
      Interaction: 3_600,
      // The SSO session lasts as long as an AAL3 session may (NIST SP 800-63B-4: 12 hours); the web session's idle
      // limits apply at each interaction.
      Session: 12 * 3_600,
      Grant: 12 * 3_600,
      ClientCredentials: 600,
    },
    renderError,
    clockTolerance: 5,
    // Every request the library makes (jwks_uri, back-channel logout) goes through the one guarded client: https to
    // public addresses only, checked at connect time, unless OUTBOUND_ALLOWED_RANGES lists the health network's.
    fetch: deps.fetch,
    // A relying party's JWK Set is a few keys: a larger answer is refused rather than read into memory.
    fetchResponseBodyLimits: {
      'client_id metadata document': 5 * 1024,
      jwks_uri: 64 * 1024,
      sector_identifier_uri: 64 * 1024,
    },
  };
  const provider = new Provider(deps.issuer, configuration);
  // Koa's proxy mode reads X-Forwarded-Proto/-Host/-For — but only the values OpenCIS's Fastify app decided to believe
  // (TRUST_PROXY): mount.ts replaces them on every request with Fastify's own protocol, host and client address, so a
  // forged header from an untrusted peer never changes an issuer-derived URL or redirect.
  provider.proxy = true;
  // First, so that it wraps the middleware below too: a store down or read-only answers 503, never server_error.
  answerStoreFailuresWith503(provider);
  // Then: a value the database refused is bad input (400 invalid_request), and unknown paths get OAuth-shaped JSON.
  answerInvalidInputWith400(provider);
  // Failed client authentications count against the caller's address (client secrets are guessable secrets too).
  limitClientAuthentication(provider, deps);
  // A code's (or refresh token's) use that the adapter deferred and the request has not recorded with a write (the
  // PostgreSQL adapter records it with the token it writes next; the Redis one always here): recorded before the
  // response leaves.
  // - The request gave tokens: if another request used the code or refresh token meanwhile, this one is the replay —
  //   its grant is revoked (the tokens it wrote with it) and its answer becomes invalid_grant, so nothing is sent.
  // - It failed for a reason of its own (bad input, a check): the use stands, as the library would have recorded it.
  // - It failed because a store was lost or read-only (a 503): it gave nothing, so nothing is used up, and the
  //   relying party's retry once the store is back is a refresh (or code exchange), not a replay.
  provider.use(async (ctx, next) => {
    let failed: { err: unknown } | null = null;
    try {
      await next();
    } catch (err) {
      failed = { err };
    }
    const deferred = takeDeferredConsume(ctx);
    if (deferred && !ctx.state.storeFailure && !(failed && storeFailure(failed.err))) {
      try {
        await deferred.now();
      } catch (err) {
        if ((err as { error?: string }).error !== 'invalid_grant') throw err;
        if (!failed && ctx.status < 400) {
          ctx.status = 400;
          ctx.set('cache-control', 'no-store');
          ctx.body = { error: 'invalid_grant', error_description: 'grant request is invalid' };
        }
      }
    }
    if (failed) throw failed.err;
  });
  // "You will be signed out of OpenCIS" (the logout page): a confirmed RP-initiated logout ends the OpenCIS session of
  // this browser too. Otherwise the next sign-in at any relying party would go straight through on that session — on a
  // shared workstation, as the person who had just signed out.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route !== 'end_session_confirm' || ctx.status !== 303 || !ctx.oidc.params?.logout) return;
    const token = ctx.cookies.get(SESSION_COOKIE);
    if (token) await endSession(deps.repos, token, deps.clock.now(), 'signed_out');
    ctx.cookies.set(SESSION_COOKIE, null, { path: '/', httpOnly: true, sameSite: 'lax', signed: false });
  });
  return provider;
}
