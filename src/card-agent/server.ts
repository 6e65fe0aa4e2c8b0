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
 */

import { randomBytes, X509Certificate } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { CARD_CHALLENGE_PATTERN, cardLoginMessage } from '../domain/credentials/card-login.ts';
import { describePasscodeProblem, passcodeProblem } from '../domain/credentials/passcode.ts';
import { type CardAgentErrorCode, errorCatalogue } from '../domain/errors.ts';
import { Cis1Agent, Cis1AgentError } from './cis1-agent.ts';
import {
  CIS1_PAGE_HEADER,
  CIS1_PAGE_HEADER_VALUE,
  CIS1_PAGE_HTML,
  CIS1_PAGE_SCRIPT,
  CIS1_PAGE_SECURITY_HEADERS,
} from './cis1-agent-page.ts';
import { peerUser } from './peer.ts';
import {
  assertSameCard,
  CardError,
  type CardEvent,
  type CardSession,
  lockState,
  openPkcs11Module,
  type Pkcs11Module,
  personaliseCard,
  replaceCertificate,
  setPasscode,
  signWithPasscode,
  storeCertificate,
  toCardError,
} from './token.ts';

export const DEFAULT_AGENT_PORT = 7327;
/** Refusals of callers (not of requests): reported to the server's audit trail when a CIS1 session is open. */
const REFUSALS = new Set(['agent.forbidden', 'agent.other_user', 'agent.host_not_allowed', 'agent.origin_not_allowed']);
const MAX_BODY_BYTES = 16 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// Options

/** An origin exactly as a browser sends it: scheme, host and optional port, nothing else. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value;
  } catch {
    return false;
  }
}

export const cardAgentOptionsSchema = z.object({
  modulePath: z.string().min(1, 'the PKCS#11 module path is empty'),
  tokenLabel: z.string().min(1).max(32, 'a token label is at most 32 characters').optional(),
  host: z
    .string()
    .default('127.0.0.1')
    .refine((h) => h === '127.0.0.1', 'the card agent listens only on 127.0.0.1 (loopback), never on a network'),
  port: z.coerce
    .number({ error: 'must be a port number (0 to 65535)' })
    .int('must be a port number (0 to 65535)')
    .min(0, 'must be a port number (0 to 65535)')
    .max(65535, 'must be a port number (0 to 65535)')
    .default(DEFAULT_AGENT_PORT),
  allowedOrigins: z
    .array(
      z
        .string()
        .refine(isOrigin, 'must be an origin such as http://localhost:3000 (scheme, host, port; no path or slash)'),
    )
    .min(1, 'at least one allowed origin (the OpenCIS web address) is needed'),
  serverUrl: z
    .string()
    .refine(
      (u) => /^https?:\/\//.test(u) && URL.canParse(u),
      'must be the OpenCIS server URL, e.g. http://localhost:3000',
    )
    .transform((u) => u.replace(/\/+$/, '')),
  serverTimeoutMs: z.number().int().positive().default(10_000),
  /** This agent installation's id: CIS1 sessions and tickets are bound to it (default: a new random id per start). */
  workstationId: z
    .string()
    .regex(/^[A-Za-z0-9_-]{16,64}$/, 'must be 16 to 64 letters, digits, "-" or "_"')
    .optional(),
  /** Origins of web applications allowed to ask for the CIS1 ticket (getTicket). */
  cis1AllowedOrigins: z
    .array(
      z
        .string()
        .refine(
          isOrigin,
          'must be an origin such as https://pas.example.nhs.uk (scheme, host, port; no path or slash)',
        ),
    )
    .default([]),
  /** Whether local programs (no Origin header, not a browser) may ask for the CIS1 ticket: native CIS1 applications. */
  cis1AllowLocalProcesses: z.boolean().default(true),
  /** How often the reader is checked while a CIS1 session is open: removal must end it within a second. */
  cis1PollMs: z.number().int().min(50).max(1_000).default(500),
  /** How often the agent tells the server the card is still in (renews the 15-minute idle limit). */
  cis1HeartbeatMs: z
    .number()
    .int()
    .min(1_000)
    .max(5 * 60_000)
    .default(60_000),
});

export type CardAgentOptions = z.input<typeof cardAgentOptionsSchema> & {
  /** One line per request and per unexpected failure; never secrets. Default: stderr. */
  log?: (line: string) => void;
};

export interface RunningCardAgent {
  url: string;
  port: number;
  /** This agent's workstation id (CIS1 tickets are bound to it). */
  workstationId: string;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

/** The agent's own refusals (catalogued in src/domain/errors.ts with the server's codes). */
export type AgentErrorCode = Extract<CardAgentErrorCode, `agent.${string}`>;

/** An error answered to the page: the agent's own codes, or a code passed on from the OpenCIS server. */
export class AgentError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'AgentError';
  }

  static of(code: AgentErrorCode, message?: string): AgentError {
    const entry = errorCatalogue[code];
    return new AgentError(code, entry.status, message ?? entry.message);
  }
}

interface ErrorAnswer {
  status: number;
  body: { error: { code: string; message: string; retriesLeft?: number } };
}

function errorAnswer(err: unknown): ErrorAnswer {
  if (err instanceof AgentError || err instanceof Cis1AgentError) {
    return { status: err.status, body: { error: { code: err.code, message: err.message } } };
  }
  const card = toCardError(err);
  const error = { code: card.code, message: card.message };
  return {
    status: card.status,
    body: { error: card.retriesLeft === undefined ? error : { ...error, retriesLeft: card.retriesLeft } },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The OpenCIS server, as the agent sees it

const serverErrorSchema = z.object({ error: z.object({ code: z.string().min(1), message: z.string() }) });
const redeemSchema = z.object({
  action: z.enum(['issue', 'set_passcode', 'unlock']),
  userId: z.string(),
  unblockSecret: z.string().min(4),
  transportSoPin: z.string().min(4).optional(),
});
const certificateSchema = z.object({ certificate: z.base64() });

class OpenCisServer {
  readonly origin: string;
  private readonly pending = new Set<Promise<unknown>>();

  constructor(
    private readonly baseUrl: string,
    private readonly timeoutMs: number,
    private readonly log: (line: string) => void,
  ) {
    this.origin = new URL(baseUrl).origin;
  }

  redeem(grant: string, tokenSerial: string): Promise<z.infer<typeof redeemSchema>> {
    return this.post('redeem', { grant, tokenSerial }, redeemSchema);
  }

  requestCertificate(body: {
    grant: string;
    tokenSerial: string;
    publicKey: string;
    proof: string;
    algorithm: 'ES256';
  }): Promise<z.infer<typeof certificateSchema>> {
    return this.post('certificate', body, certificateSchema);
  }

  /** Best effort: never delays or fails the answer to the page. */
  reportEvent(tokenSerial: string, event: CardEvent, certificate: Buffer | null): void {
    const body = { tokenSerial, event, certificate: certificate?.toString('base64') ?? null };
    const sent = this.post('events', body, undefined).catch((err: unknown) => {
      this.log(`card event ${event} not reported: ${err instanceof AgentError ? err.code : 'failed'}`);
    });
    this.pending.add(sent);
    void sent.finally(() => this.pending.delete(sent));
  }

  async settle(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }

  private post<T>(name: string, body: unknown, schema: z.ZodType<T> | undefined): Promise<T> {
    return this.postTo(`/api/v1/card-agent/${name}`, body, schema);
  }

  /** POSTs JSON to a path of the server; `bearer` authenticates a CIS1 session (its secret is never logged). */
  async postTo<T>(path: string, body: unknown, schema: z.ZodType<T> | undefined, bearer?: string): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      throw AgentError.of(timedOut ? 'agent.server_timeout' : 'agent.server_unreachable');
    }
    const text = await response.text().catch(() => '');
    if (!response.ok) {
      const parsed = serverErrorSchema.safeParse(parseJson(text));
      if (!parsed.success) throw AgentError.of('agent.server_error');
      // The server's own code and message reach the page (grant expired, card revoked …).
      const status = response.status >= 400 && response.status < 500 ? response.status : 502;
      throw new AgentError(parsed.data.error.code, status, parsed.data.error.message);
    }
    if (!schema) return (text ? parseJson(text) : undefined) as T;
    const parsed = schema.safeParse(parseJson(text));
    if (!parsed.success) throw AgentError.of('agent.server_error');
    return parsed.data;
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Routes

interface RouteContext {
  origin: string;
  body: unknown;
}

interface RouteAnswer {
  status: number;
  body: unknown;
  /** A text answer (the CIS1 page and its script) instead of JSON. */
  text?: { type: string; headers: Record<string, string> };
}

type Route = (ctx: RouteContext) => Promise<RouteAnswer>;

/**
 * Who may call a route. `opencis`: OpenCIS pages (Origin on the allow-list, CORS). `cis1_page`: the agent's own CIS1
 * page and script, fetched by navigating to them. `cis1_page_api`: that page's calls (custom header, own origin).
 * `cis1_application`: getTicket (CIS1 allow-list origins, or local programs when allowed).
 */
type Access = 'opencis' | 'cis1_page' | 'cis1_page_api' | 'cis1_application';

interface RouteEntry {
  method: 'GET' | 'POST';
  route: Route;
  access: Access;
}

const grantBody = z.object({ grant: z.string().min(1).max(4096) });
const signBody = z.object({ challenge: z.string(), passcode: z.string() });
const passcodeBody = z.object({ grant: z.string().min(1).max(4096), passcode: z.string() });
const certificateBody = z.object({
  certificate: z
    .string()
    .regex(/^[A-Za-z0-9+/]+={0,2}$/)
    .max(8_000),
  passcode: z.string(),
});

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw AgentError.of('agent.invalid_request');
  return parsed.data;
}

function routesFor(module: Pkcs11Module, tokenLabel: string | undefined, server: OpenCisServer) {
  const status: Route = async () => {
    const body = await module.run((cryptoki) => {
      let card: CardSession;
      try {
        card = cryptoki.openSession(cryptoki.findToken(tokenLabel));
      } catch (err) {
        if (err instanceof CardError && err.code === 'card.absent') return undefined;
        throw err;
      }
      const { locked, retriesLeft } = lockState(card);
      const credential = card.findCredential();
      return {
        card: 'present',
        tokenSerial: card.token.serial,
        label: card.token.label,
        locked,
        retriesLeft,
        certificate: credential?.certificate.toString('base64') ?? null,
      };
    });
    return {
      status: 200,
      body: body ?? {
        card: 'absent',
        tokenSerial: null,
        label: null,
        locked: false,
        retriesLeft: 0,
        certificate: null,
      },
    };
  };

  const sign: Route = async ({ origin, body }) => {
    const { challenge, passcode } = parseBody(signBody, body);
    if (!CARD_CHALLENGE_PATTERN.test(challenge)) throw AgentError.of('agent.invalid_challenge');
    // Malformed input never reaches the card, so it never costs the holder a try.
    if (!/^[0-9]{6,8}$/.test(passcode)) throw new CardError('card.passcode_format');
    const signed = await module.withCard(tokenLabel, (card) =>
      signWithPasscode(card, passcode, cardLoginMessage(origin, challenge), (event, certificate) =>
        server.reportEvent(card.token.serial, event, certificate),
      ),
    );
    return {
      status: 200,
      body: {
        certificate: signed.certificate.toString('base64'),
        signature: signed.signature.toString('base64url'),
        algorithm: signed.algorithm,
      },
    };
  };

  const issue: Route = async ({ body }) => {
    const { grant } = parseBody(grantBody, body);
    const serial = await module.withCard(tokenLabel, (card) => card.token.serial);
    const redeemed = await server.redeem(grant, serial);
    if (redeemed.action !== 'issue' || redeemed.transportSoPin === undefined) {
      throw AgentError.of('agent.grant_action_mismatch');
    }
    const secrets = { transportSoPin: redeemed.transportSoPin, unblockSecret: redeemed.unblockSecret };
    // Proof of possession: the new key signs the grant, bound to the server's origin like a sign-in.
    const personalised = await module.withCard(tokenLabel, (card) => {
      assertSameCard(card, serial);
      return personaliseCard(card, secrets, cardLoginMessage(server.origin, grant));
    });
    const answer = await server.requestCertificate({
      grant,
      tokenSerial: serial,
      publicKey: personalised.key.publicKey.toString('base64'),
      proof: personalised.proof.toString('base64url'),
      algorithm: 'ES256',
    });
    const certificate = Buffer.from(answer.certificate, 'base64');
    if (!isCertificateFor(certificate, personalised.key.publicKey)) {
      throw AgentError.of('agent.server_error', 'The certificate from the server is not for the key on this card.');
    }
    await module.withCard(tokenLabel, (card) => {
      assertSameCard(card, serial);
      storeCertificate(card, personalised, certificate);
    });
    return { status: 200, body: { tokenSerial: serial, certificate: answer.certificate } };
  };

  const passcode: Route = async ({ body }) => {
    const { grant, passcode: newPasscode } = parseBody(passcodeBody, body);
    // Checked before the grant is spent, so a weak choice does not cost the holder their one-time grant.
    const problem = passcodeProblem(newPasscode);
    if (problem) {
      const code = problem === 'too_simple' ? 'card.passcode_weak' : 'card.passcode_format';
      throw new CardError(code, { message: describePasscodeProblem(problem) });
    }
    const serial = await module.withCard(tokenLabel, (card) => card.token.serial);
    const redeemed = await server.redeem(grant, serial);
    if (redeemed.action !== 'set_passcode' && redeemed.action !== 'unlock') {
      throw AgentError.of('agent.grant_action_mismatch');
    }
    await module.withCard(tokenLabel, (card) => {
      assertSameCard(card, serial);
      setPasscode(card, redeemed.unblockSecret, newPasscode);
    });
    return { status: 200, body: { ok: true } };
  };

  const renew: Route = async ({ body }) => {
    const { certificate, passcode: current } = parseBody(certificateBody, body);
    if (!/^[0-9]{6,8}$/.test(current)) throw new CardError('card.passcode_format');
    await module.withCard(tokenLabel, (card) =>
      replaceCertificate(card, current, Buffer.from(certificate, 'base64'), (event, cert) =>
        server.reportEvent(card.token.serial, event, cert),
      ),
    );
    return { status: 200, body: { ok: true } };
  };

  return new Map<string, RouteEntry>([
    ['/v1/cards/certificate', { method: 'POST', route: renew, access: 'opencis' }],
    ['/v1/status', { method: 'GET', route: status, access: 'opencis' }],
    ['/v1/sign', { method: 'POST', route: sign, access: 'opencis' }],
    ['/v1/cards/issue', { method: 'POST', route: issue, access: 'opencis' }],
    ['/v1/cards/passcode', { method: 'POST', route: passcode, access: 'opencis' }],
  ]);
}

const cis1SignInBody = z.object({ passcode: z.string().max(64) });
const cis1RoleBody = z.object({ personRoleId: z.string().regex(/^[0-9]{12}$/) });

function cis1RoutesFor(cis1: Cis1Agent): Map<string, RouteEntry> {
  const text = (type: string, content: string, headers: Record<string, string> = {}): RouteAnswer => ({
    status: 200,
    body: content,
    text: { type, headers },
  });
  return new Map<string, RouteEntry>([
    [
      '/cis1',
      {
        method: 'GET',
        access: 'cis1_page',
        route: async () => text('text/html; charset=utf-8', CIS1_PAGE_HTML, CIS1_PAGE_SECURITY_HEADERS),
      },
    ],
    [
      '/cis1/page.js',
      {
        method: 'GET',
        access: 'cis1_page',
        route: async () => text('text/javascript; charset=utf-8', CIS1_PAGE_SCRIPT),
      },
    ],
    [
      '/v1/cis1/session',
      { method: 'GET', access: 'cis1_page_api', route: async () => ({ status: 200, body: cis1.view() }) },
    ],
    [
      '/v1/cis1/signin',
      {
        method: 'POST',
        access: 'cis1_page_api',
        route: async ({ body }) => ({ status: 200, body: await cis1.signIn(parseBody(cis1SignInBody, body).passcode) }),
      },
    ],
    [
      '/v1/cis1/role',
      {
        method: 'POST',
        access: 'cis1_page_api',
        route: async ({ body }) => ({
          status: 200,
          body: await cis1.selectRole(parseBody(cis1RoleBody, body).personRoleId),
        }),
      },
    ],
    [
      '/v1/cis1/signout',
      {
        method: 'POST',
        access: 'cis1_page_api',
        route: async () => {
          await cis1.signOut();
          return { status: 200, body: { ok: true } };
        },
      },
    ],
    [
      '/v1/cis1/ticket',
      { method: 'GET', access: 'cis1_application', route: async () => ({ status: 200, body: await cis1.ticket() }) },
    ],
  ]);
}

function isCertificateFor(certificate: Buffer, publicKey: Buffer): boolean {
  try {
    return new X509Certificate(certificate).publicKey.export({ type: 'spki', format: 'der' }).equals(publicKey);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP plumbing

export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  if (address === '::1') return true;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

function send(
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

async function readJsonBody(req: IncomingMessage): Promise<unknown> {
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
