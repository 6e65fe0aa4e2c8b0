/**
 * The card agent's local HTTP API, answered to OpenCIS pages in the browser on this desktop.
 *
 * Anything on the machine (and any web page the user opens) can reach a loopback port, so every request must prove
 * it comes from an OpenCIS page: loopback socket only, Host exactly 127.0.0.1:<port> or localhost:<port> (defeats
 * DNS rebinding), a program of the user the agent runs as (peer.ts: on a shared computer, nobody else's), and an
 * Origin that is one of the configured OpenCIS origins (a page elsewhere cannot drive the card).
 * JSON bodies only, so a cross-site form can never be a "simple" request. The passcode stays on this machine: it goes
 * to the card, never to the server, and is never logged; nor are grants, PINs or signatures.
 *
 * CIS1 (src/card-agent/cis1-agent.ts) adds three kinds of caller, each with its own rule: the agent's own page (`/cis1`, served
 * here; its API calls must carry the page's custom header and come from the agent's own origin or none), and
 * applications asking for the ticket (`/v1/cis1/ticket`: an Origin on the CIS1 allow-list, or — when allowed — a local
 * program that sends no Origin and is not a browser). Tickets and session secrets are never logged either.
 *
 * This module starts the server and admits every request (startCardAgent); its parts live in src/card-agent/server/:
 * options.ts (the options), errors.ts (AgentError, error answers), opencis-server.ts (talking to the OpenCIS server),
 * routes.ts (the card routes, what a route is), cis1-routes.ts (the CIS1 routes), http.ts (answers, JSON bodies).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorCatalogue } from '../domain/errors.ts';
import { Cis1Agent, Cis1AgentError } from './cis1-agent.ts';
import { CIS1_PAGE_HEADER, CIS1_PAGE_HEADER_VALUE } from './cis1-agent-page.ts';
import { peerUser } from './peer.ts';
import { cis1RoutesFor } from './server/cis1-routes.ts';
import { AgentError, type AgentErrorCode, errorAnswer } from './server/errors.ts';
import { isLoopbackAddress, readJsonBody, send } from './server/http.ts';
import { OpenCisServer } from './server/opencis-server.ts';
import { type CardAgentOptions, cardAgentOptionsSchema, type RunningCardAgent } from './server/options.ts';
import { type Access, routesFor } from './server/routes.ts';
import { CardError, openPkcs11Module } from './token.ts';

export { AgentError, type AgentErrorCode } from './server/errors.ts';
export { isLoopbackAddress } from './server/http.ts';
export {
  type CardAgentOptions,
  cardAgentOptionsSchema,
  DEFAULT_AGENT_PORT,
  type RunningCardAgent,
} from './server/options.ts';

/** Refusals of callers (not of requests): reported to the server's audit trail when a CIS1 session is open. */
const REFUSALS = new Set(['agent.forbidden', 'agent.other_user', 'agent.host_not_allowed', 'agent.origin_not_allowed']);

/** Starts the agent on 127.0.0.1 and nowhere else. */
export async function startCardAgent(input: CardAgentOptions): Promise<RunningCardAgent> {
  const parsed = cardAgentOptionsSchema.safeParse(input);
  if (!parsed.success) {
    throw new Error(
      `card agent options: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  const options = parsed.data;
  const log = input.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const allowedOrigins = new Set(options.allowedOrigins);
  const module = openPkcs11Module(options.modulePath);
  const server = new OpenCisServer(options.serverUrl, options.serverTimeoutMs, log);
  const workstationId = options.workstationId ?? randomBytes(24).toString('base64url');
  const cis1 = new Cis1Agent({
    module,
    tokenLabel: options.tokenLabel,
    workstationId,
    serverOrigin: server.origin,
    pollMs: options.cis1PollMs,
    heartbeatMs: options.cis1HeartbeatMs,
    post: (path, body, bearer) => server.postTo(path, body, undefined, bearer),
    reportCardEvent: (serial, event, certificate) => server.reportEvent(serial, event, certificate),
    log,
  });
  const cis1Origins = new Set(options.cis1AllowedOrigins);
  const routes = new Map([...routesFor(module, options.tokenLabel, server), ...cis1RoutesFor(cis1)]);
  let port = options.port;

  /** Only programs of the user this agent runs as (peer.ts); where the system cannot tell, the other rules alone. */
  const ownUid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  async function admitUser(req: IncomingMessage): Promise<void> {
    if (ownUid === undefined) return;
    const peer = await peerUser(req.socket.remotePort, port);
    if (peer === 'unknown') return;
    if (peer === 'not_found' || peer.uid !== ownUid) throw AgentError.of('agent.other_user');
  }

  /** Checks the caller against the route's rule; returns the origin to allow in CORS headers, if any. */
  function admit(req: IncomingMessage, access: Access): string | undefined {
    const origin = req.headers.origin;
    switch (access) {
      case 'opencis':
        if (origin === undefined || !allowedOrigins.has(origin)) throw AgentError.of('agent.origin_not_allowed');
        return origin;
      case 'cis1_page':
        return undefined;
      case 'cis1_page_api': {
        // CSRF: a custom header no other site can send without a preflight (refused), from the agent's own origin.
        const own =
          origin === undefined || origin === `http://127.0.0.1:${port}` || origin === `http://localhost:${port}`;
        if (req.headers[CIS1_PAGE_HEADER] !== CIS1_PAGE_HEADER_VALUE || !own) {
          throw AgentError.of('agent.origin_not_allowed');
        }
        return undefined;
      }
      case 'cis1_application':
        if (origin !== undefined) {
          if (!cis1Origins.has(origin)) throw AgentError.of('agent.origin_not_allowed');
          return origin;
        }
        // No Origin: a local program — unless a browser sent it (Sec-Fetch-* headers: an <img> or <script> tag).
        if (!options.cis1AllowLocalProcesses || req.headers['sec-fetch-site'] !== undefined) {
          throw AgentError.of('agent.origin_not_allowed');
        }
        return undefined;
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const path = (req.url ?? '').split('?')[0]!;
    let allowedOrigin: string | undefined;
    let status = 500;
    let code = '';
    try {
      if (!isLoopbackAddress(req.socket.remoteAddress)) throw AgentError.of('agent.forbidden');
      await admitUser(req);
      const host = (req.headers.host ?? '').toLowerCase();
      if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) throw AgentError.of('agent.host_not_allowed');
      const origin = req.headers.origin;
      const entry = routes.get(path);
      if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
        const preflightAllowed =
          origin !== undefined &&
          (allowedOrigins.has(origin) || (entry?.access === 'cis1_application' && cis1Origins.has(origin)));
        if (!preflightAllowed) throw AgentError.of('agent.origin_not_allowed');
        res.setHeader('access-control-allow-methods', 'GET, POST');
        res.setHeader('access-control-allow-headers', 'content-type');
        res.setHeader('access-control-allow-private-network', 'true');
        res.setHeader('access-control-max-age', '600');
        status = 204;
        send(res, status, undefined, origin);
        return;
      }
      allowedOrigin = admit(req, entry?.access ?? 'opencis');
      if (!entry) throw AgentError.of('agent.not_found');
      if (req.method !== entry.method) {
        res.setHeader('allow', entry.method);
        throw AgentError.of('agent.method_not_allowed');
      }
      const body = entry.method === 'POST' ? await readJsonBody(req) : undefined;
      const answer = await entry.route({ origin: origin ?? '', body });
      status = answer.status;
      send(res, status, answer.body, allowedOrigin, answer.text);
    } catch (err) {
      const answer = errorAnswer(err);
      status = answer.status;
      code = answer.body.error.code;
      if (err instanceof CardError && err.returnValue) code += ` (${err.returnValue})`;
      if (!(err instanceof AgentError) && !(err instanceof CardError) && !(err instanceof Cis1AgentError)) {
        log(`unexpected error on ${req.method} ${path}: ${err instanceof Error ? err.name : 'unknown'}`);
      }
      if (REFUSALS.has(code) && (path.startsWith('/v1/cis1/') || path.startsWith('/cis1'))) {
        cis1.reportRefusal({ path, code, origin: req.headers.origin, address: req.socket.remoteAddress });
      }
      // The body may be left unread (413, 415, early refusals): do not reuse this connection.
      if (!req.complete) res.setHeader('connection', 'close');
      send(res, status, answer.body, allowedOrigin);
    } finally {
      log(`${req.method} ${path} ${status}${code ? ` ${code}` : ''} ${Math.round(performance.now() - started)}ms`);
    }
  }

  const http = createServer(
    { requestTimeout: 15_000, headersTimeout: 10_000, keepAliveTimeout: 5_000, connectionsCheckingInterval: 2_000 },
    (req, res) => {
      void handle(req, res);
    },
  );
  http.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy();
    const code: AgentErrorCode =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? 'agent.request_timeout'
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? 'agent.header_too_large'
          : 'agent.invalid_request';
    const { status, message } = errorCatalogue[code];
    const body = JSON.stringify({ error: { code, message } });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port, options.host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  port = (http.address() as AddressInfo).port;

  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    workstationId,
    close() {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          http.close(() => resolve());
          http.closeIdleConnections();
        });
        // An open CIS1 session ends with the agent: its ticket must not outlive the process holding the card.
        await cis1.close();
        await server.settle();
      })();
      return closing;
    },
  };
}
