/**
 * A running OpenCIS with the RA world of DOMAIN §5 in it, for tests that attack the trust boundary over HTTP:
 *
 *   QWO (ICB) ─ RR8 (trust) ─ RR813 (site)        Y51 (another ICB) ─ RX1 (trust)
 *
 * one person per RA role in RR8 (each through a position that carries it, from 2026-01-01, no end date), an RA Manager
 * who registers RR8's API client (its registrar), a nurse with no RA powers, and sessions for any of them at AAL3 (or
 * AAL2). Calls go through the real HTTP server: cookie + CSRF header for people, a client-credentials token for the
 * API client.
 */
import type { Position } from '../../src/domain/access/role-profile.ts';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { registerClient } from '../../src/services/clients.ts';
import type { ServiceContext } from '../../src/services/context.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { personActorWithPowers } from '../../src/services/ra-powers.ts';
import { startSession } from '../../src/services/sessions.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { client, discover } from './oidc.ts';
import { startTestServer, type TestServer } from './server.ts';

export const RA_ROLES = ['manager', 'advanced', 'agent', 'sponsor', 'idChecker', 'lsa'] as const;
export type RaRoleKey = (typeof RA_ROLES)[number];

/** The positions of the world: what each carries, in which organisation. */
const POSITIONS = {
  manager: { ods: 'RR8', jobRoles: ['R5080'], activities: [] as string[] },
  advanced: { ods: 'RR8', jobRoles: ['R5090'], activities: ['B0272'] },
  agent: { ods: 'RR8', jobRoles: ['R5090'], activities: [] },
  sponsor: { ods: 'RR8', jobRoles: ['R8000'], activities: ['B1300'] },
  idChecker: { ods: 'RR8', jobRoles: ['R8010'], activities: ['B0267'] },
  lsa: { ods: 'RR8', jobRoles: ['R8010'], activities: ['B0264'] },
  nurse: { ods: 'RR8', jobRoles: ['R8001'], activities: [], assignable: true },
  clerk: { ods: 'RR8', jobRoles: ['R8010'], activities: [] },
  siteNurse: { ods: 'RR813', jobRoles: ['R8001'], activities: [], assignable: true },
  managerX: { ods: 'RX1', jobRoles: ['R5080'], activities: [] },
  agentX: { ods: 'RX1', jobRoles: ['R5090'], activities: [] },
  nurseX: { ods: 'RX1', jobRoles: ['R8001'], activities: [], assignable: true },
} as const;
export type PositionKey = keyof typeof POSITIONS;

/** An answer's JSON body, read loosely by the tests that attack the API (a field that is not there reads undefined). */
// biome-ignore lint/suspicious/noExplicitAny: tests read many shapes of answer and assert on what they find
export type Answer = any;

export interface Caller {
  /** Headers that authenticate a call: a session cookie and CSRF header, or a bearer token. */
  headers: Record<string, string>;
  /** For console form posts: the CSRF token to put in the form. */
  csrf: string | null;
}

export interface RaWorld {
  server: TestServer;
  url: string;
  positions: Record<PositionKey, Position>;
  /** User IDs of the world's people. */
  people: Record<RaRoleKey | 'registrar' | 'nonRa', string>;
  apiClient: { clientId: string; secret: string };
  op(): ServiceContext;
  /** The service context of a person as actor (their powers now). */
  as(userId: string): Promise<ServiceContext>;
  newPerson(label?: string): Promise<string>;
  /** A new person holding `position` (from 2026-01-01 unless given). Returns the user ID and the role profile ID. */
  personIn(position: PositionKey, dates?: { startDate?: string; endDate?: string | null }): Promise<PersonInWorld>;
  give(userId: string, position: PositionKey, dates?: { startDate?: string; endDate?: string | null }): Promise<string>;
  signIn(userId: string, aal?: 2 | 3): Promise<Caller>;
  apiToken(clientId?: string, secret?: string): Promise<Caller>;
  call(caller: Caller | null, method: string, path: string, body?: unknown): Promise<{ status: number; body: Answer }>;
  close(): Promise<void>;
}

export interface PersonInWorld {
  userId: string;
  personRoleId: string;
}

let serial = 0;

export async function startRaWorld(env: Record<string, string> = {}): Promise<RaWorld> {
  const server = await startTestServer({ CARD_TRANSPORT_SO_PIN: '87654321', ...env });
  const op = () => server.operator();
  for (const o of [
    { odsCode: 'QWO', name: 'Test ICB', type: 'icb' },
    { odsCode: 'RR8', name: 'Test Trust', type: 'trust', parentOdsCode: 'QWO' },
    { odsCode: 'RR813', name: 'Test Site', type: 'site', parentOdsCode: 'RR8' },
    { odsCode: 'Y51', name: 'Other ICB', type: 'icb' },
    { odsCode: 'RX1', name: 'Other Trust', type: 'trust', parentOdsCode: 'Y51' },
  ]) {
    await saveOrganisation(op(), o);
  }
  const positions = {} as Record<PositionKey, Position>;
  for (const [key, p] of Object.entries(POSITIONS)) {
    positions[key as PositionKey] = await createPosition(op(), p.ods, {
      name: key,
      jobRoles: [...p.jobRoles],
      activities: [...p.activities],
      assignable: 'assignable' in p ? p.assignable : false,
    });
  }
  const newPerson = async (label = 'Person'): Promise<string> => {
    serial++;
    const n = `${process.pid % 1000}${String(serial).padStart(5, '0')}`.slice(-6);
    const p = await registerPerson(op(), {
      givenName: `${label}${serial}`,
      familyName: `World${serial}`,
      dateOfBirth: '1980-01-01',
      niNumber: `QQ${n.padStart(6, '0')}C`,
      email: `p${serial}.${process.pid}@example.nhs.uk`,
      mobile: '07700900123',
    });
    // Verified face to face (level 3), as RA staff and card holders are: a fixture, not an RA action under test.
    await server.t.db.query('UPDATE people SET identity_assurance_level = 3 WHERE user_id = $1', [p.userId]);
    return p.userId;
  };
  const give = async (
    userId: string,
    position: PositionKey,
    dates: { startDate?: string; endDate?: string | null } = {},
  ): Promise<string> => {
    const rp = await assignRoleProfile(op(), {
      userId,
      positionId: positions[position].positionId,
      startDate: dates.startDate ?? '2026-01-01',
      endDate: dates.endDate ?? null,
    });
    return rp.personRoleId;
  };
  const personIn = async (position: PositionKey, dates?: { startDate?: string; endDate?: string | null }) => {
    const userId = await newPerson(position);
    return { userId, personRoleId: await give(userId, position, dates) };
  };
  const people = {} as RaWorld['people'];
  for (const role of RA_ROLES) people[role] = (await personIn(role)).userId;
  people.registrar = (await personIn('manager')).userId;
  people.nonRa = (await personIn('nurse')).userId;
  const as = async (userId: string): Promise<ServiceContext> => ({
    ...op(),
    actor: await personActorWithPowers(server.t.repos, userId, server.clock.now()),
  });
  const api = await registerClient(await as(people.registrar), {
    name: 'RR8 RA scripts',
    tokenEndpointAuthMethod: 'client_secret_basic',
    apiAccess: { odsCode: 'RR8', activities: ['B0274', 'B0267', 'B1300', 'B0264'] },
  });

  const signinPage = await fetch(`${server.url}/signin`);
  const csrfCookie = /opencis_csrf=([^;]+)/.exec(signinPage.headers.get('set-cookie') ?? '')?.[1];
  const csrf = /data-csrf="([^"]+)"/.exec(await signinPage.text())?.[1];
  if (!csrfCookie || !csrf) throw new Error('no CSRF token from /signin');

  const signIn = async (userId: string, aal: 2 | 3 = 3): Promise<Caller> => {
    const { token } = await unitOfWork(server.t.db)((tx) =>
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
    return {
      headers: { cookie: `opencis_csrf=${csrfCookie}; opencis_session=${token}`, 'csrf-token': csrf },
      csrf,
    };
  };
  const apiToken = async (clientId = api.client.clientId, secret = api.clientSecret!): Promise<Caller> => {
    const config = await discover(`${server.url}/oidc`, clientId, secret);
    const tokens = await client.clientCredentialsGrant(config, { scope: 'opencis.ra_api' });
    return { headers: { authorization: `Bearer ${tokens.access_token}` }, csrf: null };
  };
  const call = async (caller: Caller | null, method: string, path: string, body?: unknown) => {
    const headers: Record<string, string> = { accept: 'application/json', ...(caller?.headers ?? {}) };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed as Answer };
  };
  return {
    server,
    url: server.url,
    positions,
    people,
    apiClient: { clientId: api.client.clientId, secret: api.clientSecret! },
    op,
    as,
    newPerson,
    personIn,
    give,
    signIn,
    apiToken,
    call,
    close: () => server.close(),
  };
}
