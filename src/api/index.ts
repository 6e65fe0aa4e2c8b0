/**
 * The REST API as one Fastify plugin (issue 16 acceptance 4): each resource is an encapsulated plugin of its own —
 * its routes, schemas and hooks — registered here. What they share (how a caller authenticates, the error body, the
 * OpenAPI security schemes) is the app's: src/http/api-auth.ts, src/http/errors.ts, src/http/openapi.ts.
 */
import type { FastifyInstance } from 'fastify';
import { authenticateRaCalls } from '../http/api-auth.ts';
import type { WebDeps } from '../http/deps.ts';
import { registerApplicationApi } from './applications.ts';
import { registerAuditApi } from './audit.ts';
import { registerAuthenticatorApi } from './authenticators.ts';
import { registerCardAgentApi } from './card-agent.ts';
import { registerClientApi } from './clients.ts';
import { registerOperationsReports } from './operations.ts';
import { registerOrganisationApi } from './organisations.ts';
import { registerPeopleApi } from './people.ts';
import { registerReportApi } from './reports.ts';
import { registerAccessRequestApi } from './requests.ts';
import { registerRoleProfileApi } from './role-profiles.ts';
import { registerUpstreamLinkApi } from './upstream-links.ts';

const resources: readonly ((app: FastifyInstance, deps: WebDeps) => void)[] = [
  registerCardAgentApi,
  registerAuthenticatorApi,
  registerUpstreamLinkApi,
  registerClientApi,
  registerPeopleApi,
  registerApplicationApi,
  registerAccessRequestApi,
  registerRoleProfileApi,
  registerReportApi,
  registerOrganisationApi,
  registerOperationsReports,
  registerAuditApi,
];

export async function apiPlugin(app: FastifyInstance, deps: WebDeps): Promise<void> {
  // Before route validation: CSRF and who is calling (src/http/api-auth.ts).
  app.addHook('preValidation', authenticateRaCalls(app, deps));
  for (const register of resources) await app.register(async (resource) => register(resource, deps));
}
