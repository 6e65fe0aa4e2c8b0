/**
 * The Registration Authority services (DOMAIN §5), one function per action. Each validates its input (zod), asks the
 * policy, applies the domain rules and writes its rows and audit event in one transaction; refusals are audited too.
 * The code lives in src/services/ra/ by procedure; this module is the one place callers import it from.
 */
/** The inputs of the RA actions, as their routes declare them (src/api/ra-bodies.ts): the schemas the actions parse. */
export {
  type Application,
  type ApplicationStatus,
  applicationImage,
  applicationListSchema,
  getApplication,
  listApplications,
  rejectApplication,
  rejectSchema,
  submissionSchema,
  submitApplication,
  verifyApplication,
  verifySchema,
} from './ra/applications.ts';
export { changeName, changeRoleDates, datesSchema, endPosition, nameSchema, reasonSchema } from './ra/changes.ts';
export {
  checkSchema,
  type IdentityCheck,
  identityChecksOf,
  personPhoto,
  registerSchema,
  registerWithIdentityCheck,
  verifyIdentity,
} from './ra/identity.ts';
export {
  cardsExpiringReport,
  leaversReport,
  lockedCardsReport,
  pageSchema as reportPageSchema,
  pendingRequestsReport,
  peopleWithoutRolesReport,
  rolesEndingReport,
  withinSchema as reportWithinSchema,
} from './ra/reports.ts';
export { getRequest, listRequests, requestListSchema } from './ra/request-views.ts';
export {
  type AccessRequest,
  approveRequest,
  approveSchema,
  DEFAULT_REQUEST_TTL_DAYS,
  decisionSchema,
  expireRequests,
  type RequestHistoryEntry,
  type RequestStatus,
  rejectRequest,
  requestAccess,
  requestSchema,
  withdrawRequest,
  withdrawSchema,
} from './ra/requests.ts';
export { type LeaverOutcome, leaverSchema, markLeaver, rejoin, restore, suspend } from './ra/status.ts';
