import { randomBytes } from 'node:crypto';
import { sessionExpiry, sessionLimits } from '../domain/credentials/assurance.ts';
import { appendAudit } from '../services/audit.ts';
import type { ServiceContext } from '../services/context.ts';
import type { Queryable } from '../storage/database.ts';

/**
 * CIS1 session rows and the checks every use of a session makes. A session is only as good as what it was built on,
 * and each of these is read again on every use, never cached: the card still active, the certificate it proved
 * possession with not revoked (a renewal's "superseded" is fine while the card's new certificate is valid), the person
 * active, and the AAL3 limits (NIST SP 800-63B-4: 12 hours, 15 minutes idle).
 */
export type EndReason =
  | 'card_removed'
  | 'signed_out'
  | 'agent_stopped'
  | 'replaced'
  | 'idle_timeout'
  | 'max_age'
  | 'card_inactive'
  | 'certificate_revoked'
  | 'certificate_expired'
  | 'person_inactive';

export const AAL3_LIMITS = sessionLimits[3];

export interface SessionRow {
  session_id: string;
  user_id: string;
  card_id: string;
  certificate_serial: string;
  workstation_id: string;
  amr: string[];
  person_roleid: string | null;
  ticket_hash: string | null;
  // Dates: Date objects from a query, ISO strings from cis1_ticket_state's JSON.
  authenticated_at: Date | string;
  last_seen_at: Date | string;
  ended_at: Date | string | null;
  end_reason: EndReason | null;
  card_status: string;
  cert_status: 'valid' | 'revoked';
  cert_revocation_reason: string | null;
  cert_not_after: Date | string;
  current_cert_status: 'valid' | 'revoked' | null;
  current_cert_not_after: Date | string | null;
  person_status: string;
}

/**
 * The session columns and the live state of what it depends on; callers add their own columns and WHERE. The same
 * columns are in cis1_ticket_state (migration 0009) and cis1_ticket_liveness (migration 0013), which validation uses.
 */
export const SESSION_SELECT = `s.session_id, s.user_id, s.card_id, s.certificate_serial, s.workstation_id, s.amr,
  s.person_roleid, s.ticket_hash, s.authenticated_at, s.last_seen_at, s.ended_at, s.end_reason,
  c.status AS card_status, sc.status AS cert_status, sc.revocation_reason AS cert_revocation_reason,
  sc.not_after AS cert_not_after, cc.status AS current_cert_status, cc.not_after AS current_cert_not_after,
  p.status AS person_status`;

export const SESSION_FROM = `cis1_sessions s
  JOIN cards c ON c.card_id = s.card_id
  JOIN pki_certificates sc ON sc.serial = s.certificate_serial
  LEFT JOIN pki_certificates cc ON cc.serial = c.certificate_serial
  JOIN people p ON p.user_id = s.user_id`;

/** Why a live session may not be used any more, or undefined when it may. */
export function sessionProblem(row: SessionRow, now: Date): EndReason | undefined {
  if (row.card_status !== 'active') return 'card_inactive';
  const renewed =
    row.cert_status === 'revoked' &&
    row.cert_revocation_reason === 'superseded' &&
    row.current_cert_status === 'valid' &&
    row.current_cert_not_after !== null &&
    new Date(row.current_cert_not_after) > now;
  if (row.cert_status !== 'valid' && !renewed) return 'certificate_revoked';
  if (!renewed && new Date(row.cert_not_after) <= now) return 'certificate_expired';
  if (row.person_status !== 'active') return 'person_inactive';
  const expiry = sessionExpiry(
    { aal: 3, authenticatedAt: new Date(row.authenticated_at), lastSeenAt: new Date(row.last_seen_at) },
    now,
  );
  if (expiry === 'idle') return 'idle_timeout';
  if (expiry === 'max_age') return 'max_age';
  return undefined;
}

export function sessionTimes(row: Pick<SessionRow, 'authenticated_at' | 'last_seen_at'>): {
  expiresAt: Date;
  idleExpiresAt: Date;
} {
  const expiresAt = new Date(new Date(row.authenticated_at).getTime() + AAL3_LIMITS.maxAgeMs);
  const idle = new Date(new Date(row.last_seen_at).getTime() + AAL3_LIMITS.idleMs);
  return { expiresAt, idleExpiresAt: idle < expiresAt ? idle : expiresAt };
}

/** 256 random bits, base64url: session secrets and tickets. */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export const SECRET_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export function newSessionId(): string {
  return randomBytes(16).toString('base64url');
}

/** Ends a session (once: a second caller changes nothing) and records why, in the caller's transaction. */
export async function endSessionRow(
  tx: Queryable,
  ctx: Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'>,
  row: Pick<SessionRow, 'session_id' | 'user_id' | 'card_id' | 'workstation_id'>,
  reason: EndReason,
): Promise<boolean> {
  const now = ctx.clock.now();
  const { rowCount } = await tx.query(
    'UPDATE cis1_sessions SET ended_at = $2, end_reason = $3 WHERE session_id = $1 AND ended_at IS NULL',
    [row.session_id, now, reason],
  );
  if (rowCount === 0) return false;
  await appendAudit(tx, ctx, {
    action: 'cis1.session_ended',
    targetType: 'person',
    targetId: row.user_id,
    before: { sessionId: row.session_id, cardId: row.card_id, workstationId: row.workstation_id },
    after: null,
    reason,
  });
  return true;
}
