import type { FastifyReply, FastifyRequest } from 'fastify';
import type { WebDeps } from '../../http/deps.ts';
import type { FieldMap } from './forms.ts';
import { param, type RaCaller, renderRa } from './guard.ts';
import { personFor, personSummary } from './people.ts';

export const reasonField: FieldMap = (path) => (path === 'reason' ? { id: 'reason', label: 'Reason:' } : undefined);

/**
 * The confirmation page of an action on the person in the URL (suspend, leaver, end a role, cancel a card…): what it
 * does, an optional choice, the reason the audit trail keeps, and the button. It posts back to its own address.
 */
export async function confirmPage(
  deps: WebDeps,
  req: FastifyRequest,
  reply: FastifyReply,
  caller: RaCaller,
  ctx: Record<string, unknown>,
  status = 200,
): Promise<FastifyReply> {
  const { person } = await personFor(deps, caller, param(req, 'userId'));
  const who = personSummary(person);
  return renderRa(
    reply,
    caller,
    'ra/confirm.njk',
    {
      person: who,
      backHref: `/ra/people/${who.userId}`,
      backText: who.name,
      caption: `${who.name}, user ID ${who.userId}${ctx.cardId ? `, card ${String(ctx.cardId)}` : ''}`,
      values: {},
      action: req.url.split('?')[0],
      ...ctx,
      title: `${String(ctx.heading)}: ${who.name}`,
    },
    status,
  );
}
