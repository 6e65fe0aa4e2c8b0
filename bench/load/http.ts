/**
 * The load generator's HTTP client: node:http with keep-alive (cheap per request: the generator shares the machine with
 * the servers), a per-"browser" cookie jar, and a guard that refuses anything but loopback addresses.
 */
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export function assertLoopback(url: string, what = 'target'): void {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  if (!LOOPBACK.has(host))
    throw new Error(`${what} must be a loopback address (127.0.0.1, ::1, localhost), not ${host}`);
}

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** Which node answered (HAProxy's X-OpenCIS-Node header), or null straight to a node. */
  node: string | null;
}

export class HttpError extends Error {
  constructor(
    readonly step: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`${step}: HTTP ${status} ${body.slice(0, 160)}`);
  }
  /** The catalogued error code in the body, if there is one. */
  get code(): string | null {
    try {
      return (JSON.parse(this.body) as { error?: { code?: string } }).error?.code ?? null;
    } catch {
      return null;
    }
  }
}

export class HttpClient {
  readonly agent: Agent;
  constructor(maxSockets = 256) {
    this.agent = new Agent({ keepAlive: true, maxSockets, keepAliveMsecs: 1_000 });
  }

  request(
    url: string,
    method: string,
    headers: Record<string, string> = {},
    body?: string,
    timeoutMs = 30_000,
  ): Promise<HttpAnswer> {
    assertLoopback(url);
    return new Promise((resolve, reject) => {
      const all = body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) };
      const req = httpRequest(url, { method, headers: all, agent: this.agent, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const node = res.headers['x-opencis-node'];
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            node: typeof node === 'string' ? node : null,
          });
        });
      });
      req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** The few cookies a flow needs, by hand. */
export class Jar {
  private cookies = new Map<string, string>();
  set(name: string, value: string): void {
    this.cookies.set(name, value);
  }
  get(name: string): string | undefined {
    return this.cookies.get(name);
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  absorb(res: HttpAnswer): void {
    for (const line of res.headers['set-cookie'] ?? []) {
      const semi = line.indexOf(';');
      const pair = semi === -1 ? line : line.slice(0, semi);
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
}
