/** Words the console shows for the domain's codes, and a short human summary of an audit event. */
import type { AuditEvent } from '../../domain/audit/chain.ts';
import { type DocumentCategory, documentCatalogue } from '../../domain/identity/documents.ts';
import type { RaRole } from '../../domain/policy.ts';

export const roleNames: Record<RaRole, string> = {
  ra_manager: 'RA Manager',
  advanced_ra_agent: 'Advanced RA Agent',
  ra_agent: 'RA Agent',
  sponsor: 'Sponsor',
  id_checker: 'ID Checker',
  local_smartcard_administrator: 'Local Smartcard Administrator',
};

export const categoryNames: Record<DocumentCategory, string> = {
  photo_id: 'Photo ID',
  address: 'Proof of address',
  other: 'Other document',
};

export function documentName(type: string): string {
  return Object.hasOwn(documentCatalogue, type) ? documentCatalogue[type as keyof typeof documentCatalogue].name : type;
}

export const identityLevelNames: Record<number, string> = {
  1: 'Level 1 – not verified',
  2: 'Level 2 – verified remotely',
  3: 'Level 3 – verified face to face',
};

/** nhsuk-tag colours for statuses (people, cards, role profiles, requests, applications). */
export const statusColours: Record<string, string> = {
  active: 'green',
  approved: 'green',
  verified: 'green',
  suspended: 'yellow',
  locked: 'yellow',
  pending: 'blue',
  submitted: 'blue',
  issuing: 'blue',
  awaiting_passcode: 'blue',
  left: 'grey',
  ended: 'grey',
  withdrawn: 'grey',
  expired: 'grey',
  cancelled: 'red',
  rejected: 'red',
  deceased: 'grey',
};

const actionNames: Record<string, string> = {
  'person.registered': 'Record created',
  'person.identity_verified': 'Identity checked',
  'person.name_changed': 'Name changed',
  'person.status_changed': 'Status changed',
  'person.left': 'Marked as a leaver',
  'role_profile.assigned': 'Role profile given',
  'role_profile.ended': 'Role profile ended',
  'role_profile.ended_by_date': 'Role profile reached its end date',
  'role_profile.dates_changed': 'Role profile dates changed',
  'access_request.created': 'Access requested',
  'access_request.approved': 'Access request approved',
  'access_request.rejected': 'Access request rejected',
  'access_request.withdrawn': 'Access request withdrawn',
  'access_request.expired': 'Access request expired',
  'card.issue_started': 'Smartcard issue started',
  'card.grant_redeemed.issue': 'Smartcard written by the card agent',
  'card.grant_redeemed.set_passcode': 'Smartcard passcode set',
  'card.grant_redeemed.unlock': 'Smartcard unlocked and passcode reset',
  'card.certified': 'Smartcard certificate issued',
  'card.cancelled': 'Smartcard cancelled',
  'card.unlock_authorised': 'Smartcard unlock authorised',
  'card.self_service_unlock': 'Smartcard unlocked by its holder',
  'card.locked': 'Smartcard locked itself',
  'card.passcode_incorrect': 'Wrong smartcard passcode',
  'card.renewed': 'Smartcard certificate renewed',
  'session.started': 'Signed in',
  'signin.failed': 'Sign-in failed',
  'authenticator.webauthn_registered': 'Security key or passkey added',
  'authenticator.webauthn_removed': 'Security key or passkey removed',
  'authenticator.totp_enrolled': 'Authenticator app added',
  'authenticator.totp_removed': 'Authenticator app removed',
  'authenticator.clone_warning': 'Security key may have been copied',
  'enrolment.invitation_created': 'Enrolment link created',
  'enrolment.checks_failed': 'Self-service enrolment checks failed',
  'ra.refused': 'RA action refused',
  'access.refused': 'Access refused',
  'oidc.signed_in': 'Signed in to a service',
  'application.submitted': 'Apply for Care ID application sent',
  'application.verified': 'Application verified',
  'application.rejected': 'Application rejected',
  'organisation.created': 'Organisation created',
  'organisation.updated': 'Organisation changed',
  'position.created': 'Position created',
  'oidc.client_registered': 'Relying party registered',
  'oidc.client_updated': 'Relying party changed',
  'oidc.client_rekeyed': 'Relying party given new keys',
  'oidc.client_disabled': 'Relying party disabled',
  'oidc.client_active': 'Relying party enabled',
  'audit.exported': 'Audit trail exported',
  'report.exported': 'Report exported',
};

/** Every action the console has words for, by name: the audit view's "action" filter. */
export function knownActions(): { value: string; text: string }[] {
  return Object.entries(actionNames)
    .map(([value, text]) => ({ value, text }))
    .sort((a, b) => a.text.localeCompare(b.text, 'en-GB'));
}

export function actionName(code: string): string {
  return actionNames[code] ?? humanise(code);
}

function humanise(code: string): string {
  const s = code.replace(/[._]+/g, ' ').trim();
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** Only these fields of an event's before/after are ever shown: codes and IDs, never names, numbers or addresses. */
function pick(value: unknown, key: string): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = (value as Record<string, unknown>)[key];
  return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
}

export interface HistoryLine {
  at: string;
  what: string;
  detail: string;
  actor: string;
  reason: string | null;
}

/** A short, human summary of an audit event about a person — no dump of the record. */
export function historyLine(e: AuditEvent): HistoryLine {
  const details: string[] = [];
  const before = pick(e.before, 'status');
  const after = pick(e.after, 'status');
  if (e.action === 'person.status_changed' && before && after) details.push(`${before} → ${after}`);
  const card = pick(e.after, 'cardId') ?? pick(e.before, 'cardId');
  if (card) details.push(`card ${card}`);
  const role = pick(e.after, 'personRoleId') ?? pick(e.before, 'personRoleId');
  if (role) details.push(`role profile ${role}`);
  const request = pick(e.after, 'requestId') ?? pick(e.before, 'requestId');
  if (request) details.push(`request ${request}`);
  if (e.action === 'person.identity_verified') {
    const method = pick(e.after, 'method');
    const level = pick(e.after, 'identityAssuranceLevel');
    if (method) details.push(method === 'face_to_face' ? 'face to face' : 'remote');
    if (level) details.push(`level ${level}`);
  }
  if (e.action === 'ra.refused') {
    const action = pick(e.after, 'action');
    if (action) details.push(humanise(action));
  }
  if (e.action === 'access.refused') {
    const what = pick(e.after, 'what');
    if (what) details.push(what);
  }
  return {
    at: e.at,
    what: actionNames[e.action] ?? humanise(e.action),
    detail: details.join(', '),
    actor: e.actor.startsWith('person:') ? e.actor.slice(7) : e.actor,
    // Reasons are free text an RA typed (escaped when shown); sign-in failure reasons are internal, so not shown.
    reason: e.action === 'signin.failed' || e.action === 'session.started' ? null : (e.reason ?? null),
  };
}

/** "2026-11-26T09:00:00.000Z" → "26 Nov 2026, 09:00" (UK time). */
export function dateTime(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/London',
    day: 'numeric',
    month: 'short',
    year: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
  }).format(d);
}

/** "2026-11-26" (or an ISO time) → "26 November 2026". */
export function dayName(value: string | null | undefined): string {
  if (!value) return '';
  const d = new Date(value.length === 10 ? `${value}T12:00:00Z` : value);
  if (Number.isNaN(d.getTime())) return '';
  return new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/London',
    day: 'numeric',
    month: 'long',
    year: 'numeric',
  }).format(d);
}
