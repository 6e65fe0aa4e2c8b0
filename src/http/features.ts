import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { WebDeps } from './deps.ts';

/**
 * A feature of the server (issue 16 acceptance 4) — sign-in, the portal, the RA console, CIS1, the REST API, OpenID
 * Connect, the PKI endpoints — as an encapsulated Fastify plugin: the routes, schemas and hooks it registers are its
 * own and reach no other feature. What every feature shares (pages, CSRF, errors, route validation, metrics) is the
 * app's, installed before them (src/app.ts). `app.printPlugins()` names them.
 */
export function feature(
  name: string,
  register: (app: FastifyInstance, deps: WebDeps) => void | Promise<void>,
): FastifyPluginAsync<{ deps: WebDeps }> {
  const plugin: FastifyPluginAsync<{ deps: WebDeps }> = async (app, options) => {
    await register(app, options.deps);
  };
  Object.defineProperty(plugin, 'name', { value: name });
  return plugin;
}
