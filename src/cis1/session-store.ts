import { randomBytes } from 'node:crypto';
import { sessionExpiry, sessionLimits } from '../domain/credentials/assurance.ts';
import { appendAudit } from '../services/audit.ts';
import type { ServiceContext } from '../services/context.ts';
import type { EndReason, SessionHolder, SessionRow } from '../storage/repositories/cis1-sessions.ts';
import type { Repositories } from '../storage/repositories/index.ts';

export type { EndReason, SessionRow } from '../storage/repositories/cis1-sessions.ts';

/**
 * CIS1 session rows and the checks every use of a session makes. A session is only as good as what it was built on,
 * and each of these is read again on every use, never cached: the card still active, the certificate it proved
 * possession with not revoked (a renewal's "superseded" is fine while the card's new certificate is valid), the person
 * active, and the AAL3 limits (NIST SP 800-63B-4: 12 hours, 15 minutes idle).
 */

export const AAL3_LIMITS = sessionLimits[3];

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
  tx: Repositories,
  ctx: Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'>,
  row: SessionHolder,
  reason: EndReason,
): Promise<boolean> {
  const now = ctx.clock.now();
  if (!(await tx.cis1Sessions.endSession(row.session_id, now, reason))) return false;
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
