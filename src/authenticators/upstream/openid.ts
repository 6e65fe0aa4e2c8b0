import * as oidc from 'openid-client';
import { AppError } from '../../domain/errors.ts';

/**
 * OpenCIS as the relying party of an organisation's own OpenID Connect identity provider (NHSmail is Microsoft Entra
 * ID): the code flow with state, nonce and PKCE S256, and the ID token checked by openid-client — its signature against
 * the provider's published keys, `iss` (the registered issuer, which discovery must state exactly; RFC 9207's `iss`
 * in the response too), `aud`/`azp` (OpenCIS's client ID), `exp`/`iat`, `nonce`. Nothing it sends is trusted before
 * those checks; an answer that fails them is `upstream.response_invalid`, a provider that does not answer
 * `upstream.unavailable` — a page for the person, never a 500.
 */
export interface UpstreamProvider {
  idpId: string;
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** The ID token claim naming the account: `sub`, or Entra ID's immutable `oid`. */
  subjectClaim: 'sub' | 'oid';
}

export interface PendingFlow {
  state: string;
  nonce: string;
  verifier: string;
}

/** Plain http only to a provider on this machine (tests, a local development provider); https everywhere else. */
export function isLoopbackHttp(issuer: string): boolean {
  const u = new URL(issuer);
  return u.protocol === 'http:' && (u.hostname === 'localhost' || u.hostname === '127.0.0.1' || u.hostname === '[::1]');
}

const DISCOVERY_TTL_MS = 10 * 60_000;
const TIMEOUT_S = 10;

export class UpstreamClient {
  private readonly configurations = new Map<string, { at: number; key: string; config: oidc.Configuration }>();

  /** The provider's discovered configuration, kept for ten minutes (and discovered again after a failure). */
  private async configuration(p: UpstreamProvider): Promise<oidc.Configuration> {
    const key = `${p.issuer}\u0000${p.clientId}\u0000${p.clientSecret}`;
    const cached = this.configurations.get(p.idpId);
    if (cached && cached.key === key && Date.now() - cached.at < DISCOVERY_TTL_MS) return cached.config;
    const insecure = isLoopbackHttp(p.issuer);
    let config: oidc.Configuration;
    try {
      config = await oidc.discovery(new URL(p.issuer), p.clientId, undefined, oidc.ClientSecretPost(p.clientSecret), {
        timeout: TIMEOUT_S,
        ...(insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
      });
    } catch (err) {
      this.configurations.delete(p.idpId);
      throw classify(err);
    }
    config.timeout = TIMEOUT_S;
    this.configurations.set(p.idpId, { at: Date.now(), key, config });
    return config;
  }

  /** Where to send the browser, and what to keep (sealed, in a cookie) to check the answer. */
  async start(p: UpstreamProvider, redirectUri: string): Promise<{ url: string; pending: PendingFlow }> {
    const config = await this.configuration(p);
    const pending = { state: oidc.randomState(), nonce: oidc.randomNonce(), verifier: oidc.randomPKCECodeVerifier() };
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'openid profile email',
      state: pending.state,
      nonce: pending.nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(pending.verifier),
      code_challenge_method: 'S256',
    });
    return { url: url.href, pending };
  }

  /**
   * The answer at the callback, checked: the account's subject (the registered claim) and the verified ID token claims.
   * `callbackUrl` is the full URL the browser arrived at.
   */
  async finish(
    p: UpstreamProvider,
    callbackUrl: URL,
    pending: PendingFlow,
  ): Promise<{ subject: string; claims: Record<string, unknown> }> {
    const config = await this.configuration(p);
    let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
    try {
      tokens = await oidc.authorizationCodeGrant(config, callbackUrl, {
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        pkceCodeVerifier: pending.verifier,
        idTokenExpected: true,
      });
    } catch (err) {
      throw classify(err);
    }
    const claims = tokens.claims() as Record<string, unknown> | undefined;
    const subject = claims?.[p.subjectClaim];
    if (!claims || typeof subject !== 'string' || subject.length === 0 || subject.length > 255) {
      throw new AppError('upstream.response_invalid', { reason: `no ${p.subjectClaim} claim` });
    }
    return { subject, claims };
  }

  forget(idpId: string): void {
    this.configurations.delete(idpId);
  }
}

/** What went wrong, for the person's page: the provider refused or was cancelled, did not answer, or answered wrong. */
function classify(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof oidc.AuthorizationResponseError) {
    return new AppError('upstream.denied', { error: err.error });
  }
  if (err instanceof oidc.ResponseBodyError) {
    // The provider answered with an OAuth error (e.g. invalid_grant: a code replayed, or issued to another client).
    return new AppError('upstream.response_invalid', { error: err.error });
  }
  if (err instanceof oidc.ClientError) {
    const cause = (err as { cause?: unknown }).cause;
    // A network failure or timeout surfaces as a ClientError wrapping it (or as a TypeError from fetch); a provider
    // answering 5xx is down for the person's purposes too.
    if (isNetworkFailure(cause)) return new AppError('upstream.unavailable');
    if (cause instanceof Response && cause.status >= 500) return new AppError('upstream.unavailable');
    return new AppError('upstream.response_invalid', { reason: err.code ?? 'invalid response' });
  }
  if (isNetworkFailure(err)) return new AppError('upstream.unavailable');
  return new AppError('upstream.response_invalid', { reason: 'invalid response' });
}

function isNetworkFailure(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return true;
  if (err instanceof TypeError && /fetch failed/i.test(err.message)) return true;
  const cause = (err as { cause?: unknown }).cause;
  const code = (cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|UND_ERR_)/.test(code);
}
