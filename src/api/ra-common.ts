import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../domain/errors.ts';
import { isNationalId } from '../domain/identity/user-id.ts';
import { raActorOf } from '../http/api-auth.ts';
import { contextFor, type WebDeps } from '../http/deps.ts';
import type { ServiceContext } from '../services/context.ts';

/**
 * What the Registration Authority API's plugins share (DOMAIN §5): callers are RA staff signed in at AAL3 or an
 * organisation's API client; what each may do, to whom, is decided by the policy module from their powers.
 * Cookie-authenticated changes carry the CSRF token in a `csrf-token` header. No personal data travels in a URL: people
 * are addressed by user ID, and searches by name, NI number or email are POSTed. The one public route is Apply for
 * Care ID.
 */
export interface RaApi {
  tags: string[];
  /** A change with a photo: at most 5 MB, about 6.7 MB as base64, plus the rest of the form. */
  withPhoto: { bodyLimit: number };
  raContext(req: FastifyRequest): Promise<ServiceContext>;
  param(req: FastifyRequest, name: string): string;
  userIdParam(req: FastifyRequest): string;
  sendImage(reply: FastifyReply, image: { mediaType: string; bytes: Buffer }): FastifyReply;
}

export function raApi(app: FastifyInstance, deps: WebDeps): RaApi {
  const param = (req: FastifyRequest, name: string): string =>
    String((req.params as Record<string, string | undefined>)[name] ?? '');
  return {
    tags: ['registration authority'],
    withPhoto: { bodyLimit: 8 * 1024 * 1024 },
    // CSRF and the caller were checked before validation (authenticateRaCalls); the actor is the one found then.
    raContext: async (req) => contextFor(deps, req, await raActorOf(app, deps, req)),
    param,
    userIdParam(req) {
      const userId = param(req, 'userId');
      if (!isNationalId(userId)) throw new AppError('person.invalid_user_id');
      return userId;
    },
    sendImage(reply, image) {
      // Served as an image only, never rendered as a document, whatever a browser might sniff.
      return reply
        .type(image.mediaType)
        .header('content-security-policy', "default-src 'none'; sandbox")
        .header('content-disposition', 'inline; filename="photo"')
        .send(image.bytes);
    },
  };
}
