import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { raActorOf } from '../http/api-auth.ts';
import { contextFor, type WebDeps } from '../http/deps.ts';
import { jsonSchemaOf, security } from '../http/openapi.ts';
import { sendAuditCsv } from '../ra/console/audit.ts';
import { auditFilterSchema, searchAudit } from '../services/audit-view.ts';
import { parseInput } from '../services/validation.ts';

/**
 * The audit trail over the API (issue #14): the same events, filters and scope as the console's /ra/audit — RA
 * Managers at AAL3 (policy statement `audit:read`, in their organisations). A read only: no CSRF token needed.
 */
const querySchema = z
  .object({
    person: z.string().max(40).optional(),
    actor: z.string().max(200).optional(),
    action: z.string().max(100).optional(),
    organisation: z.string().max(20).optional(),
    from: z.string().max(20).optional(),
    to: z.string().max(20).optional(),
    before: z.string().max(40).optional(),
    after: z.string().max(40).optional(),
    limit: z.coerce.number().int().min(1).max(200).default(50),
  })
  .strict();

const eventSchema = z.object({
  seq: z.number(),
  at: z.string(),
  actor: z.string(),
  action: z.string(),
  targetType: z.string(),
  targetId: z.string().nullable(),
  before: z.unknown(),
  after: z.unknown(),
  reason: z.string().nullable(),
  requestId: z.string().nullable(),
});

const exportQuerySchema = querySchema.omit({ before: true, after: true, limit: true });

const filterDescription =
  'person: a user ID (events about them, their role profiles and requests); actor: a user ID or an actor label; ' +
  'action: an action code; organisation: an ODS code (and those within it); from, to: UK dates YYYY-MM-DD, inclusive.';

export function registerAuditApi(app: FastifyInstance, deps: WebDeps): void {
  const tags = ['audit'];
  const filterOf = (q: z.output<typeof querySchema>) =>
    parseInput(auditFilterSchema, {
      ...(q.person ? { person: q.person } : {}),
      ...(q.actor ? { actor: q.actor } : {}),
      ...(q.action ? { action: q.action } : {}),
      ...(q.organisation ? { organisation: q.organisation } : {}),
      ...(q.from ? { from: q.from } : {}),
      ...(q.to ? { to: q.to } : {}),
    });
  const context = async (req: FastifyRequest) => contextFor(deps, req, await raActorOf(app, deps, req));

  app.get(
    '/api/v1/audit',
    {
      schema: {
        tags,
        security: security.raRead,
        summary: 'Audit events in your scope, newest first, by pages',
        description: `${filterDescription} Continue with before=<next> (older) or after=<previous> (newer).`,
        querystring: querySchema,
        response: {
          200: {
            type: 'object',
            properties: {
              events: { type: 'array', items: jsonSchemaOf(eventSchema, 'input') },
              next: { type: ['string', 'null'] },
              previous: { type: ['string', 'null'] },
            },
          },
        },
      },
    },
    async (req) => {
      const q = parseInput(querySchema, req.query ?? {});
      const ctx = await context(req);
      const page = await searchAudit(ctx, filterOf(q), { limit: q.limit, before: q.before, after: q.after });
      return {
        events: page.events.map(({ targetRef: _r, prevHash: _p, hash: _h, lane: _l, laneSeq: _s, ...e }) => e),
        next: page.next,
        previous: page.previous,
      };
    },
  );

  app.get(
    '/api/v1/audit/export',
    {
      schema: {
        tags,
        security: security.raRead,
        summary: 'The events a filter selects as CSV (formula-safe), newest first, at most 50,000 rows',
        description: `${filterDescription} A cut export says so on its last line.`,
        querystring: exportQuerySchema,
      },
    },
    async (req, reply) => {
      const q = parseInput(exportQuerySchema, req.query ?? {});
      const ctx = await context(req);
      const filter = filterOf({ ...q, limit: 1 });
      // A bad filter or no permission is an error answer before the first byte of the file.
      await searchAudit(ctx, filter, { limit: 1 });
      return sendAuditCsv(reply, deps, ctx, filter as Record<string, string>);
    },
  );
}
