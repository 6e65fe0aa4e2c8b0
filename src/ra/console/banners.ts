/**
 * Success banners after a change (NHS.UK notification banner, "success"). A change ends with a redirect (POST →
 * redirect → GET) to the page of what changed, carrying only a code from this list in `?done=`: the banner's words
 * come from here, never from the URL, so a crafted link can show nothing but one of these sentences.
 */
import type { FastifyRequest } from 'fastify';

const messages = {
  registered: 'Record created. Their identity check is recorded with it.',
  registered_unverified: 'Record created, unverified (level 1). Record their identity check when you have the photo.',
  identity_checked: 'Identity check recorded.',
  name_changed: 'Name changed.',
  suspended: 'Suspended. They have no access now and every session they had has ended.',
  restored: 'Restored. Their role profiles in effect count again.',
  leaver: 'Marked as a leaver. Their access has ended, their cards are cancelled and their sessions ended.',
  rejoined: 'Re-joined under the same user ID. Request their access again.',
  role_ended: 'Role profile ended.',
  dates_changed: 'Role profile dates changed.',
  position_given: 'Position given. The role profile is in their record.',
  request_sent: 'Request sent. An RA decides it; it expires if nobody does.',
  request_approved: 'Request approved. The position is given.',
  request_rejected: 'Request rejected. The requester and the person can see why.',
  request_withdrawn: 'Request withdrawn.',
  card_cancelled: 'Card cancelled. Its certificate is revoked and the sessions opened with it have ended.',
  authenticator_removed: 'Removed. Sessions opened with it have ended.',
  invitation_sent: 'Enrolment link sent.',
  application_verified: 'Application verified. The person is at identity level 2.',
  application_rejected: 'Application rejected. The applicant is told the reason.',
  position_created: 'Position created.',
  organisation_created: 'Organisation created.',
  client_registered: 'Relying party registered.',
  client_updated: 'Relying party changed.',
  client_disabled: 'Relying party disabled. It cannot sign anyone in now.',
  client_enabled: 'Relying party enabled again.',
  client_rekeyed: 'New keys saved. The old ones no longer work.',
} as const;

export type DoneCode = keyof typeof messages;

/** A page's address with the banner code of the change that led there. */
export function withDone(path: string, code: DoneCode): string {
  const [base, hash] = path.split('#');
  return `${base}${base!.includes('?') ? '&' : '?'}done=${code}${hash ? `#${hash}` : ''}`;
}

/** The banner to show on this page, if the request names a known change. */
export function doneMessage(req: FastifyRequest): string | undefined {
  const done = (req.query as Record<string, unknown> | undefined)?.done;
  return typeof done === 'string' && Object.hasOwn(messages, done) ? messages[done as DoneCode] : undefined;
}
