import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './server.ts';

/** A real OpenID Connect provider (oidc-provider) in a child process: an organisation's IdP, as NHSmail is for CIS2. */
export interface UpstreamIdp {
  issuer: string;
  port: number;
  stop(): Promise<void>;
}

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'upstream-idp-server.ts');

export async function startUpstreamIdp(options: {
  clients: Record<string, unknown>[];
  /** Make the provider state another issuer than the one it is reached at (a misconfigured or hostile provider). */
  statedIssuer?: string;
}): Promise<UpstreamIdp> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', SCRIPT], {
    env: {
      ...process.env,
      PORT: String(port),
      CLIENTS: JSON.stringify(options.clients),
      ...(options.statedIssuer ? { ISSUER: options.statedIssuer } : {}),
      NODE_ENV: 'test',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`upstream IdP did not start: ${stderr}`)), 30_000);
    child.stdout?.on('data', (c: Buffer) => {
      if (c.toString().includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`upstream IdP exited (${code}): ${stderr}`));
    });
  });
  child.removeAllListeners('exit');
  return {
    issuer: `http://127.0.0.1:${port}`,
    port,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Cookies kept per host (OpenCIS and the upstream provider both set `_session`, `_interaction`…). */
export class HostCookieJar {
  private readonly byHost = new Map<string, Map<string, string>>();
  header(url: string): string {
    return [...(this.byHost.get(new URL(url).host) ?? new Map<string, string>())]
      .map(([k, v]) => `${k}=${v}`)
      .join('; ');
  }
  set(url: string, name: string, value: string): void {
    const host = new URL(url).host;
    const jar = this.byHost.get(host) ?? new Map<string, string>();
    jar.set(name, value);
    this.byHost.set(host, jar);
  }
  absorb(url: string, res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.byHost.get(new URL(url).host)?.delete(name);
      else this.set(url, name, value);
    }
  }
}

export interface Page {
  url: string;
  status: number;
  html: string;
}

/**
 * A browser following redirects across hosts until a page is shown or `stopAt` (a URL prefix) is reached; forms are
 * posted with `submit`.
 */
export async function browseTo(
  url: string,
  jar: HostCookieJar,
  init: { method?: string; form?: Record<string, string>; stopAt?: string } = {},
): Promise<Page> {
  let current = url;
  let method = init.method ?? 'GET';
  let body = init.form ? new URLSearchParams(init.form).toString() : undefined;
  for (let i = 0; i < 25; i++) {
    if (init.stopAt && current.startsWith(init.stopAt) && i > 0) return { url: current, status: 0, html: '' };
    const headers: Record<string, string> = { cookie: jar.header(current), accept: 'text/html' };
    if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(current, { method, redirect: 'manual', headers, body });
    jar.absorb(current, res);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      current = new URL(location, current).toString();
      method = 'GET';
      body = undefined;
      continue;
    }
    return { url: current, status: res.status, html: await res.text() };
  }
  throw new Error(`too many redirects from ${url}`);
}

/** Signs in at the upstream provider's development login page as `login`, and consents; returns where it lands. */
export async function signInUpstream(page: Page, jar: HostCookieJar, login: string, stopAt?: string): Promise<Page> {
  let current = page;
  for (let step = 0; step < 3; step++) {
    const action = /<form[^>]*action="([^"]+)"/.exec(current.html)?.[1];
    assert.ok(action, `a form on the upstream page ${current.url}: ${current.html.slice(0, 300)}`);
    const prompt = /name="prompt" value="(\w+)"/.exec(current.html)?.[1];
    const form: Record<string, string> =
      prompt === 'login' ? { prompt, login, password: 'any' } : { prompt: prompt ?? 'consent' };
    current = await browseTo(new URL(action.replace(/&amp;/g, '&'), current.url).toString(), jar, {
      method: 'POST',
      form,
      ...(stopAt ? { stopAt } : {}),
    });
    if (!new URL(current.url).pathname.startsWith('/interaction/')) return current;
  }
  return current;
}
