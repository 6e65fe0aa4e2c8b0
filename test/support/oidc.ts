import * as client from 'openid-client';

/**
 * A relying party as clinical systems build one: openid-client doing discovery, PKCE, state and nonce, and a tiny
 * browser stand-in (cookie jar + manual redirects) for tests that do not need Chromium.
 */
export class CookieJar {
  private cookies = new Map<string, string>();
  set(name: string, value: string): void {
    this.cookies.set(name, value);
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  absorb(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
}

/** Follows redirects like a browser until it reaches `stopAt` (the relying party's callback) or a page. */
export async function browse(
  url: string,
  jar: CookieJar,
  stopAt: string,
  limit = 15,
): Promise<{ url: string; response: Response }> {
  let current = url;
  for (let i = 0; i < limit; i++) {
    if (current.startsWith(stopAt)) return { url: current, response: new Response(null) };
    const res = await fetch(current, { redirect: 'manual', headers: { cookie: jar.header() } });
    jar.absorb(res);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      current = new URL(location, current).toString();
      continue;
    }
    return { url: current, response: res };
  }
  throw new Error(`too many redirects from ${url}`);
}

export async function discover(
  issuer: string,
  clientId: string,
  secret?: string,
  metadata: Partial<client.ClientMetadata> = {},
) {
  return client.discovery(new URL(issuer), clientId, metadata, secret ? client.ClientSecretBasic(secret) : undefined, {
    execute: [client.allowInsecureRequests],
  });
}

export { client };
