import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../domain/errors.ts';
import type { Sealer } from '../secrets/sealer.ts';
import type { Database } from '../storage/database.ts';
import { repositoriesOn, unitOfWork } from '../storage/repositories/index.ts';
import { requireActiveAuthority } from './ca.ts';
import { currentCrl } from './crl.ts';
import { OCSP_MAX_REQUEST_BYTES, ocspErrorResponse, ocspRespond } from './ocsp.ts';

/**
 * Public PKI endpoints relying parties use without signing in: the CA certificate, the CRL and the OCSP responder
 * (RFC 6960 Appendix A: POST with a DER body, or GET with the request base64- and URL-encoded in the path).
 */
export interface PkiRouteDeps {
  db: Database;
  clock: { now(): Date };
  sealer: Sealer;
  /** PUBLIC_URL: the base the issued certificates and CRLs point to. */
  publicUrl: string;
}

const OCSP_REQUEST_TYPE = 'application/ocsp-request';
const OCSP_PATH = '/pki/ocsp/';
/** Longest GET path accepted: a base64 OCSP request stays far below; Node refuses headers over 16 KB anyway. */
const MAX_GET_REQUEST_CHARS = 4_096;

/** Adds GET /pki/ca.crt, GET /pki/crl, POST /pki/ocsp and GET /pki/ocsp/<request>, in a scope of their own. */
export async function registerPkiRoutes(app: FastifyInstance, deps: PkiRouteDeps): Promise<void> {
  // The store context (services/context.ts storeContext), built here: pki does not import the services.
  const store = {
    repos: repositoriesOn(deps.db),
    transaction: unitOfWork(deps.db),
    clock: deps.clock,
    sealer: deps.sealer,
  };
  await app.register(async (scope) => {
    // Scoped: only these routes take OCSP bodies, and only up to 64 KiB.
    scope.addContentTypeParser(
      OCSP_REQUEST_TYPE,
      { parseAs: 'buffer', bodyLimit: OCSP_MAX_REQUEST_BYTES },
      (_req, body, done) => done(null, body),
    );

    scope.get(
      '/pki/ca.crt',
      { schema: { summary: 'The OpenCIS issuing CA certificate (DER)', tags: ['pki'] } },
      async (_req, reply) => {
        const authority = await requireActiveAuthority(store.repos);
        return reply
          .type('application/pkix-cert')
          .header('cache-control', 'public, max-age=3600')
          .header('content-disposition', 'attachment; filename="opencis-ca.crt"')
          .send(authority.certificateDer);
      },
    );

    scope.get(
      '/pki/crl',
      { schema: { summary: 'The certificate revocation list of the OpenCIS CA (DER)', tags: ['pki'] } },
      async (_req, reply) => {
        const crl = await currentCrl(store, deps.publicUrl);
        // A revocation must reach relying parties at once (DOMAIN §6): no HTTP caching; the CRL itself is cached here.
        return reply.type('application/pkix-crl').header('cache-control', 'no-cache').send(crl);
      },
    );

    scope.post(
      '/pki/ocsp',
      {
        bodyLimit: OCSP_MAX_REQUEST_BYTES,
        schema: { summary: 'OCSP responder (RFC 6960), DER request in the body', tags: ['pki'] },
        // Refuse other content types before reading a byte of the body.
        onRequest: async (req) => {
          const type = String(req.headers['content-type'] ?? '')
            .split(';')[0]!
            .trim()
            .toLowerCase();
          if (type !== OCSP_REQUEST_TYPE) throw new AppError('request.unsupported_media_type');
        },
      },
      async (req, reply) => answerOcsp(req, reply, Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0)),
    );

    scope.get(
      `${OCSP_PATH}*`,
      { schema: { summary: 'OCSP responder (RFC 6960 Appendix A.1), base64 request in the path', tags: ['pki'] } },
      async (req, reply) => answerOcsp(req, reply, requestFromPath(req.url)),
    );
  });

  async function answerOcsp(req: FastifyRequest, reply: FastifyReply, der: Buffer): Promise<FastifyReply> {
    let body: Buffer;
    try {
      body = await ocspRespond(store, der, deps.clock.now());
    } catch (err) {
      // RFC 6960 §2.3: the responder reports its own failures as internalError, still as an OCSP response.
      req.log.error({ err }, 'OCSP responder failed');
      body = ocspErrorResponse('internalError');
    }
    return reply.type('application/ocsp-response').send(body);
  }
}

/** The DER request from the raw path (not the router's parameter, so '/' inside unencoded base64 survives). */
function requestFromPath(url: string): Buffer {
  const path = url.split('?')[0]!;
  const encoded = path.startsWith(OCSP_PATH) ? path.slice(OCSP_PATH.length) : '';
  if (encoded.length === 0 || encoded.length > MAX_GET_REQUEST_CHARS) return Buffer.alloc(0);
  let text: string;
  try {
    text = decodeURIComponent(encoded);
  } catch {
    return Buffer.alloc(0);
  }
  // Standard or URL-safe alphabet; anything else means the request is malformed.
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) return Buffer.alloc(0);
  return Buffer.from(text, 'base64');
}
