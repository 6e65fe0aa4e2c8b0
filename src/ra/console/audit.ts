/**
 * The audit trail across targets (issue #14), for those who may read it (`audit:read`: RA Managers, in their
 * organisations): filter by person, actor, action, organisation and date; names beside IDs; each event links to its
 * target; newest first, by pages; CSV export. The scope is decided in services/audit-view.ts by the policy.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../domain/errors.ts';
import { sendCsv } from '../../http/csv.ts';
import type { WebDeps } from '../../http/deps.ts';
import { type AuditLine, auditEvents, recordExport, searchAudit } from '../../services/audit-view.ts';
import { dateField, type FieldMap, FormErrors, type FormValues, formErrorsFrom, formValues, text } from './forms.ts';
import { mayAnywhere, type RaCaller, raPage, renderRa } from './guard.ts';
import { actionName, dateTime, historyLine, knownActions } from './labels.ts';
import { NameBook, type Named, type NameBook as Names, userIdsIn } from './names.ts';

/** At most this many events in one export; the file's last line says when it was cut. */
export const AUDIT_EXPORT_LIMIT = 50_000;

const filterKeys = ['person', 'actor', 'action', 'organisation'] as const;
const dateKeys = ['from-day', 'from-month', 'from-year', 'to-day', 'to-month', 'to-year'] as const;

const fields: FieldMap = (path) =>
  (
    ({
      person: { id: 'person', label: 'Person:' },
      actor: { id: 'actor', label: 'Who acted:' },
      action: { id: 'action', label: 'Action:' },
      organisation: { id: 'organisation', label: 'Organisation:' },
      from: { id: 'from', label: 'From:', target: 'from-day' },
      to: { id: 'to', label: 'To:', target: 'to-day' },
      before: { id: 'person', label: 'Page:' },
      after: { id: 'person', label: 'Page:' },
    }) as Record<string, { id: string; label: string; target?: string }>
  )[path];

/** The filter of the page's address, as the service takes it; date problems go to the form. */
function filterFrom(values: FormValues, errors: FormErrors): Record<string, string> {
  const filter: Record<string, string> = {};
  for (const k of filterKeys) {
    const v = text(values, k);
    if (v) filter[k] = k === 'person' || k === 'actor' ? v.replace(/\s+/g, '') : v;
  }
  for (const k of ['from', 'to'] as const) {
    const d = dateField(values, k);
    if (d.kind === 'invalid')
      errors.add(k, `${k === 'from' ? 'From' : 'To'} must be a real date, like 1 11 2026`, `${k}-day`);
    if (d.kind === 'date') filter[k] = d.value;
  }
  return filter;
}

function queryString(values: FormValues, change: Record<string, string> = {}): string {
  const q = new URLSearchParams();
  for (const k of [...filterKeys, ...dateKeys]) {
    const v = text(values, k);
    if (v) q.set(k, v);
  }
  for (const [k, v] of Object.entries(change)) if (v) q.set(k, v);
  return q.toString();
}

/** Where an event's target is in the console, and what to call it. */
function targetOf(e: AuditLine, names: Names): Named {
  const id = e.targetId;
  if (!id) return { name: '—', id: null, href: null };
  switch (e.targetType) {
    case 'person':
      return names.person(id);
    case 'organisation':
      return names.organisation(id);
    case 'access_request':
      return { name: 'Access request', id, href: `/ra/requests/${id}` };
    case 'application':
      return { name: 'Application', id, href: `/ra/applications/${id}` };
    case 'position':
      return { name: 'Position', id, href: e.targetRef ? `/ra/organisations/${e.targetRef}#positions` : null };
    case 'role_profile':
      return { name: 'Role profile', id, href: e.targetRef ? `/ra/people/${e.targetRef}` : null };
    case 'oidc_client':
      return { name: 'Relying party', id, href: `/ra/clients/${encodeURIComponent(id)}` };
    default:
      return { name: e.targetType.replaceAll('_', ' '), id, href: null };
  }
}

async function namesFor(deps: WebDeps, events: readonly AuditLine[]): Promise<Names> {
  return NameBook.load(
    deps.repos,
    [
      ...userIdsIn(events.map((e) => e.actor)),
      ...events.filter((e) => e.targetType === 'person' && e.targetId).map((e) => e.targetId!),
    ],
    events.filter((e) => e.targetType === 'organisation' && e.targetId).map((e) => e.targetId!),
  );
}

export function registerRaAudit(app: FastifyInstance, deps: WebDeps): void {
  const hidden = { schema: { hide: true } };

  function page(reply: FastifyReply, caller: RaCaller, ctx: Record<string, unknown>, status = 200) {
    return renderRa(
      reply,
      caller,
      'ra/audit.njk',
      { title: 'Audit trail', values: {}, actions: [{ value: '', text: 'Any action' }, ...knownActions()], ...ctx },
      status,
    );
  }

  function allowed(caller: RaCaller): void {
    if (!mayAnywhere(caller.actor, 'audit:read')) throw new AppError('auth.forbidden', { statement: 'audit:read' });
  }

  app.get('/ra/audit', hidden, async (req: FastifyRequest, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    allowed(caller);
    const values = formValues(req.query);
    const errors = new FormErrors();
    const filter = filterFrom(values, errors);
    if (errors.any) return page(reply, caller, { values, ...errors.view() }, 400);
    let result: Awaited<ReturnType<typeof searchAudit>>;
    try {
      result = await searchAudit(caller.ctx, filter, {
        limit: 50,
        before: text(values, 'before') || null,
        after: text(values, 'after') || null,
      });
    } catch (err) {
      return page(reply, caller, { values, ...formErrorsFrom(err, fields, { id: 'person' }).view() }, 400);
    }
    const names = await namesFor(deps, result.events);
    return page(reply, caller, {
      values,
      filtered: Object.keys(filter).length > 0,
      events: result.events.map((e) => ({
        seq: e.seq,
        at: dateTime(e.at),
        what: historyLine(e).what,
        detail: historyLine(e).detail,
        who: names.actor(e.actor),
        about: targetOf(e, names),
        reason: historyLine(e).reason,
      })),
      olderHref: result.next ? `/ra/audit?${queryString(values, { before: result.next })}` : null,
      newerHref: result.previous ? `/ra/audit?${queryString(values, { after: result.previous })}` : null,
      exportHref: `/ra/audit/export.csv${queryString(values) ? `?${queryString(values)}` : ''}`,
      exportLimit: AUDIT_EXPORT_LIMIT,
    });
  });

  // The same events as CSV (formula-safe), newest first, streamed, at most AUDIT_EXPORT_LIMIT rows.
  app.get('/ra/audit/export.csv', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    allowed(caller);
    const values = formValues(req.query);
    const errors = new FormErrors();
    const filter = filterFrom(values, errors);
    if (errors.any) return page(reply, caller, { values, ...errors.view() }, 400);
    // Checked before the first byte is sent: a bad filter is a page with the message, not a broken file.
    try {
      await searchAudit(caller.ctx, filter, { limit: 1 });
    } catch (err) {
      return page(reply, caller, { values, ...formErrorsFrom(err, fields, { id: 'person' }).view() }, 400);
    }
    return sendAuditCsv(reply, deps, caller.ctx, filter);
  });
}

/** The audit CSV, shared by the console and `GET /api/v1/audit/export`. */
export function sendAuditCsv(
  reply: FastifyReply,
  deps: WebDeps,
  ctx: RaCaller['ctx'],
  filter: Record<string, string>,
): FastifyReply {
  async function* rows() {
    const batch: AuditLine[] = [];
    const flush = async function* () {
      const names = await namesFor(deps, batch);
      for (const e of batch) yield { e, names };
      batch.length = 0;
    };
    for await (const e of auditEvents(ctx, filter, { batch: 1_000 })) {
      batch.push(e);
      if (batch.length === 1_000) yield* flush();
    }
    yield* flush();
  }
  return sendCsv(reply, {
    filename: `opencis-audit-${deps.clock.now().toISOString().slice(0, 10)}.csv`,
    header: [
      'seq',
      'time',
      'actor',
      'actor name',
      'action',
      'what',
      'target type',
      'target id',
      'target name',
      'reason',
      'request id',
    ],
    rows: rows(),
    cells: ({ e, names }) => {
      const who = names.actor(e.actor);
      const about = targetOf(e, names);
      return [
        e.seq,
        e.at,
        e.actor,
        who.name,
        e.action,
        actionName(e.action),
        e.targetType,
        e.targetId ?? '',
        about.name,
        historyLine(e).reason ?? '',
        e.requestId ?? '',
      ];
    },
    limit: AUDIT_EXPORT_LIMIT,
    done: (written, cut) => recordExport(ctx, 'audit', 'audit_trail', filter, written, cut),
  });
}
