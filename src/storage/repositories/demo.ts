/** The demo installation (src/services/demo.ts): the marker row of a seeded demo database, and its people. */
import type { Queryable } from '../database.ts';

/** Marks this database as seeded with the demo data (once; a production database never has the row). */
export async function markDemoInstallation(q: Queryable, at: Date): Promise<void> {
  await q.query('INSERT INTO demo_installation (id, seeded_at) VALUES (true, $1) ON CONFLICT (id) DO NOTHING', [at]);
}

export async function isDemoInstallation(q: Queryable): Promise<boolean> {
  const { rows } = await q.query('SELECT 1 FROM demo_installation LIMIT 1');
  return rows.length > 0;
}

/** Whether the demo's trust (`odsCode`, RR8) is there already: then the demo data is. */
export async function demoOrganisationExists(q: Queryable, odsCode: string): Promise<boolean> {
  const { rows } = await q.query<{ n: string }>('SELECT count(*)::text AS n FROM organisations WHERE ods_code = $1', [
    odsCode,
  ]);
  return rows[0]?.n !== '0';
}

export interface DemoPersonRow {
  userId: string;
  niNumber: string;
  givenName: string;
  familyName: string;
}

/** The people with these NI numbers (the demo people's example numbers). */
export async function peopleWithNiNumbers(q: Queryable, niNumbers: readonly string[]): Promise<DemoPersonRow[]> {
  const { rows } = await q.query<{ user_id: string; ni_number: string; given_name: string; family_name: string }>(
    'SELECT user_id, ni_number, given_name, family_name FROM people WHERE ni_number = ANY($1::text[])',
    [[...niNumbers]],
  );
  return rows.map((r) => ({
    userId: r.user_id,
    niNumber: r.ni_number,
    givenName: r.given_name,
    familyName: r.family_name,
  }));
}

/** The user ID of the active person with NI number `niNumber`, if any. */
export async function activePersonWithNiNumber(q: Queryable, niNumber: string): Promise<string | undefined> {
  const { rows } = await q.query<{ user_id: string }>(
    "SELECT user_id FROM people WHERE ni_number = $1 AND status = 'active'",
    [niNumber],
  );
  return rows[0]?.user_id;
}
