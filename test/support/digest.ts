import type { Queryable } from '../../src/storage/database.ts';

/**
 * A digest of every row of every table of the test database, one line per table: equal before and after means nothing
 * at all was written. `except`: tables a refusal is meant to write to — the audit trail of refusals (audit_events,
 * audit_lanes), the failure counters of rate limits (attempt_counters). A difference names the table.
 */
export async function databaseDigest(q: Queryable, except: readonly string[] = []): Promise<string> {
  const { rows: tables } = await q.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables
     WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`,
  );
  const digests: string[] = [];
  for (const { name } of tables) {
    if (except.includes(name)) continue;
    const { rows } = await q.query<{ d: string | null }>(
      `SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) AS d FROM "${name}" t`,
    );
    digests.push(`${name}: ${rows[0]?.d ?? '-'}`);
  }
  return digests.join('\n');
}

/** What a refusal may write: its audit record and the failure counters; nothing else. */
export const REFUSAL_TABLES = ['audit_events', 'audit_lanes', 'attempt_counters'] as const;
