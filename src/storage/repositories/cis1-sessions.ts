/**
 * CIS1 sessions (cis1_sessions): started by a card sign-in at a workstation, used by the agent with its session secret,
 * validated by relying parties with the ticket (validation reads them through cis1-tickets.ts). Every read of a
 * session brings the live state of what it stands on: the card, the certificate it proved possession with, the card's
 * current certificate, the person.
 */
import type { Queryable } from '../database.ts';

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
const SESSION_SELECT = `s.session_id, s.user_id, s.card_id, s.certificate_serial, s.workstation_id, s.amr,
  s.person_roleid, s.ticket_hash, s.authenticated_at, s.last_seen_at, s.ended_at, s.end_reason,
  c.status AS card_status, sc.status AS cert_status, sc.revocation_reason AS cert_revocation_reason,
  sc.not_after AS cert_not_after, cc.status AS current_cert_status, cc.not_after AS current_cert_not_after,
  p.status AS person_status`;

const SESSION_FROM = `cis1_sessions s
  JOIN cards c ON c.card_id = s.card_id
  JOIN pki_certificates sc ON sc.serial = s.certificate_serial
  LEFT JOIN pki_certificates cc ON cc.serial = c.certificate_serial
  JOIN people p ON p.user_id = s.user_id`;

export type SessionHolder = Pick<SessionRow, 'session_id' | 'user_id' | 'card_id' | 'workstation_id'>;

/** Ends a session that is not ended yet; false when it was (a second caller changes nothing). */
export async function endSession(q: Queryable, sessionId: string, at: Date, reason: EndReason): Promise<boolean> {
  const { rowCount } = await q.query(
    'UPDATE cis1_sessions SET ended_at = $2, end_reason = $3 WHERE session_id = $1 AND ended_at IS NULL',
    [sessionId, at, reason],
  );
  return rowCount > 0;
}

/** The card's sessions not ended yet, locked. */
export async function liveSessionsOfCard(q: Queryable, cardId: string): Promise<SessionHolder[]> {
  const { rows } = await q.query<SessionHolder>(
    'SELECT session_id, user_id, card_id, workstation_id FROM cis1_sessions WHERE card_id = $1 AND ended_at IS NULL FOR UPDATE',
    [cardId],
  );
  return rows;
}

export interface NewSession {
  sessionId: string;
  userId: string;
  cardId: string;
  certificateSerial: string | null;
  workstationId: string;
  amr: readonly string[];
  agentSecretHash: string;
  ticketHash: string | null;
  personRoleId: string | null;
  at: Date;
  roleSelectedAt: Date | null;
  ip: string | null;
}

export async function insertSession(q: Queryable, s: NewSession): Promise<void> {
  await q.query(
    `INSERT INTO cis1_sessions (session_id, user_id, card_id, certificate_serial, workstation_id, aal, amr,
           agent_secret_hash, ticket_hash, person_roleid, authenticated_at, last_seen_at, role_selected_at, ip)
         VALUES ($1, $2, $3, $4, $5, 3, $6, $7, $8, $9, $10, $10, $11, $12)`,
    [
      s.sessionId,
      s.userId,
      s.cardId,
      s.certificateSerial,
      s.workstationId,
      s.amr,
      s.agentSecretHash,
      s.ticketHash,
      s.personRoleId,
      s.at,
      s.roleSelectedAt,
      s.ip,
    ],
  );
}

/** The session an agent's secret opens, with the live state it depends on; locked. */
export async function lockSessionBySecret(q: Queryable, secretHash: string): Promise<SessionRow | undefined> {
  const { rows } = await q.query<SessionRow>(
    `SELECT ${SESSION_SELECT} FROM ${SESSION_FROM} WHERE s.agent_secret_hash = $1 FOR UPDATE OF s`,
    [secretHash],
  );
  return rows[0];
}

/** A role profile selected (or switched to); the first selection sets the ticket (`ticketHash`, else kept). */
export async function selectRole(
  q: Queryable,
  sessionId: string,
  personRoleId: string,
  at: Date,
  ticketHash: string | null,
): Promise<void> {
  await q.query(
    `UPDATE cis1_sessions SET person_roleid = $2, role_selected_at = $3, last_seen_at = $3,
           ticket_hash = COALESCE(ticket_hash, $4) WHERE session_id = $1`,
    [sessionId, personRoleId, at, ticketHash],
  );
}

/** The agent's heartbeat: the session was seen now. */
export async function touchSession(q: Queryable, sessionId: string, at: Date): Promise<void> {
  await q.query('UPDATE cis1_sessions SET last_seen_at = $2 WHERE session_id = $1', [sessionId, at]);
}
