/**
 * Access requests (DOMAIN §5.3): the queue (pending in my organisations, and mine), one request with its status
 * history, and the decisions. The buttons shown are the policy's answer for this request — approve and reject need
 * `request:approve` for its position (never one's own request), withdraw is the requester's or a decider's — and the
 * services decide again when a button is pressed.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Position } from '../../domain/access/role-profile.ts';
import { AppError } from '../../domain/errors.ts';
import { isAllowed, type Target } from '../../domain/policy.ts';
import type { WebDeps } from '../../http/deps.ts';
import { findOrganisation } from '../../services/organisations.ts';
import {
  type AccessRequest,
  approveRequest,
  getRequest,
  listRequests,
  rejectRequest,
  withdrawRequest,
} from '../../services/ra.ts';
import { positionTarget, requestTarget } from '../../services/targets.ts';
import { withDone } from './banners.ts';
import { FormErrors, type FormValues, formErrorsFrom, formValues, optional, text } from './forms.ts';
import { mayAnywhere, param, type RaCaller, raPage, renderRa } from './guard.ts';
import { dateTime, dayName, statusColours } from './labels.ts';
import { NameBook } from './names.ts';

export function registerRaRequests(app: FastifyInstance, deps: WebDeps): void {
  const hidden = { schema: { hide: true } };
  const csrf = { preHandler: app.csrfProtection, schema: { hide: true } };

  async function rows(requests: AccessRequest[]) {
    const positions = new Map<string, Position | undefined>();
    const names = await NameBook.load(
      deps.repos,
      requests.flatMap((r) => [r.userId, r.requestedBy]),
      requests.map((r) => r.odsCode),
    );
    const out = [];
    for (const r of requests) {
      if (!positions.has(r.positionId))
        positions.set(r.positionId, await deps.repos.positions.findPosition(r.positionId));
      out.push({
        requestId: r.requestId,
        userId: r.userId,
        person: names.person(r.userId),
        positionName: positions.get(r.positionId)?.name ?? r.positionId,
        organisation: names.organisation(r.odsCode),
        odsCode: r.odsCode,
        startDate: dayName(r.startDate),
        status: r.status,
        requestedBy: names.actor(r.requestedBy),
        expires: dayName(r.expiresAt),
        created: dateTime(r.createdAt),
      });
    }
    return out;
  }

  app.get('/ra/requests', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    if (!mayAnywhere(caller.actor, 'request:create') && !mayAnywhere(caller.actor, 'request:approve')) {
      throw new AppError('auth.forbidden', { statement: 'request:approve' });
    }
    const me = caller.session.userId;
    const pending = (await listRequests(caller.ctx, { status: 'pending', limit: 200 })).filter(
      (r) => r.requestedBy !== me && r.userId !== me,
    );
    const mine = await listRequests(caller.ctx, { mine: true, limit: 100 });
    return renderRa(reply, caller, 'ra/requests.njk', {
      title: 'Access requests',
      pending: await rows(pending),
      mine: await rows(mine),
      canDecide: mayAnywhere(caller.actor, 'request:approve'),
      statusColours,
    });
  });

  async function requestPage(
    req: FastifyRequest,
    reply: FastifyReply,
    caller: RaCaller,
    values: FormValues = {},
    errors?: FormErrors,
  ) {
    const r = await getRequest(caller.ctx, param(req, 'requestId'));
    const position = await deps.repos.positions.findPosition(r.positionId);
    const person = await deps.repos.people.findPersonByUserId(r.userId);
    const org = await findOrganisation(deps.repos, r.odsCode);
    const pending = r.status === 'pending' && r.expiresAt > deps.clock.now().toISOString() && position !== undefined;
    const decision: Target | null = pending ? await requestTarget(deps.repos, deps.clock, r, position) : null;
    const asking: Target | null = pending ? await positionTarget(deps.repos, deps.clock, r.userId, position) : null;
    const mayDecide = decision !== null && isAllowed(caller.actor, 'request:approve', decision);
    const mayWithdraw =
      decision !== null &&
      (r.requestedBy === caller.actor.id
        ? isAllowed(caller.actor, 'request:create', asking!)
        : isAllowed(caller.actor, 'request:approve', decision));
    const names = await NameBook.load(
      deps.repos,
      [r.requestedBy, ...(r.decidedBy ? [r.decidedBy] : []), ...r.history.map((h) => h.changedBy)],
      [],
    );
    const choices = [
      ...(mayDecide
        ? [
            {
              value: 'approve',
              text: 'Approve: give the position',
              hint: 'The role profile starts on the start date.',
            },
            { value: 'reject', text: 'Reject', hint: 'Give the reason: the requester and the person see it.' },
          ]
        : []),
      ...(mayWithdraw ? [{ value: 'withdraw', text: 'Withdraw the request', hint: 'Nobody decides it then.' }] : []),
    ];
    return renderRa(
      reply,
      caller,
      'ra/request.njk',
      {
        title: `Access request ${r.requestId}`,
        request: {
          requestId: r.requestId,
          userId: r.userId,
          name: person ? `${person.givenName} ${person.familyName}` : r.userId,
          positionName: position?.name ?? r.positionId,
          jobRoles: position?.jobRoles.join(', ') ?? '',
          assignable: position?.assignable ?? false,
          odsCode: r.odsCode,
          orgName: org?.name ?? r.odsCode,
          startDate: dayName(r.startDate),
          endDate: r.endDate ? dayName(r.endDate) : 'No end date',
          status: r.status,
          reason: r.reason,
          requestedBy: names.actor(r.requestedBy),
          created: dateTime(r.createdAt),
          expires: dateTime(r.expiresAt),
          decidedBy: r.decidedBy ? names.actor(r.decidedBy) : null,
          decidedAt: dateTime(r.decidedAt),
          decisionReason: r.decisionReason,
          personRoleId: r.personRoleId,
          version: r.version,
          ownRequest: r.requestedBy === caller.actor.id,
        },
        history: r.history.map((h) => ({
          at: dateTime(h.changedAt),
          from: h.fromStatus ?? '',
          to: h.toStatus,
          by: names.actor(h.changedBy),
          reason: h.reason,
        })),
        mayDecide,
        mayWithdraw,
        choices,
        values,
        statusColours,
        ...(errors?.view() ?? {}),
      },
      errors ? 400 : 200,
    );
  }

  app.get('/ra/requests/:requestId', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    return requestPage(req, reply, caller);
  });

  // One decision form: approve, reject or withdraw (those the policy allows this caller), with one reason box. The
  // services check the policy again, and the request's version (someone else may have decided it meanwhile).
  const decisions = {
    approve: { run: approveRequest, done: 'request_approved' },
    reject: { run: rejectRequest, done: 'request_rejected' },
    withdraw: { run: withdrawRequest, done: 'request_withdrawn' },
  } as const;

  app.post('/ra/requests/:requestId/decide', csrf, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const requestId = param(req, 'requestId');
    const values = formValues(req.body);
    const name = text(values, 'decision');
    const errors = new FormErrors();
    if (!Object.hasOwn(decisions, name)) {
      errors.add('decision', 'Choose what to do with the request', 'decision-0');
      return requestPage(req, reply, caller, values, errors);
    }
    const d = decisions[name as keyof typeof decisions];
    const reason = optional(values, 'reason');
    if (name === 'reject' && !reason) {
      errors.add('reason', 'Enter the reason for rejecting the request (the requester and the person see it)');
      return requestPage(req, reply, caller, values, errors);
    }
    const version = Number(text(values, 'version'));
    try {
      await d.run(caller.ctx, requestId, {
        reason,
        ...(Number.isInteger(version) && version > 0 && name !== 'withdraw' ? { expectedVersion: version } : {}),
      });
    } catch (err) {
      const e = formErrorsFrom(err, (p) => (p === 'reason' ? { id: 'reason', label: 'Reason:' } : undefined), {
        id: 'decision',
        target: 'decision-0',
      });
      return requestPage(req, reply, caller, values, e);
    }
    return reply.redirect(withDone(`/ra/requests/${requestId}`, d.done), 303);
  });
}
