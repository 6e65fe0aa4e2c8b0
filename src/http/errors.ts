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

const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Why a request failed because a store could not serve it — PostgreSQL or Redis down, restarting, unreachable, or the
 * database read-only — or null when the failure is something else (a bug: a 500). Such a failure is temporary: the
 * client is told 503 and when to try again, and the node recovers by itself when the store is back (the pg pool and
 * ioredis reconnect).
 */
export function storeFailure(err: unknown): 'read_only' | 'unavailable' | null {
  if (typeof err !== 'object' || err === null) return null;
  const { code, name, message } = err as { code?: unknown; name?: unknown; message?: unknown };
  // SQLSTATE 25006: the database is read-only (maintenance, a replica, a disk-full guard); 53100: the disk is full.
  // Either way writes are refused and reads go on.
  if (code === '25006' || code === '53100') return 'read_only';
  if (typeof code === 'string') {
    // Connection refused/reset/timed out, or PostgreSQL shutting down / not accepting connections (classes 57P, 08),
    // or out of connections (53300).
    if (UNREACHABLE.has(code) || /^57P0[1-3]$/.test(code) || code.startsWith('08') || code === '53300') {
      return 'unavailable';
    }
  }
  // Connecting to "localhost" tries ::1 and 127.0.0.1: both refusals come together.
  if (err instanceof AggregateError) return err.errors.map(storeFailure).find((w) => w !== null) ?? null;
  if (name === 'MaxRetriesPerRequestError') return 'unavailable'; // ioredis: Redis did not come back in time
  if (typeof message !== 'string') return null;
  if (
    // pg: a connection cut mid-query, or none to be had from the pool in time
    /^Connection terminated/.test(message) ||
    message === 'timeout exceeded when trying to connect' ||
    /is not queryable$/.test(message) ||
    // ioredis: the connection is down (offline queue off or flushed), or a command got no answer in time
    message === 'Connection is closed.' ||
    message.startsWith("Stream isn't writeable") ||
    message === 'Command timed out' ||
    // Redis itself: loading its data after a restart, out of memory, a read-only replica
    /^(LOADING|MASTERDOWN|TRYAGAIN|OOM|READONLY) /.test(message)
  ) {
    return 'unavailable';
  }
  return null;
}

/** How long a client should wait before trying again (Retry-After, seconds). */
export function retryAfterSeconds(failure: 'read_only' | 'unavailable'): number {
  return failure === 'read_only' ? 60 : 5;
}

/**
 * Routes that scripts, relying parties and card agents call (the REST API, CIS1, the PKI responders, health and
 * metrics): their errors are JSON whatever Accept says — a client sending `text/html` somewhere in Accept (as many
 * HTTP libraries and proxies do) must still get a body it can read, with its code. The OpenID Connect endpoints answer
 * in OAuth's own error shape (src/oidc/mount.ts).
 */
const JSON_AREAS = ['/api/', '/cis1/', '/pki/', '/health', '/metrics'];

function inJsonArea(path: string): boolean {
  return JSON_AREAS.some((area) => path.startsWith(area) || `${path}/` === area);
}

/** The q-value Accept gives `type` (most specific range wins, RFC 9110 §12.5.1); 0 when not acceptable. */
export function acceptQuality(accept: string, type: string): number {
  const [major] = type.split('/');
  let best = { specificity: -1, q: 0 };
  for (const part of accept.split(',').slice(0, 50)) {
    const [range = '', ...params] = part.split(';').map((p) => p.trim().toLowerCase());
    const specificity = range === type ? 2 : range === `${major}/*` ? 1 : range === '*/*' ? 0 : -1;
    if (specificity < best.specificity || specificity < 0) continue;
    const qParam = params.find((p) => p.startsWith('q='));
    const q = qParam ? Number(qParam.slice(2)) : 1;
    best = { specificity, q: Number.isFinite(q) && q >= 0 && q <= 1 ? q : 0 };
  }
  return best.q;
}

/**
 * A person's browser navigating to a page (not a script calling an API) gets an HTML error page: only outside the JSON
 * areas, for a request that is not itself JSON, and when Accept prefers HTML to JSON.
 */
function wantsPage(req: FastifyRequest, reply: FastifyReply): boolean {
  if (typeof reply.page !== 'function') return false;
  if (inJsonArea(req.url.split('?')[0]!)) return false;
  if (/^application\/([a-z.+-]+\+)?json\b/i.test(String(req.headers['content-type'] ?? ''))) return false;
  const accept = req.headers.accept ?? '';
  return acceptQuality(accept, 'text/html') > acceptQuality(accept, 'application/json');
}

/**
 * SQLSTATEs that mean the database could not take a value as sent — bad input, not a fault, so a 400 (and nothing was
 * written: the statement's transaction rolled back). The input guard (input-guard.ts) refuses such text first; this is
 * the net under it, for any value a route passed on unchecked.
 */
export function codeForDatabaseRefusal(err: unknown): ErrorCode | undefined {
  const code = (err as { code?: unknown }).code;
  switch (code) {
    case '22021': // character_not_in_repertoire: NUL, or bytes that are not UTF-8
    case '22P05': // untranslatable_character: \u0000 in jsonb
      return 'request.invalid_text';
    case '22P02': // invalid_text_representation: a malformed uuid, number or JSON text
    case '22001': // string_data_right_truncation
    case '22003': // numeric_value_out_of_range
    case '22007': // invalid_datetime_format
    case '22008': // datetime_field_overflow
    case '54000': // program_limit_exceeded: e.g. a value too long for an index
    case '54001': // statement_too_complex: a value nested too deeply
      return 'request.invalid';
  }
  return undefined;
}

function send(req: FastifyRequest, reply: FastifyReply, code: ErrorCode, details?: unknown, message?: string) {
  const status = errorCatalogue[code].status;
  if (wantsPage(req, reply)) {
    return reply.page(
      'error.njk',
      { title: 'There is a problem', message: errorCatalogue[code].message, code },
      status,
    );
  }
  return reply.status(status).send(errorBody(code, details, message));
}

export function installErrorHandling(
  app: FastifyInstance,
  options: { recordRefusal?: (req: FastifyRequest, err: AppError) => Promise<void> } = {},
): void {
  app.setErrorHandler(async (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof AppError) {
      if (err.status >= 500) req.log.error({ err: { code: err.code } }, 'request failed');
      // The one refusal path: a refusal not yet in the audit trail is recorded before it is answered.
      if (err.status === 403) await options.recordRefusal?.(req, err);
      return send(req, reply, err.code, err.details, err.message);
    }
    const code = codeForFrameworkError(err);
    if (code) return send(req, reply, code);
    const refused = codeForDatabaseRefusal(err);
    if (refused) {
      // Logged (with its SQLSTATE, never the value): a route that let such a value through should be fixed.
      req.log.warn(
        { err: { code: (err as { code?: string }).code }, route: req.routeOptions.url },
        'database refused input',
      );
      return send(req, reply, refused);
    }
    const failure = storeFailure(err);
    if (failure === 'read_only') {
      req.log.warn('write refused: database is read-only');
      reply.header('retry-after', String(retryAfterSeconds(failure)));
      return send(req, reply, 'service.read_only');
    }
    if (failure === 'unavailable') {
      req.log.error({ err: { code: (err as { code?: string }).code, message: err.message } }, 'store unavailable');
      reply.header('retry-after', String(retryAfterSeconds(failure)));
      return send(req, reply, 'service.unavailable');
    }
    // Unexpected: log the error (stack included) on the server, show the client nothing of it.
    req.log.error({ err }, 'unexpected error');
    return send(req, reply, 'internal.error');
  });

  app.setNotFoundHandler((req, reply) => send(req, reply, 'request.not_found'));
}

export { isErrorCode };
