import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { cardConfigFrom } from '../../src/http/deps.ts';
import { attemptPolicies } from '../../src/services/attempts.ts';
import { startCardIssue } from '../../src/services/cards.ts';
import { registerClient } from '../../src/services/clients.ts';
import { createEnrolmentInvitation } from '../../src/services/enrolment.ts';
import { registerPerson } from '../../src/services/people.ts';
import { backend } from '../support/db.ts';
import { databaseDigest, REFUSAL_TABLES } from '../support/digest.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/**
 * Rate limits on every guessable secret (issue 15, acceptance 4). One-time codes and TOTP codes are limited per person
 * and per address already (abuse.test.ts, authenticators.test.ts, authenticators.security.test.ts). The long random
 * secrets — enrolment invitation links, card grants, CIS1 tickets and agent session secrets, client secrets at the
 * token endpoint — cannot be guessed, yet before this nothing stopped one address trying them without end. Now each
 * wrong one counts against the caller's address; at the address limit that address is refused (429) even with the
 * right secret, while every other address goes on; a refusal writes nothing but its failure count (and audit).
 */
let s: TestServer;
let userId: string;
let invitation: string;
let grant: string;
let rp: { clientId: string; secret: string };

before(async () => {
  s = await startTestServer({ CARD_TRANSPORT_SO_PIN: '87654321' });
  const op = s.operator();
  const person = await registerPerson(op, {
    givenName: 'Guess',
    familyName: 'Target',
    dateOfBirth: '1980-04-04',
    identityAssuranceLevel: 3,
    email: 'guess.target@example.nhs.uk',
  });
  userId = person.userId;
  invitation = await createEnrolmentInvitation(op, { userId, maxAal: 2 });
  grant = (await startCardIssue(op, cardConfigFrom(s.config), { userId, kind: 'physical' })).grant;
  const registered = await registerClient(op, {
    name: 'Guessed RP',
    redirectUris: ['http://localhost:9/cb'],
    tokenEndpointAuthMethod: 'client_secret_post',
  });
  rp = { clientId: registered.client.clientId, secret: registered.clientSecret! };
});
after(async () => {
  await s?.close();
});

const random43 = () => randomBytes(32).toString('base64url');

function codeOf(res: LightMyRequestResponse): string | undefined {
  try {
    const body = JSON.parse(res.body) as { error?: { code?: string } | string };
    return typeof body.error === 'string' ? body.error : body.error?.code;
  } catch {
    return undefined;
  }
}

interface Secret {
  name: string;
  /** A request with a wrong secret from `ip`. */
  wrong(ip: string): Promise<LightMyRequestResponse>;
  /** The request with the right secret (or, where the secret is not at hand, a right credential with a wrong value). */
  right(ip: string): Promise<LightMyRequestResponse>;
  wrongAnswer: [number, string];
  rightAnswer: [number, string | undefined];
}

const json = (payload: unknown, headers: Record<string, string> = {}) => ({
  headers: { 'content-type': 'application/json', ...headers },
  payload: JSON.stringify(payload),
});
const form = (fields: Record<string, string>) => ({
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  payload: new URLSearchParams(fields).toString(),
});

const secrets = (): Secret[] => [
  {
    name: 'enrolment invitation link',
    wrong: (ip) => s.app.inject({ method: 'GET', url: `/enrol/invite?t=${random43()}`, remoteAddress: ip }),
    right: (ip) => s.app.inject({ method: 'GET', url: `/enrol/invite?t=${invitation}`, remoteAddress: ip }),
    wrongAnswer: [403, 'card.grant_invalid'],
    rightAnswer: [200, undefined],
  },
  {
    name: 'card grant',
    wrong: (ip) =>
      s.app.inject({
        method: 'POST',
        url: '/api/v1/card-agent/redeem',
        remoteAddress: ip,
        ...json({ grant: random43(), tokenSerial: 'GUESS-1' }),
      }),
    right: (ip) =>
      s.app.inject({
        method: 'POST',
        url: '/api/v1/card-agent/redeem',
        remoteAddress: ip,
        ...json({ grant, tokenSerial: 'GUESS-1' }),
      }),
    wrongAnswer: [403, 'card.grant_invalid'],
    rightAnswer: [200, undefined],
  },
  {
    // The application's credentials are right; the ticket is not (a real ticket needs a card session: cis1.test.ts).
    name: 'CIS1 ticket',
    wrong: (ip) =>
      s.app.inject({
        method: 'POST',
        url: '/cis1/validate',
        remoteAddress: ip,
        ...json({ ticket: random43(), client_id: rp.clientId, client_secret: rp.secret }),
      }),
    right: (ip) =>
      s.app.inject({
        method: 'POST',
        url: '/cis1/validate',
        remoteAddress: ip,
        ...json({ ticket: random43(), client_id: rp.clientId, client_secret: rp.secret }),
      }),
    wrongAnswer: [401, 'cis1.ticket_invalid'],
    rightAnswer: [401, 'cis1.ticket_invalid'],
  },
  {
    name: 'CIS1 client secret',
    wrong: (ip) =>
      s.app.inject({
        method: 'POST',
        url: '/cis1/validate',
        remoteAddress: ip,
        ...json({ ticket: random43(), client_id: rp.clientId, client_secret: random43() }),
      }),
    right: (ip) =>
      s.app.inject({
        method: 'POST',
        url: '/cis1/validate',
        remoteAddress: ip,
        ...json({ ticket: random43(), client_id: rp.clientId, client_secret: rp.secret }),
      }),
    wrongAnswer: [401, 'cis1.client_invalid'],
    rightAnswer: [401, 'cis1.ticket_invalid'],
  },
  {
    name: 'CIS1 agent session secret',
    wrong: (ip) =>
      s.app.inject({
        method: 'POST',
        url: '/cis1/session/heartbeat',
        remoteAddress: ip,
        ...json({ workstationId: 'ws-guessing-workstation-1' }, { authorization: `Bearer ${random43()}` }),
      }),
    right: (ip) =>
      s.app.inject({
        method: 'POST',
        url: '/cis1/session/heartbeat',
        remoteAddress: ip,
        ...json({ workstationId: 'ws-guessing-workstation-1' }, { authorization: `Bearer ${random43()}` }),
      }),
    wrongAnswer: [401, 'cis1.agent_session_invalid'],
    rightAnswer: [401, 'cis1.agent_session_invalid'],
  },
  {
    // The right secret with a code nobody has: past client authentication, the grant is refused.
    name: 'client secret at the token endpoint',
    wrong: (ip) =>
      s.app.inject({
        method: 'POST',
        url: '/oidc/access_token',
        remoteAddress: ip,
        ...form({ grant_type: 'authorization_code', code: 'x', client_id: rp.clientId, client_secret: random43() }),
      }),
    right: (ip) =>
      s.app.inject({
        method: 'POST',
        url: '/oidc/access_token',
        remoteAddress: ip,
        ...form({
          grant_type: 'authorization_code',
          code: 'x',
          redirect_uri: 'http://localhost:9/cb',
          code_verifier: 'v'.repeat(43),
          client_id: rp.clientId,
          client_secret: rp.secret,
        }),
      }),
    wrongAnswer: [401, 'invalid_client'],
    rightAnswer: [400, 'invalid_grant'],
  },
];

test(`[${backend}] every long secret: ${attemptPolicies.ip.limit} wrong tries lock the address out (429), even with the right secret; other addresses go on`, async () => {
  let n = 0;
  for (const secret of secrets()) {
    n++;
    const attacker = `198.51.100.${n}`;
    const bystander = `192.0.2.${n}`;
    const digest = await databaseDigest(s.t.db, REFUSAL_TABLES);
    for (let i = 0; i < attemptPolicies.ip.limit; i++) {
      const res = await secret.wrong(attacker);
      assert.deepEqual([res.statusCode, codeOf(res)], secret.wrongAnswer, `${secret.name}, try ${i + 1}`);
    }
    const locked = await secret.right(attacker);
    assert.equal(locked.statusCode, 429, `${secret.name}: ${locked.body.slice(0, 200)}`);
    assert.ok(Number(JSON.parse(locked.body).error?.details?.retryAfterSeconds ?? locked.headers['retry-after']) > 0);
    assert.equal(await databaseDigest(s.t.db, REFUSAL_TABLES), digest, `${secret.name}: only failures were counted`);
    const other = await secret.right(bystander);
    assert.deepEqual([other.statusCode, codeOf(other)], secret.rightAnswer, `${secret.name} from another address`);
  }
});

test(`[${backend}] the lock ends after 15 minutes, and right secrets never count against an address`, async () => {
  const ip = '198.51.100.200';
  for (let i = 0; i < attemptPolicies.ip.limit; i++) await secrets()[0]!.wrong(ip);
  assert.equal((await secrets()[0]!.right(ip)).statusCode, 429);
  s.clock.set(new Date(s.clock.now().getTime() + attemptPolicies.ip.lockMs + 1_000));
  assert.equal((await secrets()[0]!.right(ip)).statusCode, 200);
  // A right secret, however often, is never a failure.
  for (let i = 0; i < attemptPolicies.ip.limit + 5; i++) {
    assert.equal((await secrets()[0]!.right('198.51.100.201')).statusCode, 200);
  }
});
