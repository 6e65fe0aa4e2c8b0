import Provider, { type Configuration, interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import { acrCandidates, satisfies, supportedAcrValues } from '../domain/credentials/acr.ts';
import { type Aal, authenticationMethods } from '../domain/credentials/assurance.ts';
import { ukDate } from '../domain/dates.ts';
import { SESSION_COOKIE } from '../http/web.ts';
import type { Sealer } from '../secrets/sealer.ts';
import type { Clock } from '../services/context.ts';
import { currentSession, endSession } from '../services/sessions.ts';
import type { Database } from '../storage/database.ts';
import { cis2ClaimsForGrant, scopeClaims } from './claims.ts';
import { API_SCOPE, CIS2_SCOPES, clientMetadataForProvider } from './clients.ts';
import type { SigningKeys } from './keys.ts';
import { errorPage, loggedOutPage, logoutPage } from './pages.ts';
import { takeClaims, takeDeferredConsume } from './read-together.ts';
import { answerStoreFailuresWith503 } from './store-failures.ts';

/**
 * oidc-provider configured as CIS2 (DOMAIN §7): the CIS2 endpoint names, authorization code flow only with PKCE S256,
 * private_key_jwt or client secrets, RS256 ID tokens by default, the NHS scopes and claims, acr_values and role
 * selection. Only what is OpenCIS's own is written here: accounts and claims, interactions, storage, keys, pages.
 * Every protocol step is the library's.
 */
export interface ProviderDeps {
  issuer: string;
  /** Path prefix the provider is mounted at (the issuer's path), e.g. /oidc. */
  mountPath: string;
  db: Database;
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
 * The login prompt with OpenCIS's extra reasons to interact: the person's OpenCIS session has ended (signed out, idle
 * past its NIST limit, card cancelled, leaver…) — single sign-on never outlives it; an unmet acr_values; role selection.
 */
function policy(deps: ProviderDeps) {
  const { Check, base } = interactionPolicy;
  const prompts = base();
  const login = prompts.get('login')!;
  login.checks.add(
    new Check('web_session', 'the OpenCIS session has ended', async (ctx) => {
      const { oidc } = ctx;
      const accountId = oidc.session!.accountId;
      if (!accountId || oidc.result?.login) return Check.NO_NEED_TO_PROMPT;
      const web = await currentSession(deps.db, ctx.cookies.get(SESSION_COOKIE) ?? undefined, deps.clock.now());
      return web?.userId === accountId ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
    }),
  );
  login.checks.add(
    new Check('acr_values', 'the session does not meet the requested assurance', (ctx) => {
      const { oidc } = ctx;
      const session = oidc.session!;
      if (!session.accountId || oidc.result?.login) return Check.NO_NEED_TO_PROMPT;
      const { candidates } = acrCandidates(oidc.params!.acr_values as string | undefined, minimumAalOf(ctx));
      const reached = { aal: aalOfAmr(session.amr), amr: session.amr ?? [] };
      return candidates.some((acr) => satisfies(acr, reached)) ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
    }),
  );
  login.checks.add(
    new Check('select_role', 'the relying party asked for a role profile to be chosen', (ctx) => {
      const { oidc } = ctx;
      if (oidc.result?.login) return Check.NO_NEED_TO_PROMPT;
      const scopes = String(oidc.params!.scope ?? '').split(' ');
      return scopes.includes('selectedrole') ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
    }),
  );
  return prompts;
}

export function createProvider(deps: ProviderDeps): Provider {
  // Clients live in the relying-party registry (oidc_clients): the library asks the 'Client' adapter for them by ID.
  const clientAdapter = {
    find: (id: string) => clientMetadataForProvider(deps.db, deps.sealer, id),
  };
  const artefacts = deps.adapter as (name: string) => object;
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
        return cis2ClaimsForGrant(deps.db, sub, now, kind, grantId, known) as never;
      },
    }),
    claims: scopeClaims,
    scopes: [...CIS2_SCOPES, API_SCOPE],
    acrValues: supportedAcrValues,
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    pkce: { required: () => true },
    clientAuthMethods: ['private_key_jwt', 'client_secret_basic', 'client_secret_post'],
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256'],
      clientAuthSigningAlgValues: ['RS256', 'PS256', 'ES256'],
      userinfoSigningAlgValues: ['RS256', 'PS256', 'ES256'],
    },
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
      const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session!.grantIdFor(ctx.oidc.client!.clientId);
      return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined;
    },
    ttl: {
      AccessToken: (_ctx, _token, client) =>
        Number((client as unknown as Record<string, unknown>)['urn:opencis:access_token_ttl'] ?? 3_600),
      AuthorizationCode: 60,
      IdToken: 3_600,
      RefreshToken: (_ctx, _token, client) =>
        Number((client as unknown as Record<string, unknown>)['urn:opencis:refresh_token_ttl'] ?? 12 * 3_600),
      Interaction: 3_600,
      // The SSO session lasts as long as an AAL3 session may (NIST SP 800-63B-4: 12 hours); the web session's idle
      // limits apply at each interaction.
      Session: 12 * 3_600,
      Grant: 12 * 3_600,
      ClientCredentials: 600,
    },
    renderError: errorPage,
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
  provider.proxy = true;
  // CIS2 ID tokens carry at_hash (DOMAIN §7); oidc-provider adds it only to ID tokens from the authorization endpoint.
  // Those from the token endpoint (code and refresh grants) get it here: an opaque access token's value is its jti.
  const { IdToken } = provider;
  const issue = IdToken.prototype.issue;
  IdToken.prototype.issue = function issueWithAtHash(this: InstanceType<typeof IdToken>, options) {
    const accessToken = options.use === 'idtoken' ? this.ctx?.oidc?.entities?.AccessToken : undefined;
    if (accessToken?.jti && this.extra.at_hash === undefined) this.set('at_hash', accessToken.jti);
    return issue.call(this, options);
  };
  // First, so that it wraps the middleware below too: a store down or read-only answers 503, never server_error.
  answerStoreFailuresWith503(provider);
  // A code's (or refresh token's) use that the adapter deferred to the request's next write, when the request wrote
  // nothing after it (it failed before giving a token): recorded before the response leaves. A replay found then has
  // its grant revoked; the request failed already, so its answer stands.
  provider.use(async (ctx, next) => {
    try {
      await next();
    } finally {
      await takeDeferredConsume(ctx)
        ?.now()
        .catch((err: unknown) => {
          if ((err as { error?: string }).error !== 'invalid_grant') throw err;
        });
    }
  });
  // "You will be signed out of OpenCIS" (the logout page): a confirmed RP-initiated logout ends the OpenCIS session of
  // this browser too. Otherwise the next sign-in at any relying party would go straight through on that session — on a
  // shared workstation, as the person who had just signed out.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route !== 'end_session_confirm' || ctx.status !== 303 || !ctx.oidc.params?.logout) return;
    const token = ctx.cookies.get(SESSION_COOKIE);
    if (token) await endSession(deps.db, token, deps.clock.now(), 'signed_out');
    ctx.cookies.set(SESSION_COOKIE, null, { path: '/', httpOnly: true, sameSite: 'lax', signed: false });
  });
  return provider;
}
