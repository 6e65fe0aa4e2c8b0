/**
 * The OpenCIS server, as the agent sees it: redeeming a grant, asking for a certificate, reporting card events (best
 * effort), and POSTing JSON for the CIS1 session; the server's own error codes reach the page.
 */
import { z } from 'zod';
import type { CardEvent } from '../token.ts';
import { AgentError } from './errors.ts';

const serverErrorSchema = z.object({ error: z.object({ code: z.string().min(1), message: z.string() }) });
const redeemSchema = z.object({
  action: z.enum(['issue', 'set_passcode', 'unlock']),
  userId: z.string(),
  unblockSecret: z.string().min(4),
  transportSoPin: z.string().min(4).optional(),
});
const certificateSchema = z.object({ certificate: z.base64() });

/** The agent's client of the OpenCIS server at `baseUrl` (the card-agent API, `/api/v1/card-agent/…`). */
export class OpenCisServer {
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
