import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { type Config, loadConfig } from '../../src/config.ts';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { ensureCertificateAuthority } from '../../src/services/certificates.ts';
import type { ServiceContext } from '../../src/services/context.ts';
import type { OutgoingMessage } from '../../src/services/notifications.ts';
import { registerPerson } from '../../src/services/people.ts';
import { startSession } from '../../src/services/sessions.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { TestClock, testContext, testSealer } from './context.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';
import { saveTestOrganisations } from './organisations.ts';

/** A browser as the console sees it: session and CSRF cookies, and a CSRF token from a page. */
export interface ConsoleBrowser {
  cookie: string;
  csrf: string;
}

/**
 * The app with the RA console on a fresh test database holding the test organisations (RR8 > RR813 under QWO; RX1
 * under Y51), driven through `app.inject` as a browser would: sessions made directly, forms posted with the CSRF token.
 */
export interface ConsoleHarness {
  app: FastifyInstance;
  t: TestDatabase;
  clock: TestClock;
  config: Config;
  messages: OutgoingMessage[];
  op(): ServiceContext;
  /** A new person, optionally given a position from today. */
  person(extra?: Record<string, unknown>, positionId?: string): Promise<string>;
  position(odsCode: string, p: Record<string, unknown>): Promise<string>;
  signedIn(userId: string, aal?: 1 | 2 | 3): Promise<ConsoleBrowser>;
  get(b: ConsoleBrowser | null, url: string, headers?: Record<string, string>): Promise<LightMyRequestResponse>;
  postForm(
    b: ConsoleBrowser | null,
    url: string,
    fields: Record<string, string | string[]>,
    csrf?: string | null,
  ): Promise<LightMyRequestResponse>;
  postJson(b: ConsoleBrowser, url: string, body: unknown): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

export const TODAY = '2026-11-26';

export async function consoleHarness(env: Record<string, string> = {}): Promise<ConsoleHarness> {
  const t = await createTestDatabase();
  const clock = new TestClock(new Date(`${TODAY}T09:00:00Z`));
  const op = () => testContext(t.db, { clock });
  await saveTestOrganisations(op());
  await ensureCertificateAuthority(op());
  const config = loadConfig({
    PORT: '0',
    LOG_LEVEL: 'silent',
    ALLOW_EXAMPLE_NI_PREFIX: 'true',
    PUBLIC_URL: 'http://localhost:3000',
    DEMO_DATA: 'false',
    ...env,
  });
  const messages: OutgoingMessage[] = [];
  const app = await buildApp({
    config,
    db: t.db,
    sealer: testSealer,
    clock,
    logger: false,
    transport: { send: async (m) => void messages.push(m) },
  });
  let n = 0;
  const h: ConsoleHarness = {
    app,
    t,
    clock,
    config,
    messages,
    op,
    async person(extra = {}, positionId) {
      n++;
      const p = await registerPerson(op(), {
        givenName: `Given${n}`,
        familyName: `Person${n}`,
        dateOfBirth: '1982-05-17',
        email: `person${n}@example.nhs.uk`,
        identityAssuranceLevel: 3,
        ...extra,
      });
      if (positionId) await assignRoleProfile(op(), { userId: p.userId, positionId, startDate: TODAY });
      return p.userId;
    },
    async position(odsCode, p) {
      return (await createPosition(op(), odsCode, p)).positionId;
    },
    async signedIn(userId, aal = 3) {
      const page = await app.inject({ method: 'GET', url: '/signin' });
      const csrfCookie = page.cookies.find((c) => c.name === 'opencis_csrf')!;
      const csrf = /data-csrf="([^"]+)"/.exec(page.body)![1]!;
      const { token } = await unitOfWork(t.db)((tx) =>
        startSession(
          tx,
          op(),
          {
            userId,
            aal,
            amr: [aal === 3 ? 'SMARTCARD' : 'TOTP'],
            authenticatorId: aal === 3 ? 'card:test' : 'totp:test',
          },
          null,
          { ip: null, userAgent: null },
        ),
      );
      return { cookie: `opencis_csrf=${csrfCookie.value}; opencis_session=${token}`, csrf };
    },
    get(b, url, headers = {}) {
      return app.inject({
        method: 'GET',
        url,
        headers: { accept: 'text/html', ...(b ? { cookie: b.cookie } : {}), ...headers },
      });
    },
    postForm(b, url, fields, csrf) {
      const body = new URLSearchParams();
      const token = csrf === undefined ? b?.csrf : csrf;
      if (token !== null && token !== undefined) body.append('_csrf', token);
      for (const [k, v] of Object.entries(fields)) for (const x of [v].flat()) body.append(k, x);
      return app.inject({
        method: 'POST',
        url,
        headers: {
          accept: 'text/html',
          'content-type': 'application/x-www-form-urlencoded',
          ...(b ? { cookie: b.cookie } : {}),
        },
        payload: body.toString(),
      });
    },
    postJson(b, url, body) {
      return app.inject({
        method: 'POST',
        url,
        headers: { 'content-type': 'application/json', cookie: b.cookie, 'csrf-token': b.csrf },
        payload: JSON.stringify(body),
      });
    },
    async close() {
      await app.close();
      await t.close();
    },
  };
  return h;
}

/** The success banner's sentence on a page, if it has one. */
export function bannerOf(html: string): string | null {
  const m = /class="nhsuk-notification-banner__heading">([^<]*)</.exec(html);
  return m ? m[1]! : null;
}
