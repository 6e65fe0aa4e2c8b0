/** Web sessions of OpenCIS's own pages (services/sessions.ts), kept by the SHA-256 of their token. */
import type { Queryable } from '../database.ts';

export interface WebSessionRow {
  session_hash: string;
  user_id: string;
  aal: number;
  amr: string[];
  authenticator_id: string | null;
  created_at: Date;
  authenticated_at: Date;
  last_seen_at: Date;
  ended_at: Date | null;
}

/** Ends the live session with this hash, if any, for `reason`. */
export async function endSessionByHash(q: Queryable, sessionHash: string, now: Date, reason: string): Promise<void> {
  await q.query('UPDATE web_sessions SET ended_at = $2, end_reason = $3 WHERE session_hash = $1 AND ended_at IS NULL', [
    sessionHash,
    now,
    reason,
  ]);
}

export async function endReplacedSession(q: Queryable, sessionHash: string, now: Date): Promise<void> {
  await q.query(
    "UPDATE web_sessions SET ended_at = $2, end_reason = 'replaced' WHERE session_hash = $1 AND ended_at IS NULL",
    [sessionHash, now],
  );
}

export async function insertSession(
  q: Queryable,
  s: {
    sessionHash: string;
    userId: string;
    aal: number;
    amr: string[];
    authenticatorId: string;
    now: Date;
    ip: string | null;
    userAgent: string | null;
  },
): Promise<WebSessionRow> {
  const { rows } = await q.query<WebSessionRow>(
    `INSERT INTO web_sessions (session_hash, user_id, aal, amr, authenticator_id, created_at, authenticated_at, last_seen_at, ip, user_agent)
     VALUES ($1, $2, $3, $4, $5, $6, $6, $6, $7, $8) RETURNING *`,
    [s.sessionHash, s.userId, s.aal, s.amr, s.authenticatorId, s.now, s.ip, s.userAgent],
  );
  return rows[0]!;
}

export async function liveSession(q: Queryable, sessionHash: string): Promise<WebSessionRow | undefined> {
  const { rows } = await q.query<WebSessionRow>(
    'SELECT * FROM web_sessions WHERE session_hash = $1 AND ended_at IS NULL',
    [sessionHash],
  );
  return rows[0];
}

export async function touchSession(q: Queryable, sessionHash: string, now: Date): Promise<void> {
  await q.query('UPDATE web_sessions SET last_seen_at = $2 WHERE session_hash = $1', [sessionHash, now]);
}

/** Ends a person's live sessions (only those of one authenticator when given); how many ended. */
export async function endSessionsOfPerson(
  q: Queryable,
  userId: string,
  now: Date,
  reason: string,
  authenticatorId: string | null,
): Promise<number> {
  const { rowCount } = await q.query(
    `UPDATE web_sessions SET ended_at = $2, end_reason = $3
     WHERE user_id = $1 AND ended_at IS NULL AND ($4::text IS NULL OR authenticator_id = $4)`,
    [userId, now, reason, authenticatorId],
  );
  return rowCount;
}

/** A request for the person's single sign-on sessions at relying parties to end (back-channel logout). */
export async function insertSessionEndEvent(q: Queryable, userId: string, reason: string, now: Date): Promise<void> {
  await q.query('INSERT INTO session_end_events (user_id, reason, created_at) VALUES ($1, $2, $3)', [
    userId,
    reason,
    now,
  ]);
}

/** Ends the live sessions signed in with one authenticator (it was removed). */
export async function endSessionsOfAuthenticator(q: Queryable, authenticatorId: string, now: Date): Promise<void> {
  await q.query(
    "UPDATE web_sessions SET ended_at = $2, end_reason = 'authenticator_removed' WHERE authenticator_id = $1 AND ended_at IS NULL",
    [authenticatorId, now],
  );
}
