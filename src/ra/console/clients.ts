/**
 * Relying parties in the console (issue #14: what `opencis client` does, for RA staff with the power): list, register
 * (with the organisation it belongs to), look at one, change it, disable and enable it (a confirmation with a reason),
 * and re-key it. A new client secret is shown once, on the page that made it, and never again. The services decide
 * who may, and for which client (services/clients.ts, services/clients-admin.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../domain/errors.ts';
import { organisationsWhere } from '../../domain/policy.ts';
import { text as textSchema } from '../../domain/text.ts';
import type { WebDeps } from '../../http/deps.ts';
import { CIS2_SCOPES, listClients, registerClient, setClientStatus } from '../../services/clients.ts';
import { type ClientDetails, getClient, rekeyClient, updateClient } from '../../services/clients-admin.ts';
import { withDone } from './banners.ts';
import { type FieldMap, FormErrors, type FormValues, formErrorsFrom, formValues, list, text } from './forms.ts';
import { mayAnywhere, param, type RaCaller, raPage, renderRa } from './guard.ts';
import { dateTime } from './labels.ts';
import { NameBook, userIdsIn } from './names.ts';
import { organisationNames } from './queries.ts';

const fields: FieldMap = (path) => {
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
const defaultScopes = ['openid', 'profile', 'nationalrbacaccess', 'selectedrole'];

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
function jwksOf(values: FormValues, errors: FormErrors): unknown {
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
function settingsOf(values: FormValues, errors: FormErrors) {
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
function valuesOf(c: ClientDetails): FormValues {
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

export function registerRaClients(app: FastifyInstance, deps: WebDeps): void {
  const hidden = { schema: { hide: true } };
  const csrf = { preHandler: app.csrfProtection, schema: { hide: true } };

  function allowed(caller: RaCaller): void {
    if (!mayAnywhere(caller.actor, 'client:register')) {
      throw new AppError('auth.forbidden', { statement: 'client:register' });
    }
  }

  async function organisationOptions(caller: RaCaller) {
    const orgs = organisationsWhere(caller.actor, 'client:register');
    const codes = orgs === 'all' ? [] : [...orgs].sort();
    const names = await organisationNames(deps.db, codes);
    return [
      { value: '', text: 'Choose the organisation it belongs to' },
      ...codes.map((o) => ({ value: o, text: `${names.get(o) ?? o} (${o})` })),
    ];
  }

  function formOptions(values: FormValues) {
    const chosen = new Set(Array.isArray(values.scopes) ? values.scopes : values.scopes ? [values.scopes] : []);
    return {
      authMethods,
      aals,
      algs,
      scopes: CIS2_SCOPES.map((s) => ({ value: s, checked: chosen.has(s) })),
    };
  }

  async function clientFor(req: FastifyRequest, caller: RaCaller): Promise<ClientDetails> {
    return getClient(caller.ctx, decodeURIComponent(param(req, 'clientId')));
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
    const names = await NameBook.load(deps.db, userIdsIn([c.createdBy]), c.odsCode ? [c.odsCode] : []);
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

  // Disable and enable: a confirmation page with the reason the audit trail keeps.
  const statusCopy = {
    disable: {
      status: 'disabled' as const,
      heading: 'Disable a relying party',
      button: 'Disable it',
      warning:
        'It can no longer sign anyone in, redeem codes, refresh tokens or call userinfo, on every node within 10 seconds. People signed in to it stay signed in to OpenCIS.',
      done: 'client_disabled' as const,
    },
    enable: {
      status: 'active' as const,
      heading: 'Enable a relying party again',
      button: 'Enable it',
      warning: 'It can sign people in again at once.',
      done: 'client_enabled' as const,
    },
  };

  function confirmPage(
    reply: FastifyReply,
    caller: RaCaller,
    c: ClientDetails,
    verb: 'disable' | 'enable',
    ctx: Record<string, unknown> = {},
    status = 200,
  ) {
    const copy = statusCopy[verb];
    return renderRa(
      reply,
      caller,
      'ra/confirm.njk',
      {
        title: `${copy.heading}: ${c.name}`,
        heading: copy.heading,
        button: copy.button,
        warning: copy.warning,
        reasonRequired: true,
        caption: `${c.name}, client ID ${c.clientId}`,
        backHref: `/ra/clients/${encodeURIComponent(c.clientId)}`,
        backText: c.name,
        action: `/ra/clients/${encodeURIComponent(c.clientId)}/${verb}`,
        values: {},
        ...ctx,
      },
      status,
    );
  }

  for (const verb of ['disable', 'enable'] as const) {
    app.get(`/ra/clients/:clientId/${verb}`, hidden, async (req, reply) => {
      const caller = await raPage(deps, req, reply);
      if (!caller) return reply;
      allowed(caller);
      return confirmPage(reply, caller, await clientFor(req, caller), verb);
    });
    app.post(`/ra/clients/:clientId/${verb}`, csrf, async (req, reply) => {
      const caller = await raPage(deps, req, reply);
      if (!caller) return reply;
      allowed(caller);
      const c = await clientFor(req, caller);
      const values = formValues(req.body);
      const reason = textSchema(1000).safeParse(text(values, 'reason'));
      if (!reason.success) {
        const errors = new FormErrors();
        errors.add('reason', `Enter why it is being ${verb}d (at most 1000 characters)`);
        return confirmPage(reply, caller, c, verb, { values, ...errors.view() }, 400);
      }
      await setClientStatus(caller.ctx, c.clientId, statusCopy[verb].status, reason.data);
      return reply.redirect(withDone(`/ra/clients/${encodeURIComponent(c.clientId)}`, statusCopy[verb].done), 303);
    });
  }

  // Re-key: a new secret (shown once) or new public keys, with a reason.
  function rekeyPage(
    reply: FastifyReply,
    caller: RaCaller,
    c: ClientDetails,
    values: FormValues = {},
    errors?: FormErrors,
  ) {
    return renderRa(
      reply,
      caller,
      'ra/client-rekey.njk',
      {
        title: `New keys: ${c.name}`,
        client: { clientId: c.clientId, name: c.name, href: `/ra/clients/${encodeURIComponent(c.clientId)}` },
        usesKeys: c.authMethod === 'private_key_jwt',
        values,
        ...(errors?.view() ?? {}),
      },
      errors ? 400 : 200,
    );
  }

  app.get('/ra/clients/:clientId/rekey', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    allowed(caller);
    return rekeyPage(reply, caller, await clientFor(req, caller));
  });

  app.post('/ra/clients/:clientId/rekey', csrf, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    allowed(caller);
    const c = await clientFor(req, caller);
    const values = formValues(req.body);
    const errors = new FormErrors();
    const jwks = jwksOf(values, errors);
    if (!text(values, 'reason')) errors.add('reason', 'Enter why it needs new keys');
    if (errors.any) return rekeyPage(reply, caller, c, values, errors);
    try {
      const { clientSecret } = await rekeyClient(caller.ctx, c.clientId, {
        reason: text(values, 'reason'),
        ...(jwks !== undefined ? { jwks } : {}),
        ...(text(values, 'jwksUri') ? { jwksUri: text(values, 'jwksUri') } : {}),
      });
      if (!clientSecret) {
        return reply.redirect(withDone(`/ra/clients/${encodeURIComponent(c.clientId)}`, 'client_rekeyed'), 303);
      }
      return renderRa(reply, caller, 'ra/client-secret.njk', {
        title: 'New client secret',
        done: 'New keys saved. The old ones no longer work.',
        rekeyed: true,
        client: { clientId: c.clientId, name: c.name, href: `/ra/clients/${encodeURIComponent(c.clientId)}` },
        clientSecret,
      });
    } catch (err) {
      return rekeyPage(reply, caller, c, values, formErrorsFrom(err, fields, { id: 'reason' }));
    }
  });
}
