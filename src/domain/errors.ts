/**
 * The error-code catalogue, one for the server and the card agent. Every error OpenCIS raises on purpose has a dotted
 * code listed here with the HTTP status it maps to and a human message. Codes are stable: clients, scripts and the
 * pages' own scripts may depend on them. docs/errors.md lists them all (`node --import tsx scripts/error-table.ts
 * --write`); test/unit/error-catalogue.test.ts fails when a code raised anywhere in src/ is missing here or there.
 */
type Entry = { readonly status: number; readonly message: string };

/** What the OpenCIS server answers with: its HTTP API and pages, CIS1, PKI and the `opencis` command. */
const serverErrors = {
  // request shape
  'request.invalid': { status: 400, message: 'The request is not valid.' },
  'request.invalid_text': {
    status: 400,
    message:
      'The request contains text that cannot be accepted: a NUL character, or malformed Unicode or percent-encoding.',
  },
  'request.too_deep': { status: 400, message: 'The request body is nested too deeply.' },
  'request.malformed_json': { status: 400, message: 'The request body is not valid JSON.' },
  'request.unsupported_media_type': { status: 415, message: 'The request content type is not supported.' },
  'request.too_large': { status: 413, message: 'The request body is too large.' },
  'request.header_too_large': { status: 431, message: 'The request headers are too large.' },
  'request.not_found': { status: 404, message: 'There is nothing at this address.' },
  'request.method_not_allowed': { status: 405, message: 'This method is not allowed here.' },
  'request.timeout': { status: 408, message: 'The request took too long to arrive.' },
  'request.rate_limited': { status: 429, message: 'Too many requests. Wait a moment and try again.' },
  // authentication and permission
  'auth.required': { status: 401, message: 'You need to sign in to do this.' },
  'auth.forbidden': { status: 403, message: 'You do not have permission to do this.' },
  'auth.failed': { status: 401, message: 'Sign-in failed. Check what you entered and try again.' },
  'auth.session_expired': { status: 401, message: 'Your session has ended. Sign in again.' },
  'auth.step_up_required': {
    status: 403,
    message: 'This needs a stronger sign-in. Sign in again with a smartcard or security key.',
  },
  'auth.rate_limited': { status: 429, message: 'Too many failed attempts. Wait and try again later.' },
  'auth.csrf_invalid': { status: 403, message: 'This form has expired. Go back, reload the page and try again.' },
  // authenticators
  'authenticator.not_found': { status: 404, message: 'No such authenticator.' },
  'enrolment.not_allowed': {
    status: 403,
    message: 'You cannot add this authenticator yourself. Ask your Registration Authority.',
  },
  'enrolment.checks_failed': {
    status: 403,
    message:
      'Your details could not be confirmed. Check your National Insurance number, or ask your Registration Authority.',
  },
  // (card.locked, the card's own refusal of a passcode, is the card agent's: below)
  'card.not_found': { status: 404, message: 'No smartcard has that ID.' },
  'card.invalid_state': { status: 409, message: 'The smartcard is not in a state that allows this.' },
  'card.not_in_reader': {
    status: 409,
    message: 'The card in the reader is not the card being renewed. Put the holder’s card in the reader and try again.',
  },
  'card.grant_invalid': { status: 403, message: 'This card operation is not valid, has expired or was already used.' },
  'card.token_in_use': {
    status: 409,
    message: 'That card is already issued to someone. Cancel it before issuing it again.',
  },
  'card.renewal_not_allowed': {
    status: 409,
    message: 'A certificate can be renewed by its holder only in the last 90 days before it expires, and not after.',
  },
  'card.proof_invalid': { status: 400, message: 'The card could not prove it holds the key.' },
  'card.not_configured': {
    status: 503,
    message: 'Card issuing is not configured on this server (CARD_TRANSPORT_SO_PIN).',
  },
  'one_time_code.invalid': { status: 400, message: 'The code is wrong, has expired or was already used.' },
  'one_time_code.no_contact': {
    status: 409,
    message: 'There is no verified email address or mobile number to send a code to.',
  },
  'webauthn.verification_failed': {
    status: 400,
    message: 'The security key or passkey response could not be verified.',
  },
  'webauthn.challenge_invalid': {
    status: 400,
    message: 'The sign-in request has expired or was already used. Start again.',
  },
  'totp.invalid_code': {
    status: 400,
    message: 'The code from the authenticator app is not right. Check the app and try again.',
  },
  // certificate authority (PKI)
  'pki.ca_unavailable': { status: 503, message: 'The certificate authority has not been set up yet.' },
  'pki.ca_import_invalid': { status: 400, message: 'The CA certificate or private key to import cannot be read.' },
  'pki.ca_import_not_ca': { status: 400, message: 'The certificate to import is not a CA certificate.' },
  'pki.ca_import_key_mismatch': { status: 400, message: 'The private key does not match the CA certificate.' },
  'pki.unsupported_public_key': {
    status: 400,
    message: 'Only EC P-256 and RSA public keys of at least 2048 bits can be certified.',
  },
  'pki.invalid_validity': { status: 400, message: 'The certificate validity period is not valid.' },
  'pki.invalid_revocation_reason': { status: 400, message: 'The revocation reason is not an RFC 5280 reason.' },
  'pki.certificate_not_found': { status: 404, message: 'No certificate has that serial number.' },
  'pki.certificate_unreadable': { status: 400, message: 'The certificate cannot be read.' },
  'pki.certificate_untrusted': { status: 401, message: 'The certificate was not issued by OpenCIS.' },
  'pki.certificate_not_yet_valid': { status: 401, message: 'The certificate is not valid yet.' },
  'pki.certificate_expired': { status: 401, message: 'The certificate has expired.' },
  'pki.certificate_revoked': { status: 401, message: 'The certificate has been revoked.' },
  'pki.certificate_unknown': { status: 401, message: 'The certificate is not known to OpenCIS.' },
  // people
  'person.not_found': { status: 404, message: 'No person has that user ID.' },
  'person.duplicate': {
    status: 409,
    message:
      'A person with the same National Insurance number, or the same name and date of birth, is already recorded.',
  },
  'person.invalid_ni_number': { status: 400, message: 'The National Insurance number is not valid.' },
  'person.invalid_date_of_birth': { status: 400, message: 'The date of birth is not a valid past date.' },
  'person.invalid_user_id': { status: 400, message: 'A user ID is 12 digits with a valid check digit.' },
  'person.invalid_status_change': {
    status: 409,
    message: 'The person cannot move to that status from their current one.',
  },
  'person.version_conflict': { status: 409, message: 'The person was changed by someone else. Reload and try again.' },
  // organisations
  'organisation.not_found': { status: 404, message: 'No organisation has that ODS code.' },
  'organisation.invalid_ods_code': {
    status: 400,
    message: 'An ODS code is 3 to 6 upper-case letters and digits (for example RJ1, RJ122, A81001).',
  },
  'organisation.exists': { status: 409, message: 'An organisation with that ODS code already exists.' },
  'organisation.parent_not_found': { status: 400, message: 'The parent organisation does not exist.' },
  'organisation.hierarchy_cycle': {
    status: 400,
    message: 'An organisation cannot be placed under itself or its own children.',
  },
  // RBAC catalogue, positions and role profiles
  'rbac.unknown_code': { status: 400, message: 'One or more RBAC codes are not in the national catalogue.' },
  'rbac.catalogue_invalid': { status: 400, message: 'The RBAC catalogue file is not valid.' },
  'position.not_found': { status: 404, message: 'No position has that ID.' },
  'position.empty': { status: 400, message: 'A position needs at least one job role.' },
  'role_profile.not_found': { status: 404, message: 'No role profile has that ID.' },
  'role_profile.invalid_dates': { status: 400, message: 'The end date must be on or after the start date.' },
  'role_profile.person_inactive': { status: 409, message: 'Access cannot be given to a person who is not active.' },
  'role_profile.already_ended': { status: 409, message: 'The role profile has already ended.' },
  // Registration Authority: identity checks, photos, Apply for Care ID, access requests
  'identity_check.documents_insufficient': {
    status: 400,
    message:
      'The documents do not meet the NHS Employers identity check standard: one photo ID, one proof of address from the last 3 months and one more document.',
  },
  'identity_check.duplicate_unresolved': {
    status: 409,
    message: 'Possible duplicates were found. Use the existing record or confirm this is a different person.',
  },
  'photo.invalid': { status: 400, message: 'The photo is not a readable JPEG or PNG image.' },
  'photo.too_large': { status: 413, message: 'The photo is larger than 5 MB.' },
  'photo.not_found': { status: 404, message: 'No photo has that ID.' },
  'application.not_found': { status: 404, message: 'No application has that ID.' },
  'application.already_decided': { status: 409, message: 'This application has already been verified or rejected.' },
  'access_request.not_found': { status: 404, message: 'No access request has that ID.' },
  'access_request.already_decided': {
    status: 409,
    message: 'This request has already been approved, rejected, withdrawn or has expired.',
  },
  'access_request.duplicate': {
    status: 409,
    message: 'There is already a pending request for this person and position.',
  },
  'access_request.version_conflict': {
    status: 409,
    message: 'The request was changed by someone else. Reload and try again.',
  },
  // CIS1 (legacy smartcard tickets)
  'cis1.client_invalid': {
    status: 401,
    message: 'The application is not registered for ticket validation, or its client credentials are wrong.',
  },
  'cis1.ticket_invalid': { status: 401, message: 'The ticket is not valid. Get a new ticket from the card agent.' },
  'cis1.ticket_expired': { status: 401, message: 'The smartcard session has timed out. Sign in with the card again.' },
  'cis1.session_ended': {
    status: 401,
    message:
      'The smartcard session has ended (card removed, locked or revoked, or signed out). Sign in with the card again.',
  },
  'cis1.workstation_mismatch': {
    status: 403,
    message: 'The ticket was issued to a card agent on another workstation.',
  },
  'cis1.role_not_effective': {
    status: 403,
    message: 'That role profile is not one of your role profiles in effect now. Choose another role.',
  },
  'cis1.no_role_profile': {
    status: 403,
    message:
      'You have no role profile in effect, so you cannot use smartcard applications. Ask your Registration Authority.',
  },
  'cis1.agent_session_invalid': {
    status: 401,
    message: 'The card agent session is not valid or has ended. Sign in with the card again.',
  },
  // upstream identity providers (federated sign-in, AAL2_NHSMAIL)
  'upstream.idp_not_found': { status: 404, message: 'No upstream identity provider has that ID.' },
  'upstream.idp_exists': { status: 409, message: 'An upstream identity provider with that ID is registered already.' },
  'upstream.unavailable': {
    status: 503,
    message: 'Your organisation’s sign-in service is not answering. Try again shortly, or sign in another way.',
  },
  'upstream.response_invalid': {
    status: 400,
    message:
      'Your organisation’s sign-in service sent an answer that cannot be trusted, so you are not signed in. Try again.',
  },
  'upstream.denied': { status: 400, message: 'Signing in through your organisation was cancelled or refused.' },
  'upstream.flow_invalid': {
    status: 400,
    message: 'This sign-in has expired or was started in another window. Start again.',
  },
  'upstream.not_linked': {
    status: 403,
    message:
      'This account is not linked to a Care Identity record. Ask your Registration Authority to link it, or sign in another way and link it from your account page.',
  },
  'upstream.organisation_not_allowed': {
    status: 403,
    message: 'This way of signing in is not offered to people in your organisation.',
  },
  'upstream.already_linked': { status: 409, message: 'That account is already linked to a Care Identity record.' },
  'upstream.link_not_found': { status: 404, message: 'No such linked account.' },
  // OpenID Connect
  'oidc.client_not_found': { status: 404, message: 'No relying party has that client ID.' },
  'oidc.no_role_profile': {
    status: 403,
    message: 'You have no role profile in effect, so you cannot use this service. Ask your Registration Authority.',
  },
  'oidc.interaction_expired': {
    status: 400,
    message: 'This sign-in has expired. Go back to the service and start again.',
  },
  // audit
  'audit.chain_broken': { status: 500, message: 'The audit chain does not verify.' },
  'audit.adoption_required': {
    status: 409,
    message:
      'The audit trail holds events written before audit keys and has no signed seal yet: an operator adopts them once with `opencis audit seal --adopt-unkeyed`.',
  },
  // import
  'import.bad_header': { status: 400, message: 'The file does not have the expected columns.' },
  'import.malformed_row': { status: 400, message: 'The row is not valid CSV.' },
  'import.row_too_large': { status: 400, message: 'The row is too long.' },
  'import.file_not_found': { status: 400, message: 'The file cannot be read.' },
  // service
  'service.unavailable': { status: 503, message: 'The service is temporarily unavailable. Try again shortly.' },
  'service.read_only': {
    status: 503,
    message: 'The service is read-only at the moment (maintenance). Nothing was changed; try again later.',
  },
  'service.data_dir_locked': {
    status: 503,
    message:
      'Another OpenCIS process (the server?) is using this data directory. Stop it first (Ctrl-C where it runs), then run this again.',
  },
  'bootstrap.ra_manager_exists': {
    status: 409,
    message:
      'An RA Manager already exists, so there is nothing to bootstrap: RA Managers appoint further RA staff in the console.',
  },
  'service.admin_socket_busy': {
    status: 503,
    message: 'Another opencis command is using the running server. Try again when it has finished.',
  },
  'service.admin_version_mismatch': {
    status: 503,
    message:
      'The running server is another version of OpenCIS (or has other migrations). Restart it with this version, then run the command again.',
  },
  'internal.error': { status: 500, message: 'Something went wrong on our side. It has been logged.' },
} as const satisfies Record<string, Entry>;

/**
 * What the card agent (src/card-agent/) answers OpenCIS pages and local applications with: its own refusals
 * (`agent.*`, AgentError), the card's (`card.*`, CardError from the PKCS#11 token) and its CIS1 side's (`cis1.*`,
 * Cis1AgentError). When the server refuses a request the agent makes for the page, the agent answers with the
 * server's code and message instead (with the server's status when it is a 4xx, 502 otherwise).
 */
const cardAgentErrors = {
  // the agent's own checks and its link to the server
  'agent.forbidden': { status: 403, message: 'The card agent answers only this computer.' },
  'agent.other_user': { status: 403, message: 'The card agent answers only the programs of the person signed in.' },
  'agent.host_not_allowed': { status: 403, message: 'The request was not addressed to the card agent.' },
  'agent.origin_not_allowed': { status: 403, message: 'This web page may not use the card agent.' },
  'agent.not_found': { status: 404, message: 'There is nothing at this address.' },
  'agent.method_not_allowed': { status: 405, message: 'This method is not allowed here.' },
  'agent.unsupported_media_type': { status: 415, message: 'The request body must be JSON.' },
  'agent.body_too_large': { status: 413, message: 'The request body is too large.' },
  'agent.malformed_json': { status: 400, message: 'The request body is not valid JSON.' },
  'agent.invalid_request': { status: 400, message: 'The request is not valid.' },
  'agent.invalid_challenge': { status: 400, message: 'The sign-in challenge is not valid.' },
  'agent.grant_action_mismatch': { status: 409, message: 'That grant is for a different card action.' },
  'agent.request_timeout': { status: 408, message: 'The request took too long to arrive.' },
  'agent.request_incomplete': { status: 400, message: 'The request body did not arrive in full.' },
  'agent.header_too_large': { status: 431, message: 'The request headers are too large.' },
  'agent.server_unreachable': { status: 502, message: 'The OpenCIS server cannot be reached. Try again shortly.' },
  'agent.server_timeout': { status: 504, message: 'The OpenCIS server did not answer in time. Try again shortly.' },
  'agent.server_error': { status: 502, message: 'The OpenCIS server gave an answer the card agent cannot use.' },
  'agent.internal_error': { status: 500, message: 'Something went wrong in the card agent.' },
  // the card (PKCS#11 token)
  'card.absent': { status: 409, message: 'No smartcard was found. Insert your card and try again.' },
  'card.not_issued': {
    status: 409,
    message: 'This card has not been issued: it holds no OpenCIS key and certificate.',
  },
  'card.locked': {
    status: 423,
    message:
      'This card is locked after too many wrong passcodes. Ask your RA to unlock it, or use self-service unlock.',
  },
  'card.passcode_incorrect': { status: 401, message: 'The passcode is not correct.' },
  'card.passcode_format': { status: 400, message: 'The passcode must be 6 to 8 digits.' },
  'card.passcode_weak': { status: 400, message: 'That passcode is too easy to guess.' },
  'card.passcode_not_set': { status: 409, message: 'No passcode has been set on this card yet.' },
  'card.passcode_expired': { status: 409, message: 'The passcode on this card has expired. Set a new one.' },
  'card.passcode_rejected': { status: 400, message: 'The card refused that passcode.' },
  'card.admin_pin_incorrect': {
    status: 409,
    message: 'The card did not accept its administrator PIN. It may have been issued elsewhere: ask your RA.',
  },
  'card.admin_pin_locked': {
    status: 423,
    message: 'The card’s administrator PIN is locked. The card must be replaced.',
  },
  'card.certificate_mismatch': {
    status: 409,
    message: 'The new certificate is not for the key on this card.',
  },
  'card.changed': {
    status: 409,
    message: 'The card was removed or changed during the operation. Insert the same card and start again.',
  },
  'card.unsupported_key': { status: 409, message: 'The key on this card is of a kind the agent cannot use.' },
  'card.reader_unavailable': { status: 503, message: 'The smartcard software (PKCS#11 module) could not be loaded.' },
  'card.busy': { status: 409, message: 'Another program is using the card. Try again in a moment.' },
  'card.error': { status: 500, message: 'The card reported an error.' },
  // CIS1 on the workstation
  'cis1.no_card': { status: 409, message: 'No smartcard is in the reader. Insert your smartcard and sign in.' },
  'cis1.card_locked': {
    status: 423,
    message: 'The smartcard is locked. Unlock it with a one-time code or ask your Registration Authority.',
  },
  'cis1.no_session': {
    status: 409,
    message: 'Nobody is signed in with the smartcard on this computer. Sign in with the card agent first.',
  },
  'cis1.role_required': {
    status: 409,
    message: 'Choose the role you are working in before applications can use your smartcard session.',
  },
  'cis1.server_answer': { status: 502, message: 'The OpenCIS server gave an answer the card agent cannot use.' },
} as const satisfies Record<string, Entry>;

/** Every code, the server's and the card agent's. A code is in one section only (the unit test checks it). */
export const errorCatalogue = { ...serverErrors, ...cardAgentErrors } as const satisfies Record<string, Entry>;

export type ErrorCode = keyof typeof errorCatalogue;
/** The codes the server answers with (its OpenAPI document lists these). */
export type ServerErrorCode = keyof typeof serverErrors;
/** The codes the card agent answers with from its own checks; AgentError, CardError and Cis1AgentError take these. */
export type CardAgentErrorCode = keyof typeof cardAgentErrors;

export const serverErrorCodes = Object.keys(serverErrors) as ServerErrorCode[];
export const cardAgentErrorCodes = Object.keys(cardAgentErrors) as CardAgentErrorCode[];

/** Who raises a code: the OpenCIS server or the card agent on the workstation. */
export function raisedBy(code: ErrorCode): 'server' | 'card agent' {
  return Object.hasOwn(serverErrors, code) ? 'server' : 'card agent';
}

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(errorCatalogue, code);
}

/** An error with a catalogued code. `details` must never hold secrets: it is shown to the client. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;

  constructor(code: ErrorCode, details?: unknown, message?: string) {
    super(message ?? errorCatalogue[code].message);
    this.name = 'AppError';
    this.code = code;
    this.status = errorCatalogue[code].status;
    this.details = details;
  }
}
