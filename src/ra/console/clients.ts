/**
 * Relying parties in the console (issue #14: what `opencis client` does, for RA staff with the power): list, register
 * (with the organisation it belongs to), look at one, change it, disable and enable it (a confirmation with a reason),
 * and re-key it. A new client secret is shown once, on the page that made it, and never again. The services decide
 * who may, and for which client (services/clients.ts, services/clients-admin.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { organisationsWhere } from '../../domain/policy.ts';
import type { WebDeps } from '../../http/deps.ts';
import { listClients, registerClient } from '../../services/clients.ts';
import { updateClient } from '../../services/clients-admin.ts';
import { withDone } from './banners.ts';
import { allowed, clientFor, defaultScopes, fields, formOptions, jwksOf, settingsOf, valuesOf } from './client-form.ts';
import { registerRaClientLifecycle } from './client-lifecycle.ts';
import { FormErrors, type FormValues, formErrorsFrom, formValues, text } from './forms.ts';
import { type RaCaller, raPage, renderRa } from './guard.ts';
import { dateTime } from './labels.ts';
import { NameBook, userIdsIn } from './names.ts';

export function registerRaClients(app: FastifyInstance, deps: WebDeps): void {
  const hidden = { schema: { hide: true } };
  const csrf = { preHandler: app.csrfProtection, schema: { hide: true } };

  async function organisationOptions(caller: RaCaller) {
    const orgs = organisationsWhere(caller.actor, 'client:register');
    const codes = orgs === 'all' ? [] : [...orgs].sort();
    const names = await deps.repos.organisations.organisationNames(codes);
    return [
      { value: '', text: 'Choose the organisation it belongs to' },
      ...codes.map((o) => ({ value: o, text: `${names.get(o) ?? o} (${o})` })),
    ];
  }

  app.get('/ra/clients', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    allowed(caller);
    const clients = await listClients(caller.ctx);
    return renderRa(reply, caller, 'ra/clients.njk', {
      title: 'Relying parties',
      clients: clients.map((c) => ({
        clientId: c.clientId,
        href: `/ra/clients/${encodeURIComponent(c.clientId)}`,
        name: c.name,
        status: c.status === 'active' ? 'active' : 'disabled',
        kind:
          Array.isArray(c.metadata.grant_types) && c.metadata.grant_types.includes('client_credentials')
            ? 'API client'
            : 'Sign-in',
        auth: String(c.metadata.token_endpoint_auth_method ?? ''),
        minimumAal: c.minimumAal,
      })),
    });
  });

  async function newPage(reply: FastifyReply, caller: RaCaller, values: FormValues, errors?: FormErrors) {
    return renderRa(
      reply,
      caller,
      'ra/client-form.njk',
      {
        title: 'Register a relying party',
        mode: 'new',
        action: '/ra/clients/new',
        values,
        organisations: await organisationOptions(caller),
        ...formOptions(values),
        ...(errors?.view() ?? {}),
      },
      errors ? 400 : 200,
    );
  }

  app.get('/ra/clients/new', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    allowed(caller);
    return newPage(reply, caller, {
      scopes: defaultScopes,
      authMethod: 'private_key_jwt',
      minimumAal: '3',
      alg: 'RS256',
    });
  });

  app.post('/ra/clients/new', csrf, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    allowed(caller);
    const values = formValues(req.body);
    const errors = new FormErrors();
    const odsCode = text(values, 'odsCode');
    // A person registers a client for an organisation (issue #10 makes clients belong to one); the service decides.
    if (!odsCode) errors.add('odsCode', 'Choose the organisation the relying party belongs to');
    if (!text(values, 'name')) errors.add('name', 'Enter the name people will see');
    const settings = settingsOf(values, errors);
    const jwks = jwksOf(values, errors);
    if (errors.any) return newPage(reply, caller, values, errors);
    try {
      const { client, clientSecret } = await registerClient(caller.ctx, {
        ...settings,
        odsCode,
        tokenEndpointAuthMethod: text(values, 'authMethod') || 'private_key_jwt',
        ...(jwks !== undefined ? { jwks } : {}),
        ...(text(values, 'jwksUri') ? { jwksUri: text(values, 'jwksUri') } : {}),
      });
      return renderRa(reply, caller, 'ra/client-secret.njk', {
        title: 'Relying party registered',
        done: 'Relying party registered.',
        client: {
          clientId: client.clientId,
          name: client.name,
          href: `/ra/clients/${encodeURIComponent(client.clientId)}`,
        },
        clientSecret,
      });
    } catch (err) {
      return newPage(reply, caller, values, formErrorsFrom(err, fields, { id: 'name' }));
    }
  });

  app.get('/ra/clients/:clientId', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    allowed(caller);
    const c = await clientFor(req, caller);
    const names = await NameBook.load(deps.repos, userIdsIn([c.createdBy]), c.odsCode ? [c.odsCode] : []);
    const m = c.metadata;
    return renderRa(reply, caller, 'ra/client.njk', {
      title: c.name,
      client: {
        ...c,
        href: `/ra/clients/${encodeURIComponent(c.clientId)}`,
        organisation: c.odsCode ? names.organisation(c.odsCode) : null,
        createdBy: names.actor(c.createdBy),
        created: dateTime(c.createdAt),
        updated: dateTime(c.updatedAt),
        redirectUris: (m.redirect_uris as string[] | undefined) ?? [],
        postLogoutRedirectUris: (m.post_logout_redirect_uris as string[] | undefined) ?? [],
        backchannelLogoutUri: m.backchannel_logout_uri as string | undefined,
        scope: String(m.scope ?? ''),
        alg: String(m.id_token_signed_response_alg ?? ''),
        keys: m.jwks_uri
          ? `JWKS URI ${String(m.jwks_uri)}`
          : m.jwks
            ? `${(m.jwks as { keys: unknown[] }).keys.length} public key(s) registered`
            : null,
        accessTtl: m['urn:opencis:access_token_ttl'],
        refreshTtl: m['urn:opencis:refresh_token_ttl'],
      },
    });
  });

  async function editPage(
    req: FastifyRequest,
    reply: FastifyReply,
    caller: RaCaller,
    values?: FormValues,
    errors?: FormErrors,
  ) {
    const c = await clientFor(req, caller);
    const v = values ?? valuesOf(c);
    return renderRa(
      reply,
      caller,
      'ra/client-form.njk',
      {
        title: `Change ${c.name}`,
        mode: 'edit',
        apiClient: c.kind === 'api',
        client: { clientId: c.clientId, name: c.name, href: `/ra/clients/${encodeURIComponent(c.clientId)}` },
        action: `/ra/clients/${encodeURIComponent(c.clientId)}/edit`,
        values: v,
        ...formOptions(v),
        ...(errors?.view() ?? {}),
      },
      errors ? 400 : 200,
    );
  }

  app.get('/ra/clients/:clientId/edit', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    allowed(caller);
    return editPage(req, reply, caller);
  });

  app.post('/ra/clients/:clientId/edit', csrf, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    allowed(caller);
    const c = await clientFor(req, caller);
    const values = formValues(req.body);
    const errors = new FormErrors();
    if (!text(values, 'name')) errors.add('name', 'Enter the name people will see');
    const settings = settingsOf(values, errors);
    if (errors.any) return editPage(req, reply, caller, values, errors);
    try {
      await updateClient(caller.ctx, c.clientId, { ...settings, reason: text(values, 'reason') || undefined });
    } catch (err) {
      return editPage(req, reply, caller, values, formErrorsFrom(err, fields, { id: 'name' }));
    }
    return reply.redirect(withDone(`/ra/clients/${encodeURIComponent(c.clientId)}`, 'client_updated'), 303);
  });

  registerRaClientLifecycle(app, deps);
}
