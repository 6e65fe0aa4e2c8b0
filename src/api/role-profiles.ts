import type { FastifyInstance } from 'fastify';
import type { WebDeps } from '../http/deps.ts';
import { security } from '../http/openapi.ts';
import { changeRoleDates, endPosition } from '../services/ra.ts';
import { datesBody, reasonBody } from './ra-bodies.ts';
import { raApi } from './ra-common.ts';

/** Role profiles (DOMAIN §5.4): end one, change its dates. */
export function registerRoleProfileApi(app: FastifyInstance, deps: WebDeps): void {
  const { tags, raContext, param } = raApi(app, deps);
  app.post(
    '/api/v1/role-profiles/:personRoleId/end',
    {
      schema: { tags, security: security.raWrite, summary: 'End a role profile today', body: reasonBody },
    },
    async (req) => endPosition(await raContext(req), param(req, 'personRoleId'), req.body ?? {}),
  );

  app.post(
    '/api/v1/role-profiles/:personRoleId/dates',
    {
      schema: {
        tags,
        security: security.raWrite,
        summary: "Change a role profile's dates (temporary staff: bank, agency, locum, students)",
        body: datesBody,
      },
    },
    async (req) => changeRoleDates(await raContext(req), param(req, 'personRoleId'), req.body ?? {}),
  );
}
