import type { FastifyInstance } from 'fastify';
import { contextFor, type WebDeps } from '../http/deps.ts';
import { security } from '../http/openapi.ts';
import { limitWrongSecrets } from '../http/secret-limits.ts';
import { proofBody } from '../http/validation.ts';
import { certifyCard, redeemCardGrant, reportCardEvent } from '../services/cards.ts';

/**
 * What card agents call. They authenticate with what they hold: a one-time grant the server issued for one card and
 * one action (redeem, certificate), or the card's own certificate (events). Unblock secrets leave the server only here,
 * and only to the agent holding that card's grant. The services parse what they are sent and count a wrong grant
 * against the caller's address, so the bodies are documented here and refused there (proofBody).
 */
export function registerCardAgentApi(app: FastifyInstance, deps: WebDeps): void {
  const tags = ['card agent'];
  // A grant is a secret: wrong (or spent) ones count against the caller's address.
  const grants = limitWrongSecrets(deps, 'card_grant', ['card.grant_invalid']);
  app.post(
    '/api/v1/card-agent/redeem',
    {
      ...grants,
      schema: {
        tags,
        security: security.none,
        summary: 'Redeem a one-time card grant (issue, set passcode, unlock)',
        body: proofBody({ grant: { type: 'string' }, tokenSerial: { type: 'string' } }, ['grant', 'tokenSerial']),
      },
    },
    async (req) => redeemCardGrant(contextFor(deps, req), deps.card, req.body),
  );
  app.post(
    '/api/v1/card-agent/certificate',
    {
      ...grants,
      schema: {
        tags,
        security: security.none,
        summary: 'Certify the public key generated on a card being issued',
        body: proofBody(
          {
            grant: { type: 'string' },
            tokenSerial: { type: 'string' },
            publicKey: { type: 'string', description: 'DER SubjectPublicKeyInfo, base64' },
            proof: { type: 'string', description: 'Signature by the new key over the grant, base64url' },
            algorithm: { type: 'string', enum: ['ES256', 'RS256'] },
          },
          ['grant', 'tokenSerial', 'publicKey', 'proof'],
        ),
      },
    },
    async (req) => {
      const { certificate } = await certifyCard(contextFor(deps, req), deps.card, req.body);
      return { certificate: certificate.toString('base64') };
    },
  );
  app.post(
    '/api/v1/card-agent/events',
    {
      schema: {
        tags,
        security: security.none,
        summary: 'Report a wrong passcode or a card that locked itself',
        body: proofBody(
          {
            tokenSerial: { type: 'string' },
            event: { type: 'string', enum: ['passcode_incorrect', 'locked'] },
            certificate: { type: ['string', 'null'] },
          },
          ['tokenSerial', 'event'],
        ),
      },
    },
    async (req, reply) => {
      await reportCardEvent(contextFor(deps, req), req.body);
      return reply.status(204).send();
    },
  );
}
