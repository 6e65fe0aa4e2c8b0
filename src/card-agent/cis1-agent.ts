import { z } from 'zod';
import { CARD_CHALLENGE_PATTERN, cardLoginMessage } from '../domain/credentials/card-login.ts';
import { type CardAgentErrorCode, errorCatalogue } from '../domain/errors.ts';
import {
  assertSameCard,
  CardError,
  type CardEvent,
  type CardSession,
  lockState,
  type Pkcs11Module,
  signWithPasscode,
} from './token.ts';

/**
 * The card agent's side of CIS1 (DOMAIN §8), in the agent process on the workstation. It signs in with the card
 * (challenge from the server, passcode checked and challenge signed on the card), keeps the session secret and the
 * ticket in memory only, hands the ticket to local applications (getTicket), polls the reader so that a removed card
 * ends the session within a second, and heartbeats the server while the card stays in. No passcode, key or session
 * secret ever leaves this object except to the card (passcode) and the OpenCIS server (secret); the ticket goes to
 * allowed applications only.
 */
/** The agent's CIS1 refusals (catalogued in src/domain/errors.ts with the server's codes). */
export type Cis1AgentErrorCode = Extract<CardAgentErrorCode, `cis1.${string}`>;

export class Cis1AgentError extends Error {
  readonly status: number;
  constructor(readonly code: Cis1AgentErrorCode) {
    super(errorCatalogue[code].message);
    this.name = 'Cis1AgentError';
    this.status = errorCatalogue[code].status;
  }
}

const roleSchema = z.object({
  personRoleId: z.string(),
  orgCode: z.string(),
  orgName: z.string(),
  positionName: z.string(),
  roleCode: z.string(),
  roleName: z.string(),
});
const viewSchema = z.object({
  sessionId: z.string(),
  userId: z.string(),
  expiresAt: z.string(),
  idleExpiresAt: z.string(),
  roles: z.array(roleSchema),
  selectedRoleId: z.string().nullable(),
  selectedRoleEffective: z.boolean(),
});
export type Cis1SessionView = z.infer<typeof viewSchema>;
const challengeSchema = z.object({ challengeId: z.string(), challenge: z.string() });
const startSchema = z.object({ sessionSecret: z.string(), ticket: z.string().nullable(), session: viewSchema });
const roleAnswerSchema = z.object({ ticket: z.string().nullable(), session: viewSchema });

function answerOf<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new Cis1AgentError('cis1.server_answer');
  return parsed.data;
}

/** Refused callers are reported to the server's audit trail at most this often (the rest are counted). */
const REFUSAL_REPORT_INTERVAL_MS = 1_000;

export interface Cis1AgentOptions {
  module: Pkcs11Module;
  tokenLabel: string | undefined;
  workstationId: string;
  /** The OpenCIS server's origin: what the card's signature is bound to (cardLoginMessage). */
  serverOrigin: string;
  /** How often the reader is checked for the card (≤ 1 s: removal must end the session at once). */
  pollMs: number;
  heartbeatMs: number;
  /** POSTs JSON to the OpenCIS server; rejects with an error carrying `code` and `status` when refused. */
  post(path: string, body: unknown, bearer?: string): Promise<unknown>;
  reportCardEvent(tokenSerial: string, event: CardEvent, certificate: Buffer | null): void;
  log(line: string): void;
}

interface LiveSession {
  secret: string;
  ticket: string | null;
  tokenSerial: string;
  view: Cis1SessionView;
}

type EndReason = 'card_removed' | 'signed_out' | 'agent_stopped';

/** Server answers meaning the session is over there: forget it here too. */
const SESSION_GONE = new Set([
  'cis1.session_ended',
  'cis1.ticket_expired',
  'cis1.agent_session_invalid',
  'cis1.workstation_mismatch',
]);
const END_RETRY_LIMIT_MS = 15 * 60_000;

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

function errorStatus(err: unknown): number | undefined {
  const status = (err as { status?: unknown }).status;
  return typeof status === 'number' ? status : undefined;
}

export class Cis1Agent {
  private session: LiveSession | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private polling = false;
  private pollFailures = 0;
  private lastRefusalReport = 0;
  private suppressedRefusals = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly pending = new Set<Promise<void>>();
  private readonly closing = new AbortController();

  constructor(private readonly options: Cis1AgentOptions) {}

  /** One sign-in, role change or sign-out at a time, in order. */
  private serial<T>(job: () => Promise<T>): Promise<T> {
    const result = this.queue.then(job);
    this.queue = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** Signs in with the card in the reader; any earlier session on this agent is ended first. */
  signIn(passcode: string): Promise<Cis1SessionView> {
    return this.serial(async () => {
      // Malformed input never reaches the card, so it never costs the holder a try.
      if (!/^[0-9]{6,8}$/.test(passcode)) throw new CardError('card.passcode_format');
      if (this.session) this.forget(this.session, 'signed_out');
      const { module, tokenLabel } = this.options;
      const tokenSerial = await module.withCard(tokenLabel, (card) => card.token.serial);
      const challenge = answerOf(challengeSchema, await this.options.post('/cis1/session/challenge', {}));
      if (!CARD_CHALLENGE_PATTERN.test(challenge.challenge)) throw new CardError('card.error');
      const signed = await module.withCard(tokenLabel, (card: CardSession) => {
        assertSameCard(card, tokenSerial);
        return signWithPasscode(
          card,
          passcode,
          cardLoginMessage(this.options.serverOrigin, challenge.challenge),
          (event, certificate) => this.options.reportCardEvent(tokenSerial, event, certificate),
        );
      });
      const answer = answerOf(
        startSchema,
        await this.options.post('/cis1/session', {
          challengeId: challenge.challengeId,
          certificate: signed.certificate.toString('base64'),
          signature: signed.signature.toString('base64url'),
          algorithm: signed.algorithm,
          workstationId: this.options.workstationId,
        }),
      );
      this.session = { secret: answer.sessionSecret, ticket: answer.ticket, tokenSerial, view: answer.session };
      this.pollFailures = 0;
      this.startTimers();
      this.options.log(`cis1 session started (${answer.session.roles.length} role profiles)`);
      return answer.session;
    });
  }

  /** Selects or switches the role profile; the first selection brings the ticket. */
  selectRole(personRoleId: string): Promise<Cis1SessionView> {
    return this.serial(async () => {
      const session = this.requireSession();
      const answer = answerOf(roleAnswerSchema, await this.call(session, '/cis1/session/role', { personRoleId }));
      if (answer.ticket) session.ticket = answer.ticket;
      session.view = answer.session;
      return answer.session;
    });
  }

  signOut(): Promise<void> {
    return this.serial(async () => {
      if (this.session) this.forget(this.session, 'signed_out');
      await this.settle();
    });
  }

  /** What the agent's own page shows: who is signed in and their roles — never the ticket or the secret. */
  view(): { signedIn: false } | ({ signedIn: true } & Cis1SessionView) {
    return this.session ? { signedIn: true, ...this.session.view } : { signedIn: false };
  }

  /** getTicket: the current ticket, or why there is none (no card, card locked, nobody signed in, no role yet). */
  async ticket(): Promise<{ ticket: string; workstationId: string; expiresAt: string }> {
    const session = this.session;
    if (session?.ticket) {
      return { ticket: session.ticket, workstationId: this.options.workstationId, expiresAt: session.view.expiresAt };
    }
    if (session) throw new Cis1AgentError('cis1.role_required');
    const { module, tokenLabel } = this.options;
    const card = await module.run((cryptoki) => {
      try {
        return lockState(cryptoki.openSession(cryptoki.findToken(tokenLabel)));
      } catch (err) {
        if (err instanceof CardError && err.code === 'card.absent') return undefined;
        throw err;
      }
    });
    if (!card) throw new Cis1AgentError('cis1.no_card');
    throw new Cis1AgentError(card.locked ? 'cis1.card_locked' : 'cis1.no_session');
  }

  /** Ends the session at the server (agent stopping) and waits for what is still being sent. */
  async close(): Promise<void> {
    this.closing.abort();
    if (this.session) this.forget(this.session, 'agent_stopped');
    this.stopTimers();
    await this.settle();
  }

  /**
   * A caller the agent refused on a CIS1 path (another origin, another host name, not loopback): while a session is
   * open, the server records it against that session — someone may be after the ticket. Throttled; never blocks.
   */
  reportRefusal(refusal: {
    path: string;
    code: string;
    origin: string | undefined;
    address: string | undefined;
  }): void {
    const session = this.session;
    if (!session) return;
    const now = Date.now();
    if (now - this.lastRefusalReport < REFUSAL_REPORT_INTERVAL_MS) {
      this.suppressedRefusals += 1;
      return;
    }
    this.lastRefusalReport = now;
    const suppressed = this.suppressedRefusals;
    this.suppressedRefusals = 0;
    const body = {
      event: 'request_refused',
      path: refusal.path.slice(0, 100),
      code: refusal.code,
      origin: refusal.origin?.slice(0, 200) ?? null,
      address: refusal.address ?? null,
      suppressed,
    };
    const sent = this.call(session, '/cis1/session/event', body).then(
      () => undefined,
      (err: unknown) => this.options.log(`cis1 refusal not reported: ${errorCode(err) ?? 'error'}`),
    );
    this.pending.add(sent);
    void sent.finally(() => this.pending.delete(sent));
  }

  private requireSession(): LiveSession {
    if (!this.session) throw new Cis1AgentError('cis1.no_session');
    return this.session;
  }

  private async call(session: LiveSession, path: string, body: Record<string, unknown>): Promise<unknown> {
    try {
      return await this.options.post(path, { ...body, workstationId: this.options.workstationId }, session.secret);
    } catch (err) {
      if (SESSION_GONE.has(errorCode(err) ?? '') && this.session === session) {
        this.options.log(`cis1 session ended by the server (${errorCode(err)})`);
        this.session = undefined;
        this.stopTimers();
      }
      throw err;
    }
  }

  private startTimers(): void {
    this.stopTimers();
    this.pollTimer = setInterval(() => void this.poll(), this.options.pollMs);
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.options.heartbeatMs);
    this.pollTimer.unref();
    this.heartbeatTimer.unref();
  }

  private stopTimers(): void {
    clearInterval(this.pollTimer);
    clearInterval(this.heartbeatTimer);
    this.pollTimer = undefined;
    this.heartbeatTimer = undefined;
  }

  /** Is the card this session signed in with still in a reader? A different card counts as removal. */
  private async poll(): Promise<void> {
    const session = this.session;
    if (!session || this.polling) return;
    this.polling = true;
    try {
      const present = await this.options.module.run((cryptoki) =>
        cryptoki.tokens().some((t) => t.initialized && t.serial === session.tokenSerial),
      );
      this.pollFailures = 0;
      if (!present && this.session === session) this.forget(session, 'card_removed');
    } catch {
      // A reader that keeps failing is treated as a removed card: the safe side.
      this.pollFailures += 1;
      if (this.pollFailures >= 3 && this.session === session) this.forget(session, 'card_removed');
    } finally {
      this.polling = false;
    }
  }

  private async heartbeat(): Promise<void> {
    const session = this.session;
    if (!session) return;
    try {
      session.view = answerOf(viewSchema, await this.call(session, '/cis1/session/heartbeat', {}));
    } catch (err) {
      if (!SESSION_GONE.has(errorCode(err) ?? ''))
        this.options.log(`cis1 heartbeat failed: ${errorCode(err) ?? 'error'}`);
    }
  }

  /** Forgets the session here at once (getTicket stops answering it) and ends it at the server, retrying. */
  private forget(session: LiveSession, reason: EndReason): void {
    if (this.session === session) this.session = undefined;
    this.stopTimers();
    this.options.log(`cis1 session ending: ${reason}`);
    const ending = this.endAtServer(session.secret, reason);
    this.pending.add(ending);
    void ending.finally(() => this.pending.delete(ending));
  }

  private async endAtServer(secret: string, reason: EndReason): Promise<void> {
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        await this.options.post('/cis1/session/end', { workstationId: this.options.workstationId, reason }, secret);
        return;
      } catch (err) {
        const status = errorStatus(err);
        // A refusal (4xx) will not change by asking again; the server's own limits end the session anyway.
        if (status !== undefined && status >= 400 && status < 500) return;
        if (this.closing.signal.aborted || Date.now() - started > END_RETRY_LIMIT_MS) {
          this.options.log(`cis1 session end not delivered (${errorCode(err) ?? 'error'})`);
          return;
        }
        await this.pause(Math.min(500 * 2 ** attempt, 30_000));
      }
    }
  }

  /** Waits, or less when the agent is stopping (then one last try is made). */
  private pause(ms: number): Promise<void> {
    const signal = this.closing.signal;
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      timer.unref();
      signal.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    });
  }

  private async settle(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }
}
