import { createHash, randomBytes } from 'node:crypto';
import { type Aal, sessionExpiry } from '../domain/credentials/assurance.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import type { WebSessionRow } from '../storage/repositories/sessions.ts';
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

type Row = WebSessionRow;

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
  tx: Repositories,
  ctx: Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'>,
  result: SignInResult,
  previousToken: string | null,
  client: { ip: string | null; userAgent: string | null },
): Promise<{ token: string; session: WebSession }> {
  const now = ctx.clock.now();
  if (previousToken) await tx.sessions.endReplacedSession(hashToken(previousToken), now);
  const token = newToken();
  const row = await tx.sessions.insertSession({
    sessionHash: hashToken(token),
    userId: result.userId,
    aal: result.aal,
    amr: result.amr,
    authenticatorId: result.authenticatorId,
    now,
    ip: client.ip,
    userAgent: client.userAgent?.slice(0, 300) ?? null,
  });
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
  return { token, session: fromRow(row) };
}

/**
 * The live session for a cookie token, or null. Enforces the NIST limits for the session's level on every use, and
 * records activity (at most once a minute, so reads stay cheap).
 */
export async function currentSession(
  repos: Repositories,
  token: string | undefined,
  now: Date,
): Promise<WebSession | null> {
  if (!token || token.length > 100) return null;
  const hash = hashToken(token);
  const row = await repos.sessions.liveSession(hash);
  if (!row) return null;
  const session = fromRow(row);
  const expiry = sessionExpiry(session, now);
  if (expiry !== 'ok') {
    await repos.sessions.endSessionByHash(hash, now, expiry === 'idle' ? 'idle_timeout' : 'max_age');
    return null;
  }
  if (now.getTime() - session.lastSeenAt.getTime() > 60_000) {
    await repos.sessions.touchSession(hash, now);
    session.lastSeenAt = now;
  }
  return session;
}

export async function endSession(repos: Repositories, token: string, now: Date, reason = 'signed_out'): Promise<void> {
  await repos.sessions.endSessionByHash(hashToken(token), now, reason);
}

/** Ends every session of a person, or only those signed in with one authenticator (card cancelled, key removed). */
export async function endSessionsOf(
  repos: Repositories,
  userId: string,
  now: Date,
  reason: string,
  authenticatorId?: string,
): Promise<number> {
  const rowCount = await repos.sessions.endSessionsOfPerson(userId, now, reason, authenticatorId ?? null);
  await recordSessionEnd(repos, userId, reason, now);
  return rowCount;
}

/**
 * Asks for the person's single sign-on sessions at relying parties to end (back-channel logout). Written in the caller's
 * transaction; the OpenID Connect module acts on it once that commits.
 */
export async function recordSessionEnd(repos: Repositories, userId: string, reason: string, now: Date): Promise<void> {
  await repos.sessions.insertSessionEndEvent(userId, reason, now);
}
