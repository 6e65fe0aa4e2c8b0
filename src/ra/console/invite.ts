/**
 * Send a person a one-time link to set up a security key or Windows Hello (issue #14: what `opencis authenticator
 * invite` does). The link is emailed to the address on their record, or shown once to hand over in person; it works
 * once, for 24 hours. The service checks the RA's power over the person (policy `authenticator:enrol`).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../domain/errors.ts';
import { authorize } from '../../domain/policy.ts';
import type { WebDeps } from '../../http/deps.ts';
import { createEnrolmentInvitation } from '../../services/enrolment.ts';
import { withDone } from './banners.ts';
import { FormErrors, type FormValues, formValues, text } from './forms.ts';
import { param, type RaCaller, raPage, renderRa } from './guard.ts';
import { personFor, personSummary } from './people.ts';

const INVITATION_HOURS = 24;

/** "p••••@example.nhs.uk": enough to recognise the address, not enough to read it over a shoulder. */
export function maskedEmail(email: string): string {
  const [local, domain] = email.split('@');
  return `${(local ?? '').slice(0, 1)}••••@${domain ?? ''}`;
}

export function registerRaInvitations(app: FastifyInstance, deps: WebDeps): void {
  const hidden = { schema: { hide: true } };
  const csrf = { preHandler: app.csrfProtection, schema: { hide: true } };

  async function formPage(
    req: FastifyRequest,
    reply: FastifyReply,
    caller: RaCaller,
    values: FormValues,
    errors?: FormErrors,
  ) {
    const { person, target } = await personFor(deps, caller, param(req, 'userId'));
    authorize(caller.actor, 'authenticator:enrol', target);
    if (person.status !== 'active') throw new AppError('role_profile.person_inactive', { status: person.status });
    const who = personSummary(person);
    return renderRa(
      reply,
      caller,
      'ra/invite.njk',
      {
        title: `Send a set-up link: ${who.name}`,
        person: who,
        email: person.email ? maskedEmail(person.email) : null,
        hours: INVITATION_HOURS,
        values: { aal: '3', delivery: person.email ? 'email' : 'show', ...values },
        ...(errors?.view() ?? {}),
      },
      errors ? 400 : 200,
    );
  }

  app.get('/ra/people/:userId/invite', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    return formPage(req, reply, caller, {});
  });

  app.post('/ra/people/:userId/invite', csrf, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const { person } = await personFor(deps, caller, param(req, 'userId'));
    const values = formValues(req.body);
    const errors = new FormErrors();
    const aal = text(values, 'aal');
    const delivery = text(values, 'delivery');
    if (aal !== '2' && aal !== '3') errors.add('aal', 'Choose what they may set up', 'aal-0');
    if (delivery !== 'email' && delivery !== 'show')
      errors.add('delivery', 'Choose how they get the link', 'delivery-0');
    if (delivery === 'email' && !person.email)
      errors.add('delivery', 'They have no email address on their record', 'delivery-0');
    if (errors.any) return formPage(req, reply, caller, values, errors);
    const token = await createEnrolmentInvitation(caller.ctx, {
      userId: person.userId,
      maxAal: aal === '3' ? 3 : 2,
      ttlHours: INVITATION_HOURS,
    });
    const link = `${deps.config.PUBLIC_URL}/enrol/invite?t=${token}`;
    if (delivery === 'email' && person.email) {
      await deps.outbox.queue(
        deps.repos,
        {
          userId: person.userId,
          channel: 'email',
          to: person.email,
          template: 'enrolment.invitation',
          subject: 'Set up your security key for OpenCIS',
          text:
            `Your Registration Authority has invited you to set up a security key or Windows Hello to sign in to ` +
            `OpenCIS. Open this link on the computer you will use (it works once, for ${INVITATION_HOURS} hours): ${link}\n` +
            'If you did not expect this, tell your Registration Authority and do not open the link.',
        },
        deps.clock.now(),
      );
      deps.outbox.wake();
      return reply.redirect(withDone(`/ra/people/${person.userId}`, 'invitation_sent'), 303);
    }
    // Shown once, on this page (never in a URL): the RA hands it to the person, who is with them.
    return renderRa(reply, caller, 'ra/invite-link.njk', {
      title: `Set-up link: ${personSummary(person).name}`,
      done: 'Enrolment link made. Give it to them now: it is not shown again.',
      person: personSummary(person),
      link,
      hours: INVITATION_HOURS,
    });
  });
}
