import { ukDate } from '../domain/dates.ts';
import { currentCrl } from '../pki/crl.ts';
import { appendAudit } from '../services/audit.ts';
import { sealAudit } from '../services/audit-seal.ts';
import { sendExpiryWarnings } from '../services/cards.ts';
import type { ServiceContext } from '../services/context.ts';
import type { NotificationOutbox } from '../services/notifications.ts';
import { expireRequests } from '../services/ra/requests.ts';
import { recordSessionEnd } from '../services/sessions.ts';
import type { Database } from '../storage/database.ts';
import { repositoriesOn } from '../storage/repositories/index.ts';
import type { Job } from './scheduler.ts';

/** Role profiles whose end date has passed: marked ended, and the sessions that may carry them end (CIS2). */
export async function endRoleProfilesPastEndDate(ctx: ServiceContext): Promise<number> {
  return ctx.transaction(async (tx) => {
    const rows = await tx.roleProfiles.endRoleProfilesBefore(ukDate(ctx.clock.now()), ctx.clock.now());
    for (const r of rows) {
      await recordSessionEnd(tx, r.userId, 'role_ended', ctx.clock.now());
      await appendAudit(tx, ctx, {
        action: 'role_profile.ended_by_date',
        targetType: 'person',
        targetId: r.userId,
        before: { personRoleId: r.personRoleId, status: 'active' },
        after: { personRoleId: r.personRoleId, status: 'ended', endDate: r.endDate },
      });
    }
    return rows.length;
  });
}

/**
 * The embedded PGlite has no autovacuum (it is one backend, with no launcher): without this, rows updated or deleted
 * (provider artefacts, web sessions) are never reclaimed and the planner never gets statistics. VACUUM (ANALYZE) of the
 * whole database, hourly; on PostgreSQL autovacuum does it. Returns the milliseconds it took.
 */
export async function vacuumEmbeddedDatabase(db: Database): Promise<number> {
  const started = performance.now();
  await repositoriesOn(db).jobs.vacuumAnalyze();
  return Math.round(performance.now() - started);
}

/** Every scheduled job of a node (each runs once per period across the cluster). */
export function standardJobs(
  db: Database,
  ctx: ServiceContext,
  outbox: NotificationOutbox,
  publicUrl: string,
  options: { auditSealSink?: string } = {},
): Job[] {
  return [
    ...(db.kind === 'pglite'
      ? [{ name: 'embedded-vacuum', everySeconds: 3_600, run: () => vacuumEmbeddedDatabase(db) }]
      : []),
    { name: 'card-expiry-warnings', everySeconds: 6 * 3_600, run: () => sendExpiryWarnings(ctx, outbox) },
    { name: 'access-request-expiry', everySeconds: 3_600, run: () => expireRequests(ctx) },
    { name: 'role-profile-end-dates', everySeconds: 900, run: () => endRoleProfilesPastEndDate(ctx) },
    { name: 'oidc-purge-expired', everySeconds: 3_600, run: () => ctx.repos.oidcArtefacts.purgeExpiredArtefacts() },
    { name: 'crl-publish', everySeconds: 3_600, run: async () => (await currentCrl(ctx, publicUrl)).length },
    // Never adopts unkeyed events (SealOptions.adoptUnkeyed): after an upgrade it fails, logged, until an operator has.
    {
      name: 'audit-seal',
      everySeconds: 3_600,
      run: async () => (await sealAudit(ctx, { sinkFile: options.auditSealSink })).id,
    },
  ];
}
