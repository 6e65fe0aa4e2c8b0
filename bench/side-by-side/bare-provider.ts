/**
 * The baseline for the side-by-side benchmark: oidc-provider alone, in a process of its own. Configured like OpenCIS
 * where the protocol is concerned (code flow, PKCE required, client_secret_basic, RS256 ID tokens, refresh tokens), an
 * in-process Map adapter with expiry (the library's memory adapter is an LRU of 1,000 that evicts codes under load), a
 * findAccount answering from memory, and an interaction that finishes login and consent at once — no authentication
 * at all: the floor of what an OpenID Connect sign-in costs with this library.
 *
 * Run: node --import tsx bench/side-by-side/bare-provider.ts PORT — prints one JSON line when ready.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import Provider, { type Configuration } from 'oidc-provider';
import { MapAdapter } from '../support/map-adapter.ts';

export const BARE_REDIRECT_URI = 'http://127.0.0.1:9/callback';

async function main(): Promise<void> {
  const port = Number(process.argv[2]);
  if (!Number.isInteger(port) || port <= 0) throw new Error('usage: bare-provider.ts PORT');
  const issuer = `http://127.0.0.1:${port}`;
  const clientId = 'bare-bench-client';
  const clientSecret = randomBytes(32).toString('base64url');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...rsa.privateKey.export({ format: 'jwk' }), kid: 'bare-rs256', alg: 'RS256', use: 'sig' };
  const configuration: Configuration = {
    adapter: MapAdapter,
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [BARE_REDIRECT_URI],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: 'openid profile offline_access',
      },
    ],
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub, name: 'Bench Signin', given_name: 'Bench', family_name: 'Signin' }),
    }),
    claims: { openid: ['sub'], profile: ['name', 'given_name', 'family_name'] },
    responseTypes: ['code'],
    pkce: { required: () => true },
    clientAuthMethods: ['client_secret_basic'],
    jwks: { keys: [jwk as never] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    features: { devInteractions: { enabled: false }, userinfo: { enabled: true } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    issueRefreshToken: async () => true,
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 3600,
      Session: 43_200,
      Grant: 43_200,
      RefreshToken: 43_200,
    },
  };
  const provider = new Provider(issuer, configuration);
  const callback = provider.callback();
  let n = 0;
  const interaction = async (req: IncomingMessage, res: ServerResponse) => {
    const details = await provider.interactionDetails(req, res);
    const accountId = String(100_000_000_000 + (n++ % 1_000));
    const grant = new provider.Grant({ accountId, clientId: String(details.params.client_id) });
    grant.addOIDCScope(String(details.params.scope ?? 'openid'));
    const grantId = await grant.save();
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId, acr: 'AAL3_ANY', amr: ['SMARTCARD'] }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
  };
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      interaction(req, res).catch((err: Error) => {
        res.statusCode = 500;
        res.end(err.message);
      });
    } else {
      void callback(req, res);
    }
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  setInterval(() => MapAdapter.sweep(), 5_000).unref();
  process.stdout.write(`${JSON.stringify({ ready: true, issuer, clientId, clientSecret, pid: process.pid })}\n`);
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
