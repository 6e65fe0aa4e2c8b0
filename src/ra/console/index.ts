/**
 * The Registration Authority console (DOMAIN §5): server-rendered NHS.UK pages for RA staff signed in at AAL3, and the
 * public Apply for Care ID form. Every page asks the policy module what the caller may do and shows only that; the
 * services decide again on every change. People are addressed by user ID; searches and list filters are GETs, so a
 * result can be bookmarked and shared (logs keep the path only, never the query string; no referrer leaves a page).
 */
import type { FastifyInstance } from 'fastify';
import type { WebDeps } from '../../http/deps.ts';
import { registerRaAccess } from './access.ts';
import { registerRaApplications } from './applications.ts';
import { registerRaAssets } from './assets.ts';
import { registerRaAudit } from './audit.ts';
import { registerRaCards } from './cards.ts';
import { registerRaChanges } from './changes.ts';
import { registerRaClients } from './clients.ts';
import { registerRaHome } from './home.ts';
import { registerRaIdentityCheck } from './identity-check.ts';
import { registerRaInvitations } from './invite.ts';
import { registerRaOrganisations } from './organisations.ts';
import { registerRaPeople } from './people.ts';
import { registerRaProfiles } from './profiles.ts';
import { registerRaRegistration } from './register.ts';
import { registerRaReports } from './reports.ts';
import { registerRaRequests } from './requests.ts';

export { raAssetFiles } from './assets.ts';

export function registerRaConsole(app: FastifyInstance, deps: WebDeps): void {
  registerRaAssets(app);
  registerRaHome(app, deps);
  registerRaPeople(app, deps);
  registerRaChanges(app, deps);
  registerRaProfiles(app, deps);
  registerRaAccess(app, deps);
  registerRaRegistration(app, deps);
  registerRaIdentityCheck(app, deps);
  registerRaCards(app, deps);
  registerRaInvitations(app, deps);
  registerRaApplications(app, deps);
  registerRaRequests(app, deps);
  registerRaOrganisations(app, deps);
  registerRaReports(app, deps);
  registerRaAudit(app, deps);
  registerRaClients(app, deps);
}
