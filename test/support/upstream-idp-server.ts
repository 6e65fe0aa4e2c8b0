import { createServer } from 'node:http';
import Provider, { type ClientMetadata } from 'oidc-provider';

/**
 * An organisation's identity provider for the federation tests: the real oidc-provider, in its own process, with its
 * development login pages (any user name signs in as that account). Started by test/support/upstream-idp.ts.
 * Environment: PORT; ISSUER (default http://127.0.0.1:PORT — another value makes a provider that states a wrong
 * issuer); CLIENTS, a JSON array of client metadata.
 */
const port = Number(process.env.PORT);
const issuer = process.env.ISSUER ?? `http://127.0.0.1:${port}`;
const clients = JSON.parse(process.env.CLIENTS ?? '[]') as ClientMetadata[];

const provider = new Provider(issuer, {
  clients,
  findAccount: async (_ctx, id) => ({
    accountId: id,
    // Entra ID's shape: sub, the immutable object ID oid, name and email.
    claims: async () => ({ sub: id, oid: `oid-${id}`, name: `${id} (NHSmail)`, email: `${id}@nhs.net` }),
  }),
  claims: { openid: ['sub'], profile: ['oid', 'name'], email: ['email'] },
  conformIdTokenClaims: false,
  cookies: { keys: ['upstream-test-cookie-key-0123456789'] },
  features: { devInteractions: { enabled: true } },
});
// The library warns about its development interactions on every start: expected here.
provider.on('server_error', (_ctx: unknown, err: Error) =>
  process.stderr.write(`upstream server_error ${err.message}\n`),
);

const server = createServer(provider.callback());
server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
