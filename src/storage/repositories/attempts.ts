/**
 * Brute-force counters (services/attempts.ts): one row per counter key, shared by every node of a cluster.
 */
import type { Queryable } from '../database.ts';

export interface CounterState {
  failures: number;
  locked_until: Date | null;
}

/** Takes one try from a counter (a new window once the old one has passed, nothing while it is locked). */
export async function takeTry(q: Queryable, key: string, now: Date, windowStart: Date): Promise<CounterState> {
  const { rows } = await q.query<CounterState>(
    `INSERT INTO attempt_counters (counter_key, failures, window_start) VALUES ($1, 1, $2)
       ON CONFLICT (counter_key) DO UPDATE SET
         failures = CASE WHEN attempt_counters.locked_until > $2 THEN attempt_counters.failures
                         WHEN attempt_counters.window_start < $3 THEN 1 ELSE attempt_counters.failures + 1 END,
         window_start = CASE WHEN attempt_counters.locked_until <= $2 OR attempt_counters.locked_until IS NULL
                              THEN CASE WHEN attempt_counters.window_start < $3 THEN $2 ELSE attempt_counters.window_start END
                              ELSE attempt_counters.window_start END
       RETURNING failures, locked_until`,
    [key, now, windowStart],
  );
  return rows[0]!;
}

export async function lockCounter(q: Queryable, key: string, until: Date, now: Date): Promise<void> {
  await q.query(
    'UPDATE attempt_counters SET locked_until = $2, failures = 0, window_start = $3 WHERE counter_key = $1',
    [key, until, now],
  );
}

/** Locks the counter until `until` when it has reached `limit` and is not locked already; true if it locked. */
export async function lockAtLimit(q: Queryable, key: string, until: Date, now: Date, limit: number): Promise<boolean> {
  const { rowCount } = await q.query(
    `UPDATE attempt_counters SET locked_until = $2, failures = 0, window_start = $3
       WHERE counter_key = $1 AND failures >= $4 AND (locked_until IS NULL OR locked_until <= $3)`,
    [key, until, now, limit],
  );
  return rowCount > 0;
}

export async function clearCounters(q: Queryable, keys: readonly string[]): Promise<void> {
  await q.query('DELETE FROM attempt_counters WHERE counter_key = ANY($1)', [keys]);
}

/** Gives one try back to each counter. */
export async function giveTryBack(q: Queryable, keys: readonly string[]): Promise<void> {
  await q.query('UPDATE attempt_counters SET failures = GREATEST(failures - 1, 0) WHERE counter_key = ANY($1)', [keys]);
}

export async function lockedUntil(q: Queryable, key: string): Promise<Date | null> {
  const { rows } = await q.query<{ locked_until: Date | null }>(
    'SELECT locked_until FROM attempt_counters WHERE counter_key = $1',
    [key],
  );
  return rows[0]?.locked_until ? new Date(rows[0].locked_until) : null;
}

/** One more failure in the window (a new window once the old one has passed). */
export async function countFailure(q: Queryable, key: string, now: Date, windowStart: Date): Promise<void> {
  await q.query(
    `INSERT INTO attempt_counters (counter_key, failures, window_start) VALUES ($1, 1, $2)
     ON CONFLICT (counter_key) DO UPDATE SET
       failures = CASE WHEN attempt_counters.window_start < $3 THEN 1 ELSE attempt_counters.failures + 1 END,
       window_start = CASE WHEN attempt_counters.window_start < $3 THEN $2 ELSE attempt_counters.window_start END`,
    [key, now, windowStart],
  );
}
