/**
 * RA reports (DOMAIN §5.5), for the caller's organisations only: each a table with a caption, narrowed by organisation
 * and a range of dates (what the date is about depends on the report), each downloadable as a formula-safe CSV that
 * streams in pages and says when it was cut.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { AppError } from '../../domain/errors.ts';
import { organisationsWhere } from '../../domain/policy.ts';
import { sendCsv } from '../../http/csv.ts';
import type { WebDeps } from '../../http/deps.ts';
import { recordExport } from '../../services/audit-view.ts';
import type { ServiceContext } from '../../services/context.ts';
import { type CardLine, type EndingLine, type PersonLine, reportDates } from '../../services/ra/reports.ts';
import {
  cardsExpiringReport,
  leaversReport,
  lockedCardsReport,
  pendingRequestsReport,
  peopleWithoutRolesReport,
  rolesEndingReport,
} from '../../services/ra.ts';
import { dateField, type FieldMap, FormErrors, type FormValues, formErrorsFrom, formValues, text } from './forms.ts';
import { mayAnywhere, type RaCaller, raPage, renderRa } from './guard.ts';
import { dateTime, dayName, statusColours } from './labels.ts';

/** At most this many rows in one report export; the file's last line says when it was cut. */
export const REPORT_EXPORT_LIMIT = 50_000;
const SHOWN = 200;

interface ReportDef<T> {
  title: string;
  run: (ctx: ServiceContext, q: unknown) => Promise<T[]>;
  header: string[];
  cells: (r: T) => unknown[];
}
/** A report of any row type, as the export loop takes it. */
function def<T>(d: ReportDef<T>): ReportDef<unknown> {
  return d as unknown as ReportDef<unknown>;
}

const name = (r: { givenName: string; familyName: string }) => `${r.givenName} ${r.familyName}`;
const cardCells = (r: CardLine) => [r.cardId, r.userId, name(r), r.kind, r.status, r.certificateNotAfter ?? ''];
const personCells = (r: PersonLine) => [r.userId, name(r), r.status, r.odsCodes.join(' '), r.updatedAt];

const reports: Record<keyof typeof reportDates, ReportDef<unknown>> = {
  pending_requests: def({
    title: 'Pending requests, soonest to expire first',
    run: pendingRequestsReport,
    header: ['request', 'user ID', 'name', 'position', 'ODS code', 'starts', 'requested by', 'requested', 'expires'],
    cells: (r) => [
      r.requestId,
      r.userId,
      name(r),
      r.positionName,
      r.odsCode,
      r.startDate,
      r.requestedBy,
      r.createdAt,
      r.expiresAt,
    ],
  }),
  cards_expiring: def({
    title: 'Cards whose certificate expires soon',
    run: cardsExpiringReport,
    header: ['card', 'user ID', 'holder', 'kind', 'status', 'certificate expires'],
    cells: cardCells,
  }),
  locked_cards: def({
    title: 'Locked cards',
    run: lockedCardsReport,
    header: ['card', 'user ID', 'holder', 'kind', 'status', 'certificate expires'],
    cells: cardCells,
  }),
  people_without_roles: def({
    title: 'Active people with no role profile in effect today',
    run: peopleWithoutRolesReport,
    header: ['user ID', 'name', 'status', 'ODS codes', 'last changed'],
    cells: personCells,
  }),
  roles_ending: def({
    title: 'Role profiles ending soon',
    run: rolesEndingReport,
    header: ['role profile', 'user ID', 'name', 'position', 'ODS code', 'ends'],
    cells: (r: EndingLine) => [r.personRoleId, r.userId, name(r), r.positionName, r.odsCode, r.endDate],
  }),
  leavers: def({
    title: 'Leavers, most recent first',
    run: leaversReport,
    header: ['user ID', 'name', 'status', 'ODS codes', 'left'],
    cells: personCells,
  }),
};

const filterFields: FieldMap = (path) =>
  path === 'odsCode'
    ? { id: 'org', label: 'Organisation:' }
    : path === 'from'
      ? { id: 'from', label: 'From:', target: 'from-day' }
      : path === 'to'
        ? { id: 'to', label: 'To:', target: 'to-day' }
        : undefined;

/** The filter of the page's address as the report services take it. */
function filterOf(values: FormValues, errors: FormErrors): Record<string, string> {
  const q: Record<string, string> = {};
  const org = text(values, 'org');
  if (org) q.odsCode = org;
  for (const k of ['from', 'to'] as const) {
    const d = dateField(values, k);
    if (d.kind === 'invalid')
      errors.add(k, `${k === 'from' ? 'From' : 'To'} must be a real date, like 1 11 2026`, `${k}-day`);
    if (d.kind === 'date') q[k] = d.value;
  }
  return q;
}

const filterKeys = ['org', 'from-day', 'from-month', 'from-year', 'to-day', 'to-month', 'to-year'];

function queryString(values: FormValues): string {
  const q = new URLSearchParams();
  for (const k of filterKeys) if (text(values, k)) q.set(k, text(values, k));
  return q.toString();
}

export function registerRaReports(app: FastifyInstance, deps: WebDeps): void {
  function allowed(caller: RaCaller) {
    if (!mayAnywhere(caller.actor, 'report:view')) throw new AppError('auth.forbidden', { statement: 'report:view' });
  }

  async function organisationOptions(caller: RaCaller) {
    const orgs = organisationsWhere(caller.actor, 'report:view');
    if (orgs === 'all') return null;
    const names = await deps.repos.organisations.organisationNames(orgs);
    return [
      { value: '', text: 'All your organisations' },
      ...[...orgs].sort().map((o) => ({ value: o, text: `${names.get(o) ?? o} (${o})` })),
    ];
  }

  async function page(
    reply: FastifyReply,
    caller: RaCaller,
    values: FormValues,
    ctx: Record<string, unknown>,
    status = 200,
  ) {
    return renderRa(
      reply,
      caller,
      'ra/reports.njk',
      { title: 'Reports', values, organisations: await organisationOptions(caller), dates: reportDates, ...ctx },
      status,
    );
  }

  app.get('/ra/reports', { schema: { hide: true } }, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    allowed(caller);
    const values = formValues(req.query);
    const errors = new FormErrors();
    const filter = filterOf(values, errors);
    if (errors.any) return page(reply, caller, values, errors.view(), 400);
    const ctx = caller.ctx;
    const q = { ...filter, limit: SHOWN };
    const card = (c: CardLine) => ({
      ...c,
      name: name(c),
      expires: c.certificateNotAfter ? dayName(c.certificateNotAfter) : '',
      kind: c.kind === 'virtual' ? 'Virtual' : 'Physical',
    });
    const person = (p: PersonLine) => ({
      ...p,
      name: name(p),
      organisations: p.odsCodes.join(', '),
      updated: dayName(p.updatedAt),
    });
    try {
      const [pending, expiring30, expiring90, locked, withoutRoles, ending, leavers] = await Promise.all([
        pendingRequestsReport(ctx, q),
        cardsExpiringReport(ctx, { ...q, withinDays: 30 }),
        cardsExpiringReport(ctx, { ...q, withinDays: 90 }),
        lockedCardsReport(ctx, q),
        peopleWithoutRolesReport(ctx, q),
        rolesEndingReport(ctx, { ...q, withinDays: 30 }),
        leaversReport(ctx, q),
      ]);
      const qs = queryString(values);
      const csv = (report: string, extra = '') =>
        `/ra/reports/${report}.csv${qs || extra ? `?${[qs, extra].filter(Boolean).join('&')}` : ''}`;
      return page(reply, caller, values, {
        filtered: Object.keys(filter).length > 0,
        shown: SHOWN,
        exportLimit: REPORT_EXPORT_LIMIT,
        csv: {
          pending: csv('pending_requests'),
          expiring30: csv('cards_expiring', 'within=30'),
          expiring90: csv('cards_expiring', 'within=90'),
          locked: csv('locked_cards'),
          withoutRoles: csv('people_without_roles'),
          ending: csv('roles_ending', 'within=30'),
          leavers: csv('leavers'),
        },
        pending: pending.map((r) => ({
          ...r,
          name: `${r.givenName} ${r.familyName}`,
          startDate: dayName(r.startDate),
          expires: dateTime(r.expiresAt),
        })),
        expiring30: expiring30.map(card),
        expiring90: expiring90.map(card),
        locked: locked.map(card),
        withoutRoles: withoutRoles.map(person),
        ending: ending.map((r) => ({ ...r, name: `${r.givenName} ${r.familyName}`, endDate: dayName(r.endDate) })),
        leavers: leavers.map(person),
        statusColours,
      });
    } catch (err) {
      return page(reply, caller, values, formErrorsFrom(err, filterFields, { id: 'org' }).view(), 400);
    }
  });

  // One report as CSV: read in pages of 1,000 (offset), streamed, at most REPORT_EXPORT_LIMIT rows.
  app.get('/ra/reports/:report.csv', { schema: { hide: true } }, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    allowed(caller);
    const reportName = String((req.params as { report?: string }).report ?? '');
    if (!Object.hasOwn(reports, reportName)) throw new AppError('request.not_found');
    const def = reports[reportName as keyof typeof reports];
    const values = formValues(req.query);
    const errors = new FormErrors();
    const filter: Record<string, unknown> = filterOf(values, errors);
    const within = text(values, 'within');
    if (within) {
      if (!/^[0-9]{1,3}$/.test(within)) errors.add('org', 'The report period must be a number of days');
      filter.withinDays = Number(within);
    }
    if (errors.any) return page(reply, caller, values, errors.view(), 400);
    // The filter is checked (and the policy asked) before the first byte of the file.
    try {
      await def.run(caller.ctx, { ...filter, limit: 1 });
    } catch (err) {
      return page(reply, caller, values, formErrorsFrom(err, filterFields, { id: 'org' }).view(), 400);
    }
    async function* rows() {
      for (let offset = 0; ; offset += 1_000) {
        const batch = await def.run(caller!.ctx, { ...filter, limit: 1_000, offset });
        yield* batch;
        if (batch.length < 1_000 || offset + 1_000 > REPORT_EXPORT_LIMIT) return;
      }
    }
    return sendCsv(reply, {
      filename: `opencis-${reportName.replaceAll('_', '-')}-${deps.clock.now().toISOString().slice(0, 10)}.csv`,
      header: def.header,
      rows: rows(),
      cells: def.cells,
      limit: REPORT_EXPORT_LIMIT,
      done: (written, cut) => recordExport(caller.ctx, 'report', reportName, filter, written, cut),
    });
  });
}
