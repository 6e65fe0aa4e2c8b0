/**
 * The cluster-wide scheduler's rows (scheduled_jobs: a due job is claimed by one node through a conditional UPDATE with
 * a lease), and the statements of the scheduled jobs that are plain upkeep.
 */
import type { Database, Queryable } from '../database.ts';

/** Adds a job (due at once), or updates its period. */
export async function registerJob(q: Queryable, name: string, everySeconds: number): Promise<void> {
  await q.query(
    `INSERT INTO scheduled_jobs (name, every_seconds, next_run_at) VALUES ($1, $2, now())
       ON CONFLICT (name) DO UPDATE SET every_seconds = EXCLUDED.every_seconds`,
    [name, everySeconds],
  );
}

/** Claims a due job for `nodeId` with a lease of `leaseSeconds`; false when not due or leased by another node. */
export async function claimDueJob(q: Queryable, name: string, nodeId: string, leaseSeconds: number): Promise<boolean> {
  const { rows } = await q.query<{ name: string }>(
    `UPDATE scheduled_jobs SET leased_by = $2, lease_until = now() + make_interval(secs => $3), last_started = now(),
             next_run_at = now() + make_interval(secs => every_seconds), runs = runs + 1
           WHERE name = $1 AND next_run_at <= now() AND (lease_until IS NULL OR lease_until < now())
           RETURNING name`,
    [name, nodeId, leaseSeconds],
  );
  return rows.length > 0;
}

/** Ends this node's lease on a job, with the run's result. */
export async function finishJob(q: Queryable, name: string, result: string, nodeId: string): Promise<void> {
  await q.query(
    'UPDATE scheduled_jobs SET lease_until = NULL, last_finished = now(), last_result = $2 WHERE name = $1 AND leased_by = $3',
    [name, result, nodeId],
  );
}

/** VACUUM (ANALYZE) of the whole database: the embedded PGlite's upkeep (it has no autovacuum). */
export async function vacuumAnalyze(q: Queryable): Promise<void> {
  // VACUUM cannot run in a transaction: only the database itself, never a transaction's handle.
  if (!('exec' in q)) throw new Error('VACUUM needs the database, not a transaction');
  await (q as Database).exec('VACUUM (ANALYZE)');
}
