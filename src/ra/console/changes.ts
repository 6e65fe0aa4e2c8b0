/** Changes to a person from their page (DOMAIN §5.4): suspend/restore, leaver, re-join, name, authenticators. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../domain/errors.ts';
import { nameChangeEvidenceTypes } from '../../domain/identity/documents.ts';
import { authorize } from '../../domain/policy.ts';
import { text as textSchema } from '../../domain/text.ts';
import type { WebDeps } from '../../http/deps.ts';
import type { ServiceContext } from '../../services/context.ts';
import { changeName, markLeaver, rejoin, restore, suspend } from '../../services/ra.ts';
import { removeTotp, totpAuthenticatorsOf } from '../../services/totp.ts';
import { removeWebauthnCredential, webauthnCredentialsOf } from '../../services/webauthn.ts';
import { type DoneCode, withDone } from './banners.ts';
import { confirmPage, reasonField } from './confirm.ts';
import { type FieldMap, FormErrors, type FormValues, formErrorsFrom, formValues, optional, text } from './forms.ts';
import { param, type RaCaller, raPage, renderRa } from './guard.ts';
import { personFor, personSummary } from './people.ts';

interface StatusAction {
  heading: string;
  button: string;
  warning?: string;
  done: DoneCode;
  run: (ctx: ServiceContext, userId: string, input: unknown) => Promise<unknown>;
}

const statusActions: Record<string, StatusAction> = {
  suspend: {
    heading: 'Suspend',
    button: 'Suspend this person',
    warning: 'They lose all access at once and every session they have ends. You can restore them later.',
    done: 'suspended',
    run: suspend,
  },
  restore: { heading: 'Restore', button: 'Restore this person', done: 'restored', run: restore },
  leaver: {
    heading: 'Mark as a leaver',
    button: 'Mark as a leaver',
    warning:
      'Every role profile ends today, every smartcard is cancelled and its certificate revoked, every security key, passkey and authenticator app is removed, pending requests are withdrawn and every session ends. This cannot be undone except by re-joining, which gives no access back.',
    done: 'leaver',
    run: markLeaver,
  },
  rejoin: {
    heading: 'Re-join',
    button: 'Re-join under the same user ID',
    warning: 'They keep their user ID. Their access must be requested again.',
    done: 'rejoined',
    run: rejoin,
  },
};

function evidenceOptions() {
  return [
    { value: '', text: 'Choose the evidence you saw' },
    ...nameChangeEvidenceTypes.map((t) => ({
      value: t,
      text: t.charAt(0).toUpperCase() + t.slice(1).replaceAll('_', ' '),
    })),
  ];
}

const nameFields: FieldMap = (path) =>
  (
    ({
      title: { id: 'title', label: 'Title' },
      givenName: { id: 'givenName', label: 'Given name' },
      middleNames: { id: 'middleNames', label: 'Middle names' },
      familyName: { id: 'familyName', label: 'Family name' },
      preferredName: { id: 'preferredName', label: 'Preferred name' },
      '(body)': { id: 'familyName', label: 'Name:' },
      'evidence.type': { id: 'evidenceType', label: 'Evidence:' },
      evidence: { id: 'evidenceType', label: 'Evidence:' },
      'evidence.lastChars': { id: 'evidenceLastChars', label: 'Evidence number:' },
      reason: { id: 'reason', label: 'Reason:' },
    }) as Record<string, { id: string; label: string }>
  )[path];

export function registerRaChanges(app: FastifyInstance, deps: WebDeps): void {
  const hidden = { schema: { hide: true } };
  const csrf = { preHandler: app.csrfProtection, schema: { hide: true } };

  // Suspend, restore, leaver, re-join: a confirmation page with the reason the audit trail keeps.
  for (const [name, action] of Object.entries(statusActions)) {
    app.get(`/ra/people/:userId/${name}`, hidden, async (req, reply) => {
      const caller = await raPage(deps, req, reply);
      if (!caller) return reply;
      return confirmPage(deps, req, reply, caller, { ...action, reasonRequired: true });
    });
    app.post(`/ra/people/:userId/${name}`, csrf, async (req, reply) => {
      const caller = await raPage(deps, req, reply);
      if (!caller) return reply;
      const { person } = await personFor(deps, caller, param(req, 'userId'));
      const values = formValues(req.body);
      try {
        await action.run(caller.ctx, person.userId, { reason: text(values, 'reason') });
      } catch (err) {
        const errors = formErrorsFrom(err, reasonField, { id: 'reason' });
        return confirmPage(
          deps,
          req,
          reply,
          caller,
          { ...action, reasonRequired: true, values, ...errors.view() },
          400,
        );
      }
      return reply.redirect(withDone(`/ra/people/${person.userId}`, action.done), 303);
    });
  }

  async function namePage(
    req: FastifyRequest,
    reply: FastifyReply,
    caller: RaCaller,
    values?: FormValues,
    errors?: FormErrors,
  ) {
    const { person } = await personFor(deps, caller, param(req, 'userId'));
    return renderRa(
      reply,
      caller,
      'ra/name.njk',
      {
        title: `Change name: ${personSummary(person).name}`,
        person: personSummary(person),
        values: values ?? {
          title: person.title ?? '',
          givenName: person.givenName,
          middleNames: person.middleNames ?? '',
          familyName: person.familyName,
          preferredName: person.preferredName ?? '',
        },
        evidenceOptions: evidenceOptions(),
        ...(errors?.view() ?? {}),
      },
      errors ? 400 : 200,
    );
  }

  app.get('/ra/people/:userId/name', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    return namePage(req, reply, caller);
  });

  app.post('/ra/people/:userId/name', csrf, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const { person } = await personFor(deps, caller, param(req, 'userId'));
    const values = formValues(req.body);
    const errors = new FormErrors();
    if (!text(values, 'evidenceType')) errors.add('evidenceType', 'Choose the evidence of the new name you saw');
    if (errors.any) return namePage(req, reply, caller, values, errors);
    try {
      await changeName(caller.ctx, person.userId, {
        title: optional(values, 'title'),
        givenName: text(values, 'givenName'),
        middleNames: optional(values, 'middleNames'),
        familyName: text(values, 'familyName'),
        preferredName: optional(values, 'preferredName'),
        evidence: { type: text(values, 'evidenceType'), lastChars: optional(values, 'evidenceLastChars') },
        reason: optional(values, 'reason'),
      });
    } catch (err) {
      return namePage(req, reply, caller, values, formErrorsFrom(err, nameFields, { id: 'familyName' }));
    }
    return reply.redirect(withDone(`/ra/people/${person.userId}`, 'name_changed'), 303);
  });

  // Removing a security key, passkey or app: a confirmation page with the reason the audit trail keeps. The services
  // check the RA's power over the person (policy) and that the authenticator is this person's.
  const removeCopy = (kind: string, nickname: string) => ({
    heading: `Remove ${kind === 'totp' ? 'an authenticator app' : 'a security key or passkey'}`,
    button: 'Remove it',
    warning: `"${nickname}" stops working at once and the sessions opened with it end. They will need another way to sign in.`,
    reasonRequired: true,
  });

  async function authenticatorOf(req: FastifyRequest, caller: RaCaller) {
    const { person, target } = await personFor(deps, caller, param(req, 'userId'));
    authorize(caller.actor, 'authenticator:enrol', target);
    const id = param(req, 'authenticatorId');
    const [kind, rest] = [id.slice(0, id.indexOf(':')), id.slice(id.indexOf(':') + 1)];
    const found =
      kind === 'webauthn'
        ? (await webauthnCredentialsOf(caller.ctx, person.userId)).find((c) => c.credentialId === rest)
        : kind === 'totp'
          ? (await totpAuthenticatorsOf(caller.ctx, person.userId)).find((t) => t.totpId === rest)
          : undefined;
    if (!found) throw new AppError('authenticator.not_found');
    return { person, kind, id: rest, nickname: found.nickname };
  }

  app.get('/ra/people/:userId/authenticators/:authenticatorId/remove', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const a = await authenticatorOf(req, caller);
    return confirmPage(deps, req, reply, caller, removeCopy(a.kind, a.nickname));
  });

  app.post('/ra/people/:userId/authenticators/:authenticatorId/remove', csrf, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const a = await authenticatorOf(req, caller);
    const values = formValues(req.body);
    const reason = textSchema(1000).safeParse(text(values, 'reason'));
    if (!reason.success) {
      const errors = new FormErrors();
      errors.add('reason', 'Enter why it is being removed (at most 1000 characters)');
      return confirmPage(
        deps,
        req,
        reply,
        caller,
        { ...removeCopy(a.kind, a.nickname), values, ...errors.view() },
        400,
      );
    }
    if (a.kind === 'webauthn') await removeWebauthnCredential(caller.ctx, a.person.userId, a.id, reason.data);
    else await removeTotp(caller.ctx, a.person.userId, a.id, reason.data);
    return reply.redirect(withDone(`/ra/people/${a.person.userId}`, 'authenticator_removed'), 303);
  });
}
