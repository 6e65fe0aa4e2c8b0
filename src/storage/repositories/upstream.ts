/** Upstream identity providers (services/upstream-idps.ts) and the accounts linked through them (upstream-links.ts). */
import type { Queryable } from '../database.ts';

export interface UpstreamIdpRow {
  idp_id: string;
  name: string;
  issuer: string;
  client_id: string;
  client_secret_sealed: string;
  subject_claim: 'sub' | 'oid';
  allowed_ods: string[];
  status: 'active' | 'disabled';
}

export async function upstreamIdpExists(q: Queryable, idpId: string): Promise<boolean> {
  const exists = await q.query('SELECT 1 FROM upstream_idps WHERE idp_id = $1', [idpId]);
  return exists.rows.length > 0;
}

export async function insertUpstreamIdp(
  q: Queryable,
  i: {
    idpId: string;
    name: string;
    issuer: string;
    clientId: string;
    clientSecretSealed: string;
    subjectClaim: string;
    allowedOds: string[];
    createdBy: string;
    now: Date;
  },
): Promise<void> {
  await q.query(
    `INSERT INTO upstream_idps (idp_id, name, issuer, client_id, client_secret_sealed, subject_claim, allowed_ods,
         created_by, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)`,
    [i.idpId, i.name, i.issuer, i.clientId, i.clientSecretSealed, i.subjectClaim, i.allowedOds, i.createdBy, i.now],
  );
}

/** False when there is no such provider. */
export async function setUpstreamIdpStatus(q: Queryable, idpId: string, status: string, now: Date): Promise<boolean> {
  const { rowCount } = await q.query('UPDATE upstream_idps SET status = $2, updated_at = $3 WHERE idp_id = $1', [
    idpId,
    status,
    now,
  ]);
  return rowCount > 0;
}

export async function upstreamIdps(q: Queryable, onlyActive: boolean): Promise<UpstreamIdpRow[]> {
  const { rows } = await q.query<UpstreamIdpRow>(
    `SELECT * FROM upstream_idps ${onlyActive ? "WHERE status = 'active'" : ''} ORDER BY name, idp_id`,
  );
  return rows;
}

export async function activeUpstreamIdp(q: Queryable, idpId: string): Promise<UpstreamIdpRow | undefined> {
  const { rows } = await q.query<UpstreamIdpRow>(
    "SELECT * FROM upstream_idps WHERE idp_id = $1 AND status = 'active'",
    [idpId],
  );
  return rows[0];
}

/** Live links of this subject or this person at the provider, locked for the rest of the transaction. */
export async function lockLiveLinks(
  q: Queryable,
  idpId: string,
  subject: string,
  userId: string,
): Promise<{ user_id: string }[]> {
  const { rows } = await q.query<{ user_id: string }>(
    "SELECT user_id FROM upstream_links WHERE idp_id = $1 AND (subject = $2 OR user_id = $3) AND status = 'active' FOR UPDATE",
    [idpId, subject, userId],
  );
  return rows;
}

export async function insertLink(
  q: Queryable,
  l: { linkId: string; idpId: string; subject: string; userId: string; linkedBy: string; now: Date },
): Promise<void> {
  await q.query(
    `INSERT INTO upstream_links (link_id, idp_id, subject, user_id, linked_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)`,
    [l.linkId, l.idpId, l.subject, l.userId, l.linkedBy, l.now],
  );
}

/** Marks a person's live link removed; what it linked, or undefined when there was none. */
export async function removeLink(
  q: Queryable,
  linkId: string,
  userId: string,
  now: Date,
): Promise<{ idp_id: string; subject: string } | undefined> {
  const { rows } = await q.query<{ idp_id: string; subject: string }>(
    `UPDATE upstream_links SET status = 'removed', removed_at = $3
       WHERE link_id = $1 AND user_id = $2 AND status = 'active' RETURNING idp_id, subject`,
    [linkId, userId, now],
  );
  return rows[0];
}

export async function liveLinksOf(
  q: Queryable,
  userId: string,
): Promise<{ link_id: string; idp_id: string; subject: string; created_at: Date; last_used_at: Date | null }[]> {
  const { rows } = await q.query<{
    link_id: string;
    idp_id: string;
    subject: string;
    created_at: Date;
    last_used_at: Date | null;
  }>(
    "SELECT link_id, idp_id, subject, created_at, last_used_at FROM upstream_links WHERE user_id = $1 AND status = 'active' ORDER BY created_at",
    [userId],
  );
  return rows;
}

export async function liveLinkOfSubject(
  q: Queryable,
  idpId: string,
  subject: string,
): Promise<{ link_id: string; user_id: string } | undefined> {
  const { rows } = await q.query<{ link_id: string; user_id: string }>(
    "SELECT link_id, user_id FROM upstream_links WHERE idp_id = $1 AND subject = $2 AND status = 'active'",
    [idpId, subject],
  );
  return rows[0];
}

export async function touchLink(q: Queryable, linkId: string, now: Date): Promise<void> {
  await q.query('UPDATE upstream_links SET last_used_at = $2 WHERE link_id = $1', [linkId, now]);
}
