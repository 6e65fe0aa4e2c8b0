/**
 * The policy's vocabulary: every `resource:action` statement a door may ask for (src/domain/policy.ts decides them).
 */
export const statements = [
  // people and identity
  'person:read',
  'person:create',
  'person:update', // contact details (email, mobile): where one-time and unlock codes go
  'person:verify_identity', // record an identity check (documents, photo) and set the assurance level
  'person:change_name', // with evidence
  'person:change_status', // suspend, restore, re-join: national in effect
  'person:leaver', // ends role profiles (all, or those in the actor's organisations), cancels cards on a national one
  'person:decide_nationally', // an RA Manager's decision that reaches a person's other organisations too
  'application:review', // Apply for Care ID: verify or reject a remote application
  // organisations and the catalogue
  'organisation:read',
  'organisation:create',
  'organisation:update',
  'catalogue:load',
  // positions and access
  'position:create',
  'position:update', // incl. marking a position assignable
  'request:create', // ask for a position for a person (sponsor, RA)
  'request:approve', // approve or reject an access request
  'role_profile:assign', // directly (assignable positions for sponsors; any position for RA agents)
  'role_profile:end',
  'role_profile:change_dates',
  // RA administration
  'ra:appoint_staff', // give RA Agent, Sponsor, ID Checker, LSA positions
  'ra:appoint_manager', // give RA Manager positions
  'ra:set_policy',
  'report:view',
  'audit:read',
  // authenticators
  'card:issue',
  'card:unlock',
  'card:renew',
  'card:cancel',
  'authenticator:enrol', // send an enrolment link, remove an authenticator (RA side)
  // relying parties (OpenID Connect clients and RA API clients), owned by an organisation
  'client:register',
  'client:manage', // disable, enable, edit, re-key
  // upstream OpenID Connect identity providers (NHSmail…): the operator's alone, no RA role grants it
  'idp:register',
] as const;
export type Statement = (typeof statements)[number];
