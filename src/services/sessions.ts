import { createHash, randomBytes } from 'node:crypto';
import { type Aal, sessionExpiry } from '../domain/credentials/assurance.ts';
import type { Queryable } from '../storage/database.ts';
import { appendAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';

/**
 * Web sessions of people signed in to OpenCIS's own pages (sign-in, self-service portal, RA console). The cookie holds
 * 256 random bits; the database holds only their SHA-256, so a copy of the database cannot be used to hijack sessions.
 */
export interface WebSession {
  sessionHash: string;
  userId: string;
  aal: Aal;
  amr: string[];
  authenticatorId: string | null;
  createdAt: Date;
  authenticatedAt: Date;
  lastSeenAt: Date;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

interface Row {
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

function fromRow(r: Row): WebSession {
  return {
    sessionHash: r.session_hash,
    userId: r.user_id,
    aal: r.aal as Aal,
    amr: r.amr,
    authenticatorId: r.authenticator_id,
    createdAt: new Date(r.created_at),
    authenticatedAt: new Date(r.authenticated_at),
    lastSeenAt: new Date(r.last_seen_at),
  };
}

export interface SignInResult {
  userId: string;
  aal: Aal;
  amr: string[];
  authenticatorId: string;
}

/**
 * Starts a session after a successful sign-in, or — when the browser already had one for the same person — replaces it
 * with a new one at the level just reached (step-up). The token is always new: a session id is never reused across a
 * change of privilege (session fixation).
 */
export async function startSession(
  tx: Queryable,
  ctx: Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'>,
  result: SignInResult,
  previousToken: string | null,
  client: { ip: string | null; userAgent: string | null },
): Promise<{ token: string; session: WebSession }> {
  const now = ctx.clock.now();
  if (previousToken) {
    await tx.query(
      "UPDATE web_sessions SET ended_at = $2, end_reason = 'replaced' WHERE session_hash = $1 AND ended_at IS NULL",
      [hashToken(previousToken), now],
    );
  }
  const token = newToken();
  const { rows } = await tx.query<Row>(
    `INSERT INTO web_sessions (session_hash, user_id, aal, amr, authenticator_id, created_at, authenticated_at, last_seen_at, ip, user_agent)
     VALUES ($1, $2, $3, $4, $5, $6, $6, $6, $7, $8) RETURNING *`,
    [
      hashToken(token),
      result.userId,
      result.aal,
      result.amr,
      result.authenticatorId,
      now,
      client.ip,
      client.userAgent?.slice(0, 300) ?? null,
    ],
  );
  await appendAudit(
    tx,
    { ...ctx, actor: { kind: 'person', id: result.userId, userId: result.userId } },
    {
      action: 'session.started',
      targetType: 'person',
      targetId: result.userId,
      before: null,
      after: { aal: result.aal, amr: result.amr, authenticatorId: result.authenticatorId, ip: client.ip },
    },
  );
  return { token, session: fromRow(rows[0]!) };
}

/**
 * The live session for a cookie token, or null. Enforces the NIST limits for the session's level on every use, and
 * records activity (at most once a minute, so reads stay cheap).
 */
export async function currentSession(q: Queryable, token: string | undefined, now: Date): Promise<WebSession | null> {
  if (!token || token.length > 100) return null;
  const hash = hashToken(token);
  const { rows } = await q.query<Row>('SELECT * FROM web_sessions WHERE session_hash = $1 AND ended_at IS NULL', [
    hash,
  ]);
  const row = rows[0];
  if (!row) return null;
  const session = fromRow(row);
  const expiry = sessionExpiry(session, now);
  if (expiry !== 'ok') {
    await q.query(
      'UPDATE web_sessions SET ended_at = $2, end_reason = $3 WHERE session_hash = $1 AND ended_at IS NULL',
      [hash, now, expiry === 'idle' ? 'idle_timeout' : 'max_age'],
    );
    return null;
  }
  if (now.getTime() - session.lastSeenAt.getTime() > 60_000) {
    await q.query('UPDATE web_sessions SET last_seen_at = $2 WHERE session_hash = $1', [hash, now]);
    session.lastSeenAt = now;
  }
  return session;
}

export async function endSession(q: Queryable, token: string, now: Date, reason = 'signed_out'): Promise<void> {
  await q.query('UPDATE web_sessions SET ended_at = $2, end_reason = $3 WHERE session_hash = $1 AND ended_at IS NULL', [
    hashToken(token),
    now,
    reason,
  ]);
}

/** Ends every session of a person, or only those signed in with one authenticator (card cancelled, key removed). */
export async function endSessionsOf(
  q: Queryable,
  userId: string,
  now: Date,
  reason: string,
  authenticatorId?: string,
): Promise<number> {
  const { rowCount } = await q.query(
    `UPDATE web_sessions SET ended_at = $2, end_reason = $3
     WHERE user_id = $1 AND ended_at IS NULL AND ($4::text IS NULL OR authenticator_id = $4)`,
    [userId, now, reason, authenticatorId ?? null],
  );
  await recordSessionEnd(q, userId, reason, now);
  return rowCount;
}

/**
 * Asks for the person's single sign-on sessions at relying parties to end (back-channel logout). Written in the caller's
 * transaction; the OpenID Connect module acts on it once that commits.
 */
export async function recordSessionEnd(q: Queryable, userId: string, reason: string, now: Date): Promise<void> {
  await q.query('INSERT INTO session_end_events (user_id, reason, created_at) VALUES ($1, $2, $3)', [
    userId,
    reason,
    now,
  ]);
}
