/**
 * What a token's claims are built from: the grant's context (the session's assurance level and the role the person
 * chose, oidc_grant_context) and, in one statement, every claim source of a person for a day (oidc_claims_state,
 * migration 0012).
 */
import type { Queryable } from '../database.ts';

export async function saveGrantContext(
  q: Queryable,
  grantId: string,
  userId: string,
  aal: number,
  personRoleId: string | null,
): Promise<void> {
  await q.query(
    `INSERT INTO oidc_grant_context (grant_id, user_id, aal, person_roleid, updated_at) VALUES ($1, $2, $3, $4, now())
     ON CONFLICT (grant_id) DO UPDATE SET aal = EXCLUDED.aal, person_roleid = EXCLUDED.person_roleid, updated_at = now()`,
    [grantId, userId, aal, personRoleId],
  );
}

/**
 * The person, grant, roles, organisations, registrations and workgroups behind a token's claims, as oidc_claims_state
 * returns them (JSON; its shape is the claims module's, src/oidc/claims.ts). `withMemberships`: the userinfo endpoint's
 * extra sources too.
 */
export async function claimsState(
  q: Queryable,
  userId: string,
  day: string,
  grantId: string | null,
  withMemberships: boolean,
): Promise<unknown> {
  const { rows } = await q.query<{ state: unknown }>('SELECT oidc_claims_state($1, $2, $3, $4) AS state', [
    userId,
    day,
    grantId,
    withMemberships,
  ]);
  return rows[0]?.state ?? null;
}
