import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../domain/errors.ts';
import { contextFor, type WebDeps } from '../http/deps.ts';
import { limitWrongSecrets } from '../http/secret-limits.ts';
import { appendAudit } from '../services/audit.ts';
import { startCardChallenge } from '../services/cards.ts';
import { idpMetadata } from './assertion.ts';
import { endCis1Session, recordAgentEvent, renewCis1Session, selectCis1Role, startCis1Session } from './sessions.ts';
import { activeSigningKey } from './signing-key.ts';
import { type TicketValidationInput, validateTicket } from './validation.ts';

/**
 * CIS1 over HTTP. Card agents: challenge → session (card sign-in) → role → heartbeat → end, the later calls
 * authenticated by the session secret (`Authorization: Bearer …`) from the workstation that signed in. Applications:
 * `POST /cis1/validate` with their client credentials (client_secret_basic or client_secret_post, as registered) and
 * the ticket, as JSON or a form — OpenCIS parses no XML from outside (an XML body is refused as an unsupported media
 * type). Answers: the signed SAML assertion, or a catalogued JSON error. Every refusal is audited; tickets, secrets
 * and keys never reach a log (bodies are not logged; the request log has method, path and status only).
 */
const BODY_LIMIT = 16 * 1024;
const tags = ['cis1'];

function body(req: FastifyRequest): Record<string, unknown> {
  return typeof req.body === 'object' && req.body !== null ? (req.body as Record<string, unknown>) : {};
}

function bearer(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  return typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
}

function agentCredentials(req: FastifyRequest): { sessionSecret: unknown; workstationId: unknown } {
  return { sessionSecret: bearer(req), workstationId: body(req).workstationId };
}

/** RFC 6749 §2.3.1: the id and secret are form-encoded, then joined by a colon and base64-encoded. */
function formDecode(value: string): string | undefined {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

function validationInput(req: FastifyRequest): TicketValidationInput {
  const b = body(req);
  const header = req.headers.authorization;
  const common = { ticket: b.ticket, workstationId: b.workstation_id };
  if (typeof header === 'string' && /^basic /i.test(header)) {
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    // A client uses one authentication method only (RFC 6749 §2.3): a secret in the body as well is refused.
    const both = b.client_secret !== undefined;
    return {
      ...common,
      method: 'client_secret_basic',
      clientId: colon > 0 ? formDecode(decoded.slice(0, colon)) : undefined,
      clientSecret: colon > 0 && !both ? formDecode(decoded.slice(colon + 1)) : undefined,
    };
  }
  return { ...common, method: 'client_secret_post', clientId: b.client_id, clientSecret: b.client_secret };
}

function issuerOf(deps: WebDeps): string {
  return `${deps.config.PUBLIC_URL.replace(/\/+$/, '')}/cis1`;
}

/**
 * Framework refusals on these routes (wrong content type such as XML, body over the limit, malformed JSON) never reach
 * the services, so they are audited here; the services audit their own refusals.
 */
function auditFrameworkRefusal(deps: WebDeps) {
  return async (req: FastifyRequest, reply: FastifyReply, error: FastifyError): Promise<void> => {
    if (error instanceof AppError) return;
    try {
      const ctx = contextFor(deps, req);
      await ctx.transaction((tx) =>
        appendAudit(tx, ctx, {
          action: 'cis1.request_refused',
          targetType: 'cis1_route',
          targetId: req.routeOptions.url ?? null,
          before: null,
          after: { status: error.statusCode ?? reply.statusCode, error: error.code ?? error.name, ip: req.ip },
          reason: 'the request could not be read',
        }),
      );
    } catch (err) {
      req.log.warn({ err: { message: (err as Error).message } }, 'cis1 refusal not audited');
    }
  };
}

export function registerCis1Routes(app: FastifyInstance, deps: WebDeps): void {
  const audited = auditFrameworkRefusal(deps);
  // Tickets, client secrets and agent session secrets are secrets: wrong ones count against the caller's address.
  const limits = {
    agent: limitWrongSecrets(deps, 'cis1_session', ['cis1.agent_session_invalid']),
    application: limitWrongSecrets(deps, 'cis1_validate', ['cis1.client_invalid', 'cis1.ticket_invalid']),
  };
  const options = (summary: string, limit?: ReturnType<typeof limitWrongSecrets>) => ({
    bodyLimit: BODY_LIMIT,
    onError: limit ? [audited, limit.onError] : audited,
    ...(limit ? { onRequest: limit.onRequest } : {}),
    schema: { tags, summary },
  });

  app.get(
    '/cis1/metadata.xml',
    { schema: { tags, summary: 'SAML IdP metadata with the signing certificate' } },
    async (req, reply) => {
      const key = await activeSigningKey(contextFor(deps, req));
      const issuer = issuerOf(deps);
      reply.header('cache-control', 'public, max-age=300');
      reply.type('application/samlmetadata+xml; charset=utf-8');
      return idpMetadata({ entityId: issuer, validateUrl: `${issuer}/validate`, key });
    },
  );

  app.post('/cis1/session/challenge', options('Card agent: a one-time challenge for the card to sign'), async (req) =>
    startCardChallenge(contextFor(deps, req), 'signin'),
  );

  app.post('/cis1/session', options('Card agent: sign in with the card; returns the session secret'), async (req) =>
    startCis1Session(contextFor(deps, req), deps.card, req.body, { ip: req.ip ?? null }),
  );

  app.post('/cis1/session/role', options('Card agent: select or switch the role profile', limits.agent), async (req) =>
    selectCis1Role(contextFor(deps, req), agentCredentials(req), { personRoleId: body(req).personRoleId }),
  );

  app.post(
    '/cis1/session/heartbeat',
    options('Card agent: the card is still in; renew the idle limit', limits.agent),
    async (req) => renewCis1Session(contextFor(deps, req), agentCredentials(req)),
  );

  app.post(
    '/cis1/session/end',
    options('Card agent: end the session (card removed, signed out)', limits.agent),
    async (req, reply) => {
      await endCis1Session(contextFor(deps, req), agentCredentials(req), body(req).reason);
      return reply.status(204).send();
    },
  );

  app.post(
    '/cis1/session/event',
    options('Card agent: report a caller it refused (audited)', limits.agent),
    async (req, reply) => {
      await recordAgentEvent(contextFor(deps, req), agentCredentials(req), body(req));
      return reply.status(204).send();
    },
  );

  app.post(
    '/cis1/validate',
    options('Application: validate a ticket; returns a signed SAML role assertion', limits.application),
    async (req, reply) => {
      const { assertion } = await validateTicket(contextFor(deps, req), issuerOf(deps), validationInput(req), {
        assertionReuseMs: deps.config.CIS1_ASSERTION_REUSE_SECONDS * 1000,
      });
      reply.type('application/samlassertion+xml; charset=utf-8');
      return assertion;
    },
  );
}
