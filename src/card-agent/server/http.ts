/**
 * The agent's HTTP plumbing: whether a socket is loopback, sending an answer (JSON or text, never cached, CORS for an
 * allowed origin), and reading a JSON body of at most 16 KiB.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AgentError } from './errors.ts';
import type { RouteAnswer } from './routes.ts';

const MAX_BODY_BYTES = 16 * 1024;

/** Whether a socket's remote address is loopback: ::1, 127.0.0.0/8, or 127.x mapped into IPv6. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  if (address === '::1') return true;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** Writes an answer, unless one was written already or the client went away. */
export function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  allowedOrigin: string | undefined,
  text?: RouteAnswer['text'],
): void {
  if (res.headersSent || res.destroyed) return;
  res.statusCode = status;
  res.setHeader('cache-control', 'no-store');
  res.setHeader('x-content-type-options', 'nosniff');
  if (allowedOrigin) {
    res.setHeader('access-control-allow-origin', allowedOrigin);
    res.setHeader('vary', 'Origin');
  }
  if (body === undefined) {
    res.end();
    return;
  }
  if (text) {
    for (const [name, value] of Object.entries(text.headers)) res.setHeader(name, value);
    res.setHeader('content-type', text.type);
    res.end(String(body));
    return;
  }
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.end(JSON.stringify(body));
}

/** The request's JSON body: application/json only, at most MAX_BODY_BYTES. */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw AgentError.of('agent.unsupported_media_type');
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw AgentError.of('agent.body_too_large');
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      const buffer = chunk as Buffer;
      size += buffer.length;
      if (size > MAX_BODY_BYTES) throw AgentError.of('agent.body_too_large');
      chunks.push(buffer);
    }
  } catch (err) {
    // the client went away or the request timed out (Node has answered 408 through 'clientError')
    throw err instanceof AgentError ? err : AgentError.of('agent.request_incomplete');
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw AgentError.of('agent.malformed_json');
  }
}
