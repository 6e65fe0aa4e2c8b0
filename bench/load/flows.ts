/**
 * What a health worker's browser and a clinical system (the relying party) do, over HTTP, as CIS2 sign-ins go:
 *
 *   sign-in:  RP → /oidc/auth (no session) → /oidc/interaction/{uid} → /signin?return=… (page, CSRF) → the method
 *             (smartcard challenge + verify; security key options + verify; app code) → back to the interaction →
 *             /oidc/auth/{uid} (resume) → code at the RP → /oidc/token (code + PKCE) → /oidc/me (userinfo)
 *   refresh:  RP → /oidc/token (refresh_token)
 *   userinfo: RP → /oidc/me with an access token
 *   search:   an RA's browser (AAL3 session by smartcard) → POST /api/v1/people/search
 *
 * Every request may go to any node (through HAProxy); the flow's state lives in Redis/PostgreSQL.
 */
import { createHash, randomBytes } from 'node:crypto';
import { tinyPng } from '../../test/support/images.ts';
import { type HttpAnswer, type HttpClient, HttpError, Jar } from './http.ts';
import type { CardHolder, KeyUser, Population, SearchTarget, TotpUser } from './provision.ts';
import { REDIRECT_URI, SCOPE } from './provision.ts';

export type Method = 'card' | 'key' | 'totp';

export function lettersOf(n: number): string {
  let s = '';
  let k = n;
  do {
    s = String.fromCharCode(97 + (k % 26)) + s;
    k = Math.floor(k / 26);
  } while (k > 0);
  return s;
}

/** A 2×2 PNG (the identity check's photo). */
const TINY_PNG = tinyPng().toString('base64');

export interface Endpoints {
  /** Where requests go: the load balancer or one node (loopback). */
  base: string;
  authorize: string;
  token: string;
  userinfo: string;
  basic: string;
}

export interface Tokens {
  accessToken: string;
  refreshToken: string | null;
  idToken: string | null;
}

/** Called with every HTTP answer (which node served it). */
export type OnAnswer = (res: HttpAnswer) => void;

export class Flows {
  private refreshPool: string[] = [];
  private accessPool: string[] = [];
  private raBrowsers: { jar: Jar; csrf: string; busy: boolean; holder: CardHolder }[] = [];
  private searchIndex = 0;
  totpShortfall = 0;
  keyShortfall = 0;
  /** Runs each HTTP request of a flow, by the step's name (the side-by-side bench meters each step's server CPU). */
  around: <T>(step: string, run: () => Promise<T>) => Promise<T> = (_step, run) => run();

  constructor(
    readonly http: HttpClient,
    readonly endpoints: Endpoints,
    readonly population: Population,
    private readonly onAnswer: OnAnswer = () => {},
  ) {}

  static async discover(http: HttpClient, base: string, population: Population): Promise<Endpoints> {
    const res = await http.request(`${base}/oidc/.well-known/openid-configuration`, 'GET');
    if (res.status !== 200) throw new HttpError('discovery', res.status, res.body);
    const meta = JSON.parse(res.body) as Record<string, string>;
    const local = (u: string) => `${base}${new URL(u).pathname}`;
    const { clientId, clientSecret } = population.client;
    return {
      base,
      authorize: local(meta.authorization_endpoint!),
      token: local(meta.token_endpoint!),
      userinfo: local(meta.userinfo_endpoint!),
      basic: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`,
    };
  }

  private async send(
    step: string,
    url: string,
    method: string,
    headers: Record<string, string> = {},
    body?: string,
  ): Promise<HttpAnswer> {
    try {
      const res = await this.around(step, () => this.http.request(url, method, headers, body));
      this.onAnswer(res);
      return res;
    } catch (err) {
      // Connection errors (a node died, HAProxy gave up) name the step they broke.
      if (err instanceof Error) err.message = `${step}: ${err.message}`;
      throw err;
    }
  }

  /** An absolute URL the server gave (naming PUBLIC_URL) or a path, made to go to our base on loopback. */
  private local(location: string, base = this.endpoints.base): string {
    const u = new URL(location, base);
    return `${base}${u.pathname}${u.search}`;
  }

  private async follow(step: string, url: string, jar: Jar): Promise<string> {
    const res = await this.send(step, url, 'GET', { cookie: jar.header() });
    jar.absorb(res);
    const location = res.headers.location;
    if (res.status < 300 || res.status >= 400 || !location) throw new HttpError(step, res.status, res.body);
    return location;
  }

  private async postJson<T>(step: string, path: string, jar: Jar, csrf: string, body: unknown): Promise<T> {
    const res = await this.send(
      step,
      `${this.endpoints.base}${path}`,
      'POST',
      { 'content-type': 'application/json', 'csrf-token': csrf, cookie: jar.header() },
      JSON.stringify(body),
    );
    jar.absorb(res);
    if (res.status < 200 || res.status > 299) throw new HttpError(step, res.status, res.body);
    return JSON.parse(res.body) as T;
  }

  private async signinPage(url: string, jar: Jar): Promise<string> {
    const res = await this.send('signin page', url, 'GET', { cookie: jar.header(), accept: 'text/html' });
    jar.absorb(res);
    if (res.status !== 200) throw new HttpError('signin page', res.status, res.body);
    const csrf = /data-csrf="([^"]+)"/.exec(res.body)?.[1] ?? /name="_csrf" value="([^"]+)"/.exec(res.body)?.[1];
    if (!csrf) throw new Error('signin page: no CSRF token');
    return csrf;
  }

  /** The method's part: proves the person at /signin; returns where the server sends the browser next. */
  private async authenticate(
    method: Method,
    who: CardHolder | KeyUser | TotpUser,
    jar: Jar,
    csrf: string,
    returnTo: string,
  ) {
    const origin = new URL(this.population.publicUrl).origin;
    if (method === 'card') {
      const card = who as CardHolder;
      const { challengeId, challenge } = await this.postJson<{ challengeId: string; challenge: string }>(
        'card challenge',
        '/signin/card/challenge',
        jar,
        csrf,
        {},
      );
      const answer = await this.postJson<{ redirect: string; aal: number }>(
        'card verify',
        '/signin/card/verify',
        jar,
        csrf,
        {
          challengeId,
          certificate: card.certificate,
          signature: card.key.sign(origin, challenge),
          algorithm: 'ES256',
          return: returnTo,
        },
      );
      if (answer.aal !== 3) throw new Error(`card sign-in at AAL${answer.aal}`);
      return answer.redirect;
    }
    if (method === 'key') {
      const user = who as KeyUser;
      const { challengeId, options } = await this.postJson<{
        challengeId: string;
        options: Parameters<KeyUser['authenticator']['authenticate']>[0];
      }>('key options', '/signin/webauthn/options', jar, csrf, {});
      const answer = await this.postJson<{ redirect: string }>('key verify', '/signin/webauthn/verify', jar, csrf, {
        challengeId,
        response: user.authenticator.authenticate(options, origin),
        return: returnTo,
      });
      return answer.redirect;
    }
    const user = who as TotpUser;
    const now = Math.floor(Date.now() / 30_000);
    const step = Math.max(user.lastStep + 1, now - 1);
    user.lastStep = step;
    const res = await this.send(
      'totp',
      `${this.endpoints.base}/signin/totp`,
      'POST',
      { 'content-type': 'application/json', 'csrf-token': csrf, cookie: jar.header() },
      JSON.stringify({ userId: user.userId, code: user.totp.generate({ timestamp: step * 30_000 }), return: returnTo }),
    );
    jar.absorb(res);
    if (res.status !== 303 || !res.headers.location) throw new HttpError('totp', res.status, res.body);
    return res.headers.location;
  }

  /** Picks who signs in with `method`; a method with nobody free falls back to a smartcard. */
  private pick(method: Method): { method: Method; who: CardHolder | KeyUser | TotpUser; release: () => void } {
    const p = this.population;
    if (method === 'key') {
      const user = p.keys.find((k) => !k.busy);
      if (user) {
        user.busy = true;
        return {
          method,
          who: user,
          release: () => {
            user.busy = false;
          },
        };
      }
      this.keyShortfall++;
    } else if (method === 'totp') {
      const now = Math.floor(Date.now() / 30_000);
      const user = p.totp.find((u) => !u.busy && u.lastStep < now + 1);
      if (user) {
        user.busy = true;
        return {
          method,
          who: user,
          release: () => {
            user.busy = false;
          },
        };
      }
      this.totpShortfall++;
    }
    const card = p.cards[Math.floor(Math.random() * p.cards.length)]!;
    return { method: 'card', who: card, release: () => {} };
  }

  /** A whole CIS2 sign-in with `method`, ending with the relying party's token and userinfo calls. */
  async signIn(
    wanted: Method,
    options: { startBase?: string; between?: () => Promise<void> } = {},
  ): Promise<{ method: Method; tokens: Tokens }> {
    const { method, who, release } = this.pick(wanted);
    try {
      const jar = new Jar();
      const verifier = randomBytes(32).toString('base64url');
      const query = new URLSearchParams({
        client_id: this.population.client.clientId,
        response_type: 'code',
        redirect_uri: REDIRECT_URI,
        scope: SCOPE,
        state: randomBytes(12).toString('base64url'),
        nonce: randomBytes(12).toString('base64url'),
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
        acr_values: method === 'card' ? 'AAL3_ANY' : 'AAL2_OR_AAL3_ANY',
      });
      // The first two steps may go to another address (one node directly), and something may happen before the rest.
      const start = options.startBase ?? this.endpoints.base;
      const authorize = `${start}${new URL(this.endpoints.authorize).pathname}`;
      const interaction = await this.follow('authorize', `${authorize}?${query}`, jar);
      const signin = await this.follow('interaction', this.local(interaction, start), jar);
      await options.between?.();
      const signinUrl = this.local(signin);
      const returnTo = new URL(signinUrl).searchParams.get('return') ?? '/';
      const csrf = await this.signinPage(signinUrl, jar);
      const back = await this.authenticate(method, who, jar, csrf, returnTo);
      const resume = await this.follow('interaction (signed in)', this.local(back), jar);
      const callback = await this.follow('resume', this.local(resume), jar);
      if (!callback.startsWith(REDIRECT_URI)) throw new Error(`no code: sent to ${callback.slice(0, 200)}`);
      const code = new URL(callback).searchParams.get('code');
      if (!code) throw new Error(`no code: ${callback.slice(0, 200)}`);
      const tokens = await this.exchange(code, verifier);
      await this.userinfo(tokens.accessToken);
      return { method, tokens };
    } finally {
      release();
    }
  }

  private async tokenCall(step: string, form: Record<string, string>): Promise<Tokens> {
    const res = await this.send(
      step,
      this.endpoints.token,
      'POST',
      { authorization: this.endpoints.basic, 'content-type': 'application/x-www-form-urlencoded' },
      new URLSearchParams(form).toString(),
    );
    if (res.status !== 200) throw new HttpError(step, res.status, res.body);
    const t = JSON.parse(res.body) as { access_token?: string; refresh_token?: string; id_token?: string };
    if (!t.access_token) throw new Error(`${step}: no access token`);
    this.keep(t.access_token, t.refresh_token ?? null);
    return { accessToken: t.access_token, refreshToken: t.refresh_token ?? null, idToken: t.id_token ?? null };
  }

  private keep(access: string, refresh: string | null): void {
    this.accessPool.push(access);
    if (this.accessPool.length > 2_000) this.accessPool.splice(0, this.accessPool.length - 2_000);
    if (refresh) {
      this.refreshPool.push(refresh);
      if (this.refreshPool.length > 2_000) this.refreshPool.splice(0, this.refreshPool.length - 2_000);
    }
  }

  exchange(code: string, verifier: string): Promise<Tokens> {
    return this.tokenCall('token (code)', {
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
    });
  }

  get refreshable(): number {
    return this.refreshPool.length;
  }

  /** A relying party refreshing one of the tokens issued so far (each refresh token is used by one caller at a time). */
  async refresh(): Promise<boolean> {
    const token = this.refreshPool.shift();
    if (!token) return false;
    try {
      await this.tokenCall('token (refresh)', { grant_type: 'refresh_token', refresh_token: token });
    } catch (err) {
      // A refresh token that failed for a passing reason (a node died) is tried again later; a refused one is dropped.
      if (!(err instanceof HttpError) || err.status >= 500) this.refreshPool.push(token);
      throw err;
    }
    return true;
  }

  async userinfo(accessToken?: string): Promise<boolean> {
    const token = accessToken ?? this.accessPool[Math.floor(Math.random() * this.accessPool.length)];
    if (!token) return false;
    const res = await this.send('userinfo', this.endpoints.userinfo, 'GET', { authorization: `Bearer ${token}` });
    if (res.status !== 200) throw new HttpError('userinfo', res.status, res.body);
    if (!(JSON.parse(res.body) as { sub?: string }).sub) throw new Error('userinfo: no sub');
    return true;
  }

  /** An RA signed in at AAL3 with a smartcard (directly, not through a relying party). */
  private async raBrowser(holder: CardHolder) {
    const jar = new Jar();
    const csrf = await this.signinPage(`${this.endpoints.base}/signin`, jar);
    await this.authenticate('card', holder, jar, csrf, '/');
    return { jar, csrf, busy: false, holder };
  }

  /** An RA's JSON call on the RA API, from a signed-in RA browser (signed in on first use, and again when it ends). */
  async raCall<T>(step: string, path: string, body: unknown): Promise<T> {
    let browser = this.raBrowsers.find((b) => !b.busy);
    if (!browser) {
      const holder = this.population.raStaff[this.raBrowsers.length % this.population.raStaff.length]!;
      browser = await this.raBrowser(holder);
      this.raBrowsers.push(browser);
    }
    browser.busy = true;
    try {
      return await this.postJson<T>(step, path, browser.jar, browser.csrf, body);
    } catch (err) {
      // A session that ended (idle limit) or a lost CSRF cookie: sign in again next time.
      if (err instanceof HttpError && (err.status === 401 || err.status === 403)) {
        this.raBrowsers = this.raBrowsers.filter((b) => b !== browser);
      }
      throw err;
    } finally {
      browser.busy = false;
    }
  }

  async raSearch(): Promise<void> {
    const t: SearchTarget = this.population.searchTargets[this.searchIndex++ % this.population.searchTargets.length]!;
    const kind = this.searchIndex % 3;
    const body =
      kind === 0
        ? { userId: t.userId }
        : kind === 1
          ? { email: t.email }
          : { familyName: t.familyName.slice(0, 6), dateOfBirth: t.dateOfBirth };
    const found = await this.raCall<{ people?: unknown[] }>('RA search', '/api/v1/people/search', body);
    if (Array.isArray(found.people) && found.people.length === 0) {
      throw new Error(`RA search found nobody for ${JSON.stringify(body)}`);
    }
  }

  /** RA registration of a new person face to face (a write: person, identity check, photo, audit events). */
  async raRegister(n: number): Promise<string> {
    const today = new Date();
    const daysAgo = (d: number) => new Date(today.getTime() - d * 86_400_000).toISOString().slice(0, 10);
    const tag = `${this.population.runTag}${lettersOf(n)}`;
    const res = await this.raCall<{ person: { userId: string }; created: boolean }>(
      'RA register',
      '/api/v1/identity-checks',
      {
        person: {
          givenName: `Reg${lettersOf(n)}`,
          familyName: `Written${this.population.runTag}`,
          dateOfBirth: new Date(Date.UTC(1940, 0, 1) + (n % 20_000) * 86_400_000).toISOString().slice(0, 10),
          email: `reg.${tag}@example.nhs.uk`,
        },
        method: 'face_to_face',
        place: 'LD1 RA office',
        documents: [
          {
            category: 'photo_id',
            type: 'passport',
            lastChars: '123A',
            issuedOn: '2020-01-01',
            expiresOn: '2030-01-01',
          },
          { category: 'address', type: 'utility_bill', lastChars: null, issuedOn: daysAgo(10), expiresOn: null },
          { category: 'other', type: 'birth_certificate', lastChars: null, issuedOn: null, expiresOn: null },
        ],
        photo: { data: TINY_PNG },
      },
    );
    if (!res.created) throw new Error('RA register: not created');
    return res.person.userId;
  }

  /**
   * An OpenID Connect sign-in riding on an existing web session (the browser signed in earlier): authorize →
   * interaction → resume → code → token. Leaves a provider session, a grant and tokens behind (for the memory figure).
   */
  async withWebSession(sessionToken: string): Promise<Tokens> {
    const jar = new Jar();
    jar.set('opencis_session', sessionToken);
    const verifier = randomBytes(32).toString('base64url');
    const query = new URLSearchParams({
      client_id: this.population.client.clientId,
      response_type: 'code',
      redirect_uri: REDIRECT_URI,
      scope: SCOPE,
      state: randomBytes(12).toString('base64url'),
      nonce: randomBytes(12).toString('base64url'),
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
      acr_values: 'AAL3_ANY',
    });
    const interaction = await this.follow('authorize', `${this.endpoints.authorize}?${query}`, jar);
    const resume = await this.follow('interaction', this.local(interaction), jar);
    const callback = await this.follow('resume', this.local(resume), jar);
    const code = callback.startsWith(REDIRECT_URI) ? new URL(callback).searchParams.get('code') : null;
    if (!code) throw new Error(`no code: sent to ${callback.slice(0, 200)}`);
    return this.exchange(code, verifier);
  }

  /** Codes made beforehand through single sign-on (the browser has sessions already), for the token measurement. */
  async codesBySso(count: number, concurrency: number): Promise<{ code: string; verifier: string }[]> {
    const codes: { code: string; verifier: string }[] = [];
    const jars: Jar[] = [];
    await Promise.all(
      Array.from({ length: concurrency }, async (_, c) => {
        // Sign in once (full flow) to get the web and provider sessions, then repeat authorize with them.
        const jar = new Jar();
        jars[c] = jar;
        while (codes.length < count) {
          const verifier = randomBytes(32).toString('base64url');
          const query = new URLSearchParams({
            client_id: this.population.client.clientId,
            response_type: 'code',
            redirect_uri: REDIRECT_URI,
            scope: SCOPE,
            state: randomBytes(12).toString('base64url'),
            nonce: randomBytes(12).toString('base64url'),
            code_challenge: createHash('sha256').update(verifier).digest('base64url'),
            code_challenge_method: 'S256',
            acr_values: 'AAL3_ANY',
          });
          let url = `${this.endpoints.authorize}?${query}`;
          for (let hops = 0; hops < 10 && !url.startsWith(REDIRECT_URI); hops++) {
            const location = await this.follow('sso', url, jar);
            if (location.startsWith(REDIRECT_URI)) {
              url = location;
              break;
            }
            const next = this.local(location);
            if (new URL(next).pathname === '/signin') {
              const card = this.population.cards[c % this.population.cards.length]!;
              const csrf = await this.signinPage(next, jar);
              url = this.local(
                await this.authenticate('card', card, jar, csrf, new URL(next).searchParams.get('return') ?? '/'),
              );
            } else url = next;
          }
          const code = new URL(url).searchParams.get('code');
          if (!code) throw new Error(`sso: no code (${url.slice(0, 200)})`);
          codes.push({ code, verifier });
        }
      }),
    );
    return codes.slice(0, count);
  }
}
