import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startSession } from '../../src/services/sessions.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { TestClock } from './context.ts';
import { CookieJar, client } from './oidc.ts';
import type { TestServer } from './server.ts';

/**
 * A relying party's journeys through OpenCIS without Chromium (the shape of oidc-flows.test.ts, shared): a cookie jar
 * as the browser following redirects, a person signed in to OpenCIS as the sign-in pages would leave them, and
 * openid-client as the relying party.
 */
export const RP = 'http://localhost:9';
export const CALLBACK = `${RP}/callback`;
export const LOGGED_OUT = `${RP}/logged-out`;

export interface Landed {
  /** Where the browser stopped: the relying party's URL, or the page shown. */
  url: string;
  status: number;
  html: string;
  /** Every URL requested at the OP on the way. */
  hops: string[];
}

/** Sends a request like a browser and follows redirects until a page is shown or the relying party is reached. */
export async function follow(
  url: string,
  jar: CookieJar,
  init: { method?: string; form?: Record<string, string> } = {},
): Promise<Landed> {
  let current = url;
  const hops: string[] = [];
  let method = init.method ?? 'GET';
  let body: string | undefined = init.form ? new URLSearchParams(init.form).toString() : undefined;
  for (let i = 0; i < 20; i++) {
    if (current.startsWith(RP)) return { url: current, status: 0, html: '', hops };
    hops.push(current);
    const headers: Record<string, string> = { cookie: jar.header() };
    if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(current, { method, redirect: 'manual', headers, body });
    jar.absorb(res);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      current = new URL(location, current).toString();
      method = 'GET';
      body = undefined;
      continue;
    }
    return { url: current, status: res.status, html: await res.text(), hops };
  }
  throw new Error(`too many redirects from ${url}`);
}

/** A browser whose person is signed in to OpenCIS (a web session, as the sign-in pages would start). */
export async function signIn(
  server: TestServer,
  userId: string,
  aal: 1 | 2 | 3,
  amr: string[],
  jar = new CookieJar(),
  at?: Date,
): Promise<CookieJar> {
  const ctx = at ? { ...server.operator(), clock: new TestClock(at) } : server.operator();
  const { token } = await unitOfWork(server.t.db)((tx) =>
    startSession(tx, ctx, { userId, aal, amr, authenticatorId: 'test' }, null, { ip: null, userAgent: null }),
  );
  jar.set('opencis_session', token);
  return jar;
}

export interface Started {
  url: string;
  verifier: string;
  nonce: string;
  state: string;
}

/** An authorization request as openid-client builds it; `pkce: false` for CIS2 clients that send none. */
export async function start(
  config: client.Configuration,
  params: Record<string, string> = {},
  options: { pkce?: boolean } = {},
): Promise<Started> {
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const pkce: Record<string, string> =
    options.pkce === false
      ? {}
      : { code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' };
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: CALLBACK,
    scope: 'openid',
    ...pkce,
    nonce,
    state,
    ...params,
  });
  return { url: url.toString(), verifier: options.pkce === false ? '' : verifier, nonce, state };
}

export async function exchange(config: client.Configuration, started: Started, callback: string) {
  return client.authorizationCodeGrant(config, new URL(callback), {
    ...(started.verifier ? { pkceCodeVerifier: started.verifier } : {}),
    expectedNonce: started.nonce,
    expectedState: started.state,
  });
}

export function query(url: string): URLSearchParams {
  return new URL(url).searchParams;
}

export function field(html: string, name: string): string {
  const m = new RegExp(`name="${name}"[^>]*value="([^"]*)"`).exec(html);
  assert.ok(m, `the page has a ${name} field`);
  return m[1]!;
}

export function radios(html: string): string[] {
  return [...html.matchAll(/<input[^>]*name="personRoleId"[^>]*value="(\d+)"/g)].map((m) => m[1]!);
}

export async function postForm(
  url: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

export function basicAuth(clientId: string, secret: string): Record<string, string> {
  const enc = (s: string) => encodeURIComponent(s);
  return { authorization: `Basic ${Buffer.from(`${enc(clientId)}:${enc(secret)}`).toString('base64')}` };
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  ms = 5_000,
): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A back-channel logout receiver on loopback: records the logout tokens POSTed to it. */
export interface Receiver {
  url: string;
  tokens: string[];
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const tokens: string[] = [];
  const srv = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      const token = new URLSearchParams(body).get('logout_token');
      if (token) tokens.push(token);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/backchannel-logout`,
    tokens,
    close: () => new Promise<void>((resolve) => srv.close(() => resolve())),
  };
}

export { CookieJar, client };
