import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { freePort } from './server.ts';

/**
 * GOV.UK Notify's API as its documentation describes it (docs.notifications.service.gov.uk, "REST API"), on a loopback
 * port, so the real client library (notifications-node-client) is exercised against the request shape Notify checks:
 *
 * - `Authorization: Bearer <JWT>`: a JWT with header `{"typ":"JWT","alg":"HS256"}` and claims `iss` (the service ID)
 *   and `iat` (now, in epoch seconds; Notify refuses one more than 30 seconds off), signed HS256 with the API key's
 *   secret; otherwise 403 `AuthError`.
 * - `POST /v2/notifications/email` with a JSON body `{email_address, template_id, personalisation?, reference?,
 *   email_reply_to_id?}` and `POST /v2/notifications/sms` with `{phone_number, template_id, personalisation?,
 *   reference?, sms_sender_id?}`: no other properties, a known template, every placeholder of the template given in
 *   `personalisation`; otherwise 400 `ValidationError` / `BadRequestError`.
 * - 201 with `{id, reference, content, uri, template: {id, version, uri}}`.
 * - Errors as `{status_code, errors: [{error, message}]}`.
 */
export interface NotifyTemplate {
  id: string;
  type: 'email' | 'sms';
  subject?: string;
  body: string;
}

export interface AcceptedNotification {
  type: 'email' | 'sms';
  id: string;
  to: string;
  templateId: string;
  personalisation: Record<string, string>;
  reference: string | null;
  /** The message as Notify would send it: the template with the personalisation filled in. */
  subject: string | null;
  body: string;
}

export interface TestNotifyApi {
  baseUrl: string;
  apiKey: string;
  serviceId: string;
  accepted: AcceptedNotification[];
  /** Every request's answer, in order: the status and Notify's error type (none for 201). */
  answers: { status: number; error?: string; message?: string }[];
  /** The next N requests get this answer (e.g. 500 Exception, 429 RateLimitError) before any checking. */
  failNext(n: number, status: 500 | 503 | 429): void;
  close(): Promise<void>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function b64urlJson(part: string): unknown {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

function placeholders(text: string): string[] {
  return [...text.matchAll(/\(\(([^()]+)\)\)/g)].map((m) => m[1]!);
}

function fill(text: string, values: Record<string, string>): string {
  return text.replace(/\(\(([^()]+)\)\)/g, (_m, k: string) => values[k] ?? '');
}

export async function startNotifyApi(templates: NotifyTemplate[]): Promise<TestNotifyApi> {
  const port = await freePort();
  const serviceId = randomUUID();
  const secret = randomUUID();
  const apiKey = `opencis_test-${serviceId}-${secret}`;
  const baseUrl = `http://127.0.0.1:${port}`;
  const accepted: AcceptedNotification[] = [];
  const answers: TestNotifyApi['answers'] = [];
  let failing: { n: number; status: number } = { n: 0, status: 500 };

  const answer = (res: ServerResponse, status: number, body: unknown, error?: { error: string; message: string }) => {
    answers.push({ status, ...(error ?? {}) });
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(error ? { status_code: status, errors: [error] } : body));
  };

  /** The JWT check Notify documents; null when the token is good, else the AuthError message. */
  function tokenProblem(req: IncomingMessage): string | null {
    const h = req.headers.authorization;
    if (typeof h !== 'string' || !h.startsWith('Bearer ')) {
      return 'Unauthorized: authentication token must be provided';
    }
    const parts = h.slice(7).split('.');
    if (parts.length !== 3) return 'Invalid token: signature, api token is not valid';
    let header: { typ?: string; alg?: string };
    let claims: { iss?: string; iat?: number };
    try {
      header = b64urlJson(parts[0]!) as typeof header;
      claims = b64urlJson(parts[1]!) as typeof claims;
    } catch {
      return 'Invalid token: signature, api token is not valid';
    }
    if (header.alg !== 'HS256' || header.typ !== 'JWT') return 'Invalid token: algorithm used is not HS256';
    if (typeof claims.iss !== 'string') return 'Invalid token: iss field not provided';
    if (claims.iss !== serviceId) return 'Invalid token: service not found';
    if (typeof claims.iat !== 'number') return 'Invalid token: iat field not provided';
    if (Math.abs(Date.now() / 1000 - claims.iat) > 30) {
      return 'Error: Your system clock must be accurate to within 30 seconds';
    }
    const expected = createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
    const given = Buffer.from(parts[2]!, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return 'Invalid token: signature, api token not found';
    }
    return null;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (failing.n > 0) {
      failing.n--;
      const error =
        failing.status === 429
          ? {
              error: 'RateLimitError',
              message: 'Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds',
            }
          : { error: 'Exception', message: 'Internal server error' };
      answer(res, failing.status, null, error);
      return;
    }
    const type = req.url === '/v2/notifications/email' ? 'email' : req.url === '/v2/notifications/sms' ? 'sms' : null;
    if (req.method !== 'POST' || !type) {
      answer(res, 404, null, { error: 'ResourceNotFound', message: 'Not found' });
      return;
    }
    const problem = tokenProblem(req);
    if (problem) {
      answer(res, 403, null, { error: 'AuthError', message: problem });
      return;
    }
    if (!String(req.headers['content-type'] ?? '').startsWith('application/json')) {
      answer(res, 400, null, { error: 'BadRequestError', message: 'Content-Type header must be application/json' });
      return;
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      answer(res, 400, null, { error: 'BadRequestError', message: 'Invalid JSON supplied in POST data' });
      return;
    }
    const toField = type === 'email' ? 'email_address' : 'phone_number';
    const allowed = new Set([
      toField,
      'template_id',
      'personalisation',
      'reference',
      type === 'email' ? 'email_reply_to_id' : 'sms_sender_id',
    ]);
    const extra = Object.keys(body).filter((k) => !allowed.has(k));
    if (extra.length > 0) {
      answer(res, 400, null, {
        error: 'ValidationError',
        message: `Additional properties are not allowed (${extra.join(', ')} was unexpected)`,
      });
      return;
    }
    const to = body[toField];
    const valid =
      typeof to === 'string' &&
      (type === 'email'
        ? /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(to)
        : /^(\+44|0)7[0-9]{9}$/.test(to.replace(/[\s()-]/g, '')));
    if (!valid) {
      answer(res, 400, null, {
        error: 'ValidationError',
        message: `${toField} ${type === 'email' ? 'Not a valid email address' : 'Not a UK mobile number'}`,
      });
      return;
    }
    const templateId = body.template_id;
    if (typeof templateId !== 'string' || !UUID.test(templateId)) {
      answer(res, 400, null, { error: 'ValidationError', message: 'template_id is not a valid UUID' });
      return;
    }
    const template = templates.find((t) => t.id === templateId && t.type === type);
    if (!template) {
      answer(res, 400, null, { error: 'BadRequestError', message: 'Template not found' });
      return;
    }
    const personalisation = (body.personalisation ?? {}) as Record<string, string>;
    if (typeof personalisation !== 'object' || Array.isArray(personalisation)) {
      answer(res, 400, null, { error: 'ValidationError', message: 'personalisation is not of type object' });
      return;
    }
    const missing = placeholders(`${template.subject ?? ''} ${template.body}`).filter((k) => !(k in personalisation));
    if (missing.length > 0) {
      answer(res, 400, null, { error: 'BadRequestError', message: `Missing personalisation: ${missing.join(', ')}` });
      return;
    }
    if (body.reference !== undefined && typeof body.reference !== 'string') {
      answer(res, 400, null, { error: 'ValidationError', message: 'reference is not of type string' });
      return;
    }
    const id = randomUUID();
    const subject = template.subject ? fill(template.subject, personalisation) : null;
    const text = fill(template.body, personalisation);
    accepted.push({
      type,
      id,
      to,
      templateId,
      personalisation,
      reference: (body.reference as string | undefined) ?? null,
      subject,
      body: text,
    });
    answer(res, 201, {
      id,
      reference: body.reference ?? null,
      content:
        type === 'email'
          ? { subject, body: text, from_email: 'opencis@notifications.service.gov.uk' }
          : { body: text, from_number: 'OpenCIS' },
      uri: `${baseUrl}/v2/notifications/${id}`,
      template: { id: templateId, version: 1, uri: `${baseUrl}/services/${serviceId}/templates/${templateId}` },
    });
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  return {
    baseUrl,
    apiKey,
    serviceId,
    accepted,
    answers,
    failNext(n, status) {
      failing = { n, status };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
