import { parse as parseForm } from 'node:querystring';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../domain/errors.ts';
import { hasInvalidPercentEncoding, isStorableText } from '../domain/text.ts';

/**
 * One door for hostile text, in front of every route (REST API, console forms, portal, sign-in, CIS1, PKI, card-agent
 * API, and the query of the OpenID Connect endpoints): a NUL or a lone surrogate anywhere in the path parameters, the
 * query or the parsed body — keys included — and percent-encoded bytes that are not UTF-8 in the query, are refused
 * with 400 `request.invalid_text` before any handler runs. Without it each value reached SQL and PostgreSQL's
 * "invalid byte sequence" (22021) became a 500, or was silently stored as U+FFFD. JSON nested deeper than
 * MAX_DEPTH is refused too (`request.too_deep`): no form of OpenCIS nests that deep, and code that walks a value
 * recursively (JSON.stringify into jsonb, the audit trail) must never meet a stack-exhausting one.
 *
 * The OpenID Connect endpoints read their own bodies (oidc-provider parses them): there the storage adapter refuses
 * such text instead (src/oidc/adapter.ts, src/oidc/invalid-text.ts).
 */
export const MAX_DEPTH = 32;

type Where = 'params' | 'query' | 'body';

/** The first problem in a parsed value, found iteratively (a value nested thousands deep must not exhaust the stack). */
export function textProblem(
  value: unknown,
): { code: 'request.invalid_text' | 'request.too_deep'; field: string } | null {
  const stack: { value: unknown; path: string; depth: number }[] = [{ value, path: '', depth: 0 }];
  while (stack.length > 0) {
    const { value: v, path, depth } = stack.pop()!;
    if (typeof v === 'string') {
      if (!isStorableText(v)) return { code: 'request.invalid_text', field: path || '(value)' };
      continue;
    }
    if (typeof v !== 'object' || v === null || Buffer.isBuffer(v)) continue;
    if (depth >= MAX_DEPTH) return { code: 'request.too_deep', field: path || '(value)' };
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v);
    for (const [key, child] of entries) {
      const at = path ? `${path}.${key}` : key;
      if (!isStorableText(key)) return { code: 'request.invalid_text', field: path || '(key)' };
      stack.push({ value: child, path: at, depth: depth + 1 });
    }
  }
  return null;
}

function rawQuery(req: FastifyRequest): string {
  const at = req.url.indexOf('?');
  return at < 0 ? '' : req.url.slice(at + 1);
}

function check(where: Where, value: unknown): void {
  const problem = textProblem(value);
  if (!problem) return;
  // The field is named so the caller can find it; the value itself is never echoed.
  throw new AppError(problem.code, { where, field: problem.field.slice(0, 100) });
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Form bodies (@fastify/formbody's `parser`): percent-encoded bytes that are not UTF-8 are refused rather than kept as
 * literal text; at most 1,000 fields are read.
 */
export function parseFormStrictly(text: string): Record<string, unknown> {
  if (hasInvalidPercentEncoding(text)) throw new AppError('request.invalid_text', { where: 'body' });
  return parseForm(text, undefined, undefined, { maxKeys: 1_000 });
}

/**
 * Installs the guard on `app`, before any route or plugin is registered (content-type parsers are copied into the
 * scopes made after). JSON bodies must be UTF-8: other bytes are refused instead of becoming U+FFFD.
 */
export function installInputGuard(app: FastifyInstance): void {
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, raw, done) => {
    let text: string;
    try {
      text = STRICT_UTF8.decode(raw as Buffer);
    } catch {
      done(new AppError('request.invalid_text', { where: 'body' }), undefined);
      return;
    }
    json(req, text, done);
  });
  app.addHook('preValidation', async (req) => {
    if (hasInvalidPercentEncoding(rawQuery(req))) throw new AppError('request.invalid_text', { where: 'query' });
    check('params', req.params);
    check('query', req.query);
    check('body', req.body);
  });
}
