/**
 * Disabling, enabling and re-keying a relying party in the console: a confirmation page with the reason the audit
 * trail keeps, and new keys — a new client secret, shown once on the page that made it, or new public keys.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { text as textSchema } from '../../domain/text.ts';
import type { WebDeps } from '../../http/deps.ts';
import { setClientStatus } from '../../services/clients.ts';
import { type ClientDetails, rekeyClient } from '../../services/clients-admin.ts';
import { withDone } from './banners.ts';
import { allowed, clientFor, fields, jwksOf } from './client-form.ts';
import { FormErrors, type FormValues, formErrorsFrom, formValues, text } from './forms.ts';
import { type RaCaller, raPage, renderRa } from './guard.ts';

/** The disable, enable and re-key pages of one relying party (registerRaClients registers them with the others). */
export function registerRaClientLifecycle(app: FastifyInstance, deps: WebDeps): void {
  const hidden = { schema: { hide: true } };
  const csrf = { preHandler: app.csrfProtection, schema: { hide: true } };

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
