import type { FastifyInstance } from 'fastify';
import { raRolesOf } from '../../domain/policy.ts';
import type { WebDeps } from '../../http/deps.ts';
import { effectiveRoles } from '../../services/access.ts';
import { mayAnywhere, raPage, renderRa } from './guard.ts';
import { roleNames } from './labels.ts';

/** /ra: the signed-in RA's roles and organisations, and links to only what their powers allow. */
export function registerRaHome(app: FastifyInstance, deps: WebDeps): void {
  app.get('/ra', { schema: { hide: true } }, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const profiles = (await effectiveRoles(deps.repos, caller.session.userId, deps.clock.now()))
      .map((r) => ({
        odsCode: r.odsCode,
        orgName: r.orgName,
        positionName: r.positionName,
        // As raRolesOf counts them: a role another held in the same profile covers is not listed again.
        roles: raRolesOf({
          kind: 'person',
          id: caller.session.userId,
          userId: caller.session.userId,
          powers: [{ jobRoles: r.jobRoles.map((j) => j.code), activities: r.effectiveActivities, odsCodes: [] }],
        }).map((role) => roleNames[role]),
      }))
      .filter((p) => p.roles.length > 0);
    const may = (s: Parameters<typeof mayAnywhere>[1]) => mayAnywhere(caller.actor, s);
    return renderRa(reply, caller, 'ra/home.njk', {
      title: 'Registration Authority',
      roles: caller.roles.map((r) => roleNames[r]),
      profiles,
      links: {
        search: may('person:read'),
        register: may('person:create'),
        requests: may('request:create') || may('request:approve'),
        applications: may('application:review'),
        reports: may('report:view'),
        organisations: may('organisation:read'),
        audit: may('audit:read'),
        clients: may('client:register'),
      },
    });
  });
}
