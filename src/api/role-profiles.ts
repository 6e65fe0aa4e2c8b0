import type { FastifyInstance } from 'fastify';
import type { WebDeps } from '../http/deps.ts';
import { security } from '../http/openapi.ts';
import { changeRoleDates, endPosition } from '../services/ra.ts';
import { requiredReasonBody } from './ra-bodies.ts';
import { raApi } from './ra-common.ts';

/** Role profiles (DOMAIN §5.4): end one, change its dates. */
export function registerRoleProfileApi(app: FastifyInstance, deps: WebDeps): void {
  const { tags, guarded, raContext, param } = raApi(app, deps);
  app.post(
    '/api/v1/role-profiles/:personRoleId/end',
    {
      ...guarded,
      schema: { tags, security: security.raWrite, summary: 'End a role profile today', body: requiredReasonBody },
    },
    async (req) => endPosition(await raContext(req), param(req, 'personRoleId'), req.body ?? {}),
  );

  app.post(
    '/api/v1/role-profiles/:personRoleId/dates',
    {
      ...guarded,
      schema: {
        tags,
        security: security.raWrite,
        summary: "Change a role profile's dates (temporary staff: bank, agency, locum, students)",
        body: {
          type: 'object',
          required: ['reason'],
          properties: {
            startDate: { type: 'string', format: 'date' },
            endDate: { type: ['string', 'null'], format: 'date' },
            reason: { type: 'string', maxLength: 1000 },
          },
        },
      },
    },
    async (req) => changeRoleDates(await raContext(req), param(req, 'personRoleId'), req.body ?? {}),
  );
}
