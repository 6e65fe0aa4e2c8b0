import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ZodError } from 'zod';
import { AppError, type ErrorCode, errorCatalogue, isErrorCode } from '../domain/errors.ts';

/** The one JSON error shape: `{ "error": { "code", "message", "details" } }`. */
export function errorBody(code: ErrorCode, details?: unknown, message?: string) {
  return {
    error: { code, message: message ?? errorCatalogue[code].message, ...(details === undefined ? {} : { details }) },
  };
}

/** Maps Fastify's own errors (bad JSON, wrong content type, body too large …) onto catalogued codes. */
function codeForFrameworkError(err: FastifyError): ErrorCode | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'request.unsupported_media_type' : 'request.invalid';
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'request.too_large';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return 'request.malformed_json';
    case 'FST_ERR_VALIDATION':
    case 'FST_ERR_BAD_URL':
    case 'FST_ERR_ASYNC_CONSTRAINT':
      return 'request.invalid';
    case 'FST_ERR_RATE_LIMIT':
      return 'request.rate_limited';
    case 'FST_CSRF_INVALID_TOKEN':
    case 'FST_CSRF_MISSING_SECRET':
      return 'auth.csrf_invalid';
  }
  if (err instanceof ZodError) return 'request.invalid';
  if (err instanceof SyntaxError) return 'request.malformed_json';
  const status = err.statusCode;
  if (status === 413) return 'request.too_large';
  if (status === 415) return 'request.unsupported_media_type';
  if (status === 429) return 'request.rate_limited';
  if (status === 404) return 'request.not_found';
  if (status === 405) return 'request.method_not_allowed';
  if (status === 408) return 'request.timeout';
  if (status !== undefined && status >= 400 && status < 500) return 'request.invalid';
  return undefined;
}

function isDatabaseUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  // Connection refused/reset, or PostgreSQL shutting down / not accepting connections (class 57P and 08).
  return (
    code === 'ECONNREFUSED' ||
    code === 'ECONNRESET' ||
    code === 'ETIMEDOUT' ||
    (typeof code === 'string' && (/^57P0[1-3]$/.test(code) || code.startsWith('08')))
  );
}

/** A person's browser navigating (not a script calling an API) gets an HTML error page. */
function wantsPage(req: FastifyRequest, reply: FastifyReply): boolean {
  const accept = req.headers.accept ?? '';
  return accept.includes('text/html') && !req.url.startsWith('/api/') && typeof reply.page === 'function';
}

function send(req: FastifyRequest, reply: FastifyReply, code: ErrorCode, details?: unknown) {
  const status = errorCatalogue[code].status;
  if (wantsPage(req, reply)) {
    return reply.page(
      'error.njk',
      { title: 'There is a problem', message: errorCatalogue[code].message, code },
      status,
    );
  }
  return reply.status(status).send(errorBody(code, details));
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof AppError) {
      if (err.status >= 500) req.log.error({ err: { code: err.code } }, 'request failed');
      return send(req, reply, err.code, err.details);
    }
    const code = codeForFrameworkError(err);
    if (code) return send(req, reply, code);
    // SQLSTATE 25006: the database is read-only (maintenance, a replica): writes are refused cleanly, reads go on.
    if ((err as { code?: unknown }).code === '25006') {
      req.log.warn('write refused: database is read-only');
      reply.header('retry-after', '60');
      return send(req, reply, 'service.read_only');
    }
    if (isDatabaseUnavailable(err)) {
      req.log.error({ err: { code: (err as { code?: string }).code } }, 'database unavailable');
      return reply.status(503).header('retry-after', '5').send(errorBody('service.unavailable'));
    }
    // Unexpected: log the error (stack included) on the server, show the client nothing of it.
    req.log.error({ err }, 'unexpected error');
    return send(req, reply, 'internal.error');
  });

  app.setNotFoundHandler((req, reply) => send(req, reply, 'request.not_found'));
}

export { isErrorCode };
