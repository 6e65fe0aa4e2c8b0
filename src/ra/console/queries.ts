/**
 * Read-only look-ups the console needs and the services do not offer yet: an organisation's direct children, names
 * and positions (their statements are in the repositories); callers check the policy (organisation:read) first.
 */
export { childrenOf, organisationNames } from '../../storage/repositories/organisations.ts';
export { positionsOf } from '../../storage/repositories/positions.ts';
