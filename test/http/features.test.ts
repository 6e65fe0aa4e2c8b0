import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { backend } from '../support/db.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/**
 * The server's features are encapsulated Fastify plugins (issue 16 acceptance 4): each registers its own routes and
 * hooks, and a hook of one never runs for another's routes.
 */
let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(() => server?.close());

test(`[${backend}] sign-in, portal, CIS1, the REST API, the RA console and PKI are plugins of their own`, () => {
  const tree = server.app.printPlugins();
  for (const name of ['signin', 'portal', 'cis1', 'api', 'ra', 'pki']) {
    assert.match(tree, new RegExp(`^[└├]─[─┬] ${name} `, 'm'), `${name} is a plugin`);
  }
});

test(`[${backend}] the REST API's hooks stay in it: a console page without a session gets the console's answer, not the API's 401 JSON`, async () => {
  // The API's preValidation (who is calling, before validation) answers 401 JSON to an /api change without credentials.
  const api = await fetch(`${server.url}/api/v1/access-requests`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: '{}',
  });
  assert.equal(api.status, 401);
  assert.equal(((await api.json()) as { error: { code: string } }).error.code, 'auth.required');
  // The console's own route for the same action, with no session: a page (the console's guard), not that JSON.
  const page = await fetch(`${server.url}/ra`, { headers: { accept: 'text/html' }, redirect: 'manual' });
  assert.notEqual(page.headers.get('content-type')?.includes('application/json'), true);
  assert.ok([200, 302, 303].includes(page.status), String(page.status));
});
