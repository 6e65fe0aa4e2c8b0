import { ukDate } from '../domain/dates.ts';
import { purgeExpiredPayloads } from '../oidc/adapter.ts';
import { currentCrl } from '../pki/crl.ts';
import { appendAudit } from '../services/audit.ts';
import { sealAudit } from '../services/audit-seal.ts';
import { sendExpiryWarnings } from '../services/cards.ts';
import type { ServiceContext } from '../services/context.ts';
import type { NotificationOutbox } from '../services/notifications.ts';
import { expireRequests } from '../services/ra/requests.ts';
import { recordSessionEnd } from '../services/sessions.ts';
import type { Database } from '../storage/database.ts';
import type { Job } from './scheduler.ts';

/** Role profiles whose end date has passed: marked ended, and the sessions that may carry them end (CIS2). */
export async function endRoleProfilesPastEndDate(ctx: ServiceContext): Promise<number> {
  return ctx.db.transaction(async (tx) => {
    const { rows } = await tx.query<{ user_id: string; person_roleid: string; end_date: string }>(
      `UPDATE role_profiles SET status = 'ended', updated_at = $2 WHERE status = 'active' AND end_date < $1
       RETURNING user_id, person_roleid, end_date`,
      [ukDate(ctx.clock.now()), ctx.clock.now()],
    );
    for (const r of rows) {
      await recordSessionEnd(tx, r.user_id, 'role_ended', ctx.clock.now());
      await appendAudit(tx, ctx, {
        action: 'role_profile.ended_by_date',
        targetType: 'person',
        targetId: r.user_id,
        before: { personRoleId: r.person_roleid, status: 'active' },
        after: { personRoleId: r.person_roleid, status: 'ended', endDate: r.end_date },
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
  await db.exec('VACUUM (ANALYZE)');
  return Math.round(performance.now() - started);
}

/** Every scheduled job of a node (each runs once per period across the cluster). */
export function standardJobs(
  ctx: ServiceContext,
  outbox: NotificationOutbox,
  publicUrl: string,
  options: { auditSealSink?: string } = {},
): Job[] {
  return [
    ...(ctx.db.kind === 'pglite'
      ? [{ name: 'embedded-vacuum', everySeconds: 3_600, run: () => vacuumEmbeddedDatabase(ctx.db) }]
      : []),
    { name: 'card-expiry-warnings', everySeconds: 6 * 3_600, run: () => sendExpiryWarnings(ctx, outbox) },
    { name: 'access-request-expiry', everySeconds: 3_600, run: () => expireRequests(ctx) },
    { name: 'role-profile-end-dates', everySeconds: 900, run: () => endRoleProfilesPastEndDate(ctx) },
    { name: 'oidc-purge-expired', everySeconds: 3_600, run: () => purgeExpiredPayloads(ctx.db) },
    { name: 'crl-publish', everySeconds: 3_600, run: async () => (await currentCrl(ctx, publicUrl)).length },
    // Never adopts unkeyed events (SealOptions.adoptUnkeyed): after an upgrade it fails, logged, until an operator has.
    {
      name: 'audit-seal',
      everySeconds: 3_600,
      run: async () => (await sealAudit(ctx, { sinkFile: options.auditSealSink })).id,
    },
  ];
}
