import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../domain/errors.ts';
import { type Actor, type ClientActor, clientRegistrarEntitled } from '../domain/policy.ts';
import { API_SCOPE, clientMetadataForProvider } from '../services/clients.ts';
import { subtreeOf } from '../services/organisations.ts';
import { personActorWithPowers } from '../services/ra-powers.ts';
import { registrarOfActor } from '../storage/repositories/access-facts.ts';
import { requireApiSession, type WebDeps } from './deps.ts';

/**
 * Who is calling the RA API: RA staff in the browser (an AAL3 session cookie, CSRF token in a header), or an
 * organisation's script with an OAuth access token from the client-credentials grant (`Authorization: Bearer …`,
 * registered by that organisation's RA Manager) — never a shared static password. The policy module then decides
 * what either may do.
 */
function bearerToken(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string' || !h.startsWith('Bearer ')) return null;
  const token = h.slice(7).trim();
  return /^[A-Za-z0-9._~+/=-]{10,4096}$/.test(token) ? token : null;
}

export async function apiActor(app: FastifyInstance, deps: WebDeps, req: FastifyRequest): Promise<Actor> {
  if (req.headers.authorization !== undefined) {
    const token = bearerToken(req);
    if (!token || !app.hasDecorator('oidc')) throw new AppError('auth.required');
    const found = (await app.oidc.provider().ClientCredentials.find(token)) as
      | { clientId: string; scope?: string; isExpired?: boolean }
      | undefined;
    if (
      !found ||
      found.isExpired ||
      !String(found.scope ?? '')
        .split(' ')
        .includes(API_SCOPE)
    ) {
      throw new AppError('auth.required');
    }
    const client = await clientMetadataForProvider(deps.db, deps.sealer, found.clientId);
    const ods = client?.['urn:opencis:api_ods'];
    const activities = client?.['urn:opencis:api_activities'];
    if (typeof ods !== 'string' || !Array.isArray(activities)) throw new AppError('auth.required');
    const id = `client:${found.clientId}`;
    // Never more than its registrar holds now: the policy checks every action against the registrar's powers too.
    const registrarId = await registrarOfActor(deps.db, id);
    const actor: ClientActor = {
      kind: 'client',
      id,
      odsCode: ods,
      powers: [{ activities: activities.map(String), odsCode: ods, odsCodes: await subtreeOf(deps.db, ods) }],
      registrar: registrarId ? await personActorWithPowers(deps.db, registrarId, deps.clock.now()) : null,
    };
    if (!clientRegistrarEntitled(actor)) {
      throw new AppError('auth.forbidden', {
        reason: 'the person who registered this API client no longer holds the power to register it',
      });
    }
    return actor;
  }
  const session = await requireApiSession(deps, req, 3);
  return personActorWithPowers(deps.db, session.userId, deps.clock.now());
}

/** CSRF protects cookie-authenticated calls; a bearer-token call carries no ambient credentials, so needs none. */
export function csrfUnlessBearer(app: FastifyInstance) {
  return (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
    if (bearerToken(req) !== null && req.headers.cookie === undefined) {
      done();
      return;
    }
    app.csrfProtection(req, reply, done);
  };
}
