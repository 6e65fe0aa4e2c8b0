/**
 * The Registration Authority services (DOMAIN §5), one function per action. Each validates its input (zod), asks the
 * policy, applies the domain rules and writes its rows and audit event in one transaction; refusals are audited too.
 * The code lives in src/services/ra/ by procedure; this module is the one place callers import it from.
 */
export {
  type Application,
  type ApplicationStatus,
  applicationImage,
  getApplication,
  listApplications,
  rejectApplication,
  submitApplication,
  verifyApplication,
} from './ra/applications.ts';
export { changeName, changeRoleDates, endPosition } from './ra/changes.ts';
export {
  type IdentityCheck,
  identityChecksOf,
  personPhoto,
  registerWithIdentityCheck,
  verifyIdentity,
} from './ra/identity.ts';
export {
  cardsExpiringReport,
  leaversReport,
  lockedCardsReport,
  pendingRequestsReport,
  peopleWithoutRolesReport,
  rolesEndingReport,
} from './ra/reports.ts';
export { getRequest, listRequests } from './ra/request-views.ts';
export {
  type AccessRequest,
  approveRequest,
  DEFAULT_REQUEST_TTL_DAYS,
  expireRequests,
  type RequestHistoryEntry,
  type RequestStatus,
  rejectRequest,
  requestAccess,
  withdrawRequest,
} from './ra/requests.ts';
export { type LeaverOutcome, markLeaver, rejoin, restore, suspend } from './ra/status.ts';
