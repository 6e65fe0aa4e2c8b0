import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { AppError } from '../../src/domain/errors.ts';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { verifyAuditChain } from '../../src/services/audit-verify.ts';
import {
  type CardConfig,
  cancelCard,
  certifyCard,
  finishCardSignIn,
  getCard,
  passcodeGrant,
  redeemCardGrant,
  renewCardCertificate,
  reportCardEvent,
  startCardChallenge,
  startCardIssue,
} from '../../src/services/cards.ts';
import { ensureCertificateAuthority } from '../../src/services/certificates.ts';
import { registerPerson } from '../../src/services/people.ts';
import { startSession } from '../../src/services/sessions.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { SoftwareCardKey } from '../support/card.ts';
import { TestClock, testContext, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';
import { saveTestOrganisations } from '../support/organisations.ts';

// Renewal of a card's certificate at the RA desk (DOMAIN §5–6), through the card API the console page uses: any time,
// also after expiry (which only an RA can do, in person); the card proves possession of its key; the RA confirms the
// holder was checked; the policy decides who may (RA Agent, LSA — not a sponsor, not out of scope, not one's own card).

let t: TestDatabase;
let app: FastifyInstance;
const clock = new TestClock(new Date('2026-11-26T09:00:00Z'));
const TODAY = '2026-11-26';
const op = () => testContext(t.db, { clock });
const ORIGIN = 'http://localhost:3000';
const cardConfig: CardConfig = { origin: ORIGIN, publicUrl: ORIGIN, transportSoPin: '87654321' };
const staff = {} as Record<'agent' | 'lsa' | 'sponsor' | 'otherAgent', string>;
let clerkPosition: string;
let n = 0;

async function newPerson() {
  n++;
  return registerPerson(op(), {
    givenName: `Renew${n}`,
    familyName: 'Desk',
    dateOfBirth: '1981-03-04',
    niNumber: `JK${String(300000 + n)}B`,
    email: `renew${n}@example.nhs.uk`,
    identityAssuranceLevel: 3,
  });
}

async function issueCard(userId: string) {
  const key = new SoftwareCardKey();
  const tokenSerial = `TOKEN-${userId}-${n++}`;
  const { card, grant } = await startCardIssue(op(), cardConfig, { userId, kind: 'physical' });
  await redeemCardGrant(op(), cardConfig, { grant, tokenSerial });
  const { certificate } = await certifyCard(op(), cardConfig, {
    grant,
    tokenSerial,
    publicKey: key.spkiBase64(),
    proof: key.sign(ORIGIN, grant),
  });
  await redeemCardGrant(op(), cardConfig, { grant: await passcodeGrant(op(), card.cardId), tokenSerial });
  return { cardId: card.cardId, key, certificate: certificate.toString('base64'), tokenSerial };
}

async function holderWithCard() {
  const p = await newPerson();
  await assignRoleProfile(op(), { userId: p.userId, positionId: clerkPosition, startDate: TODAY });
  return { userId: p.userId, ...(await issueCard(p.userId)) };
}

interface Browser {
  cookie: string;
  csrf: string;
}

async function signedIn(userId: string): Promise<Browser> {
  const page = await app.inject({ method: 'GET', url: '/signin' });
  const csrfCookie = page.cookies.find((c) => c.name === 'opencis_csrf')!;
  const csrf = /data-csrf="([^"]+)"/.exec(page.body)![1]!;
  const { token } = await unitOfWork(t.db)((tx) =>
    startSession(tx, op(), { userId, aal: 3, amr: ['SMARTCARD'], authenticatorId: 'card:test' }, null, {
      ip: null,
      userAgent: null,
    }),
  );
  return { cookie: `opencis_csrf=${csrfCookie.value}; opencis_session=${token}`, csrf };
}

async function post(b: Browser, url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/json', cookie: b.cookie, 'csrf-token': b.csrf, ...headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> & { error?: { code: string } } };
}

/** The desk renewal as the page does it: challenge, the card signs it, renew with the RA's confirmation. */
async function renewAtDesk(
  b: Browser,
  cardId: string,
  inReader: { key: SoftwareCardKey; certificate: string },
  extra: Record<string, unknown> = { holderSeen: true },
) {
  const challenge = await post(b, `/api/v1/cards/${cardId}/renewal-challenge`, {});
  if (challenge.status !== 200) return challenge;
  return post(b, `/api/v1/cards/${cardId}/renew`, {
    challengeId: challenge.body.challengeId,
    certificate: inReader.certificate,
    signature: inReader.key.sign(ORIGIN, String(challenge.body.challenge)),
    algorithm: 'ES256',
    ...extra,
  });
}

async function cardSignIn(key: SoftwareCardKey, certificate: string) {
  const { challengeId, challenge } = await startCardChallenge(op(), 'signin');
  return finishCardSignIn(op(), cardConfig, {
    challengeId,
    certificate,
    signature: key.sign(ORIGIN, challenge),
    algorithm: 'ES256',
  });
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AppError, String(e));
    return e.code;
  }
  return 'no error';
}

async function certificatesOf(cardId: string) {
  const { rows } = await t.db.query<{ serial: string; status: string; revocation_reason: string | null }>(
    'SELECT serial, status, revocation_reason FROM pki_certificates WHERE card_id = $1 ORDER BY created_at, serial',
    [cardId],
  );
  return rows;
}

async function renewalEvents(userId: string) {
  const { rows } = await t.db.query<{ actor: string; after: { atDesk?: boolean; expired?: boolean } }>(
    "SELECT actor, after FROM audit_events WHERE action = 'card.renewed' AND target_id = $1",
    [userId],
  );
  return rows;
}

before(async () => {
  t = await createTestDatabase();
  await saveTestOrganisations(op());
  await ensureCertificateAuthority(op());
  const position = async (odsCode: string, p: Record<string, unknown>) =>
    (await createPosition(op(), odsCode, p)).positionId;
  const hire = async (positionId: string) => {
    const p = await newPerson();
    await assignRoleProfile(op(), { userId: p.userId, positionId, startDate: TODAY });
    return p.userId;
  };
  staff.agent = await hire(await position('RR8', { name: 'RA Agent', jobRoles: ['R5090'] }));
  staff.lsa = await hire(
    await position('RR8', { name: 'Smartcard administrator', jobRoles: ['R8010'], activities: ['B0264'] }),
  );
  staff.sponsor = await hire(
    await position('RR8', { name: 'Ward manager', jobRoles: ['R8000'], activities: ['B1300'] }),
  );
  staff.otherAgent = await hire(await position('RX1', { name: 'RA Agent', jobRoles: ['R5090'] }));
  clerkPosition = await position('RR813', { name: 'Ward clerk', jobRoles: ['R8010'] });

  const config = loadConfig({ PORT: '0', LOG_LEVEL: 'silent', ALLOW_EXAMPLE_NI_PREFIX: 'true', PUBLIC_URL: ORIGIN });
  app = await buildApp({
    config,
    db: t.db,
    sealer: testSealer,
    clock,
    logger: false,
    transport: { send: async () => {} },
  });
});

after(async () => {
  await app?.close();
  await t?.close();
});

test(`[${backend}] an RA Agent renews an in-date certificate at the desk, long before the holder could`, async () => {
  const h = await holderWithCard();
  const [before] = await certificatesOf(h.cardId);
  const res = await renewAtDesk(await signedIn(staff.agent), h.cardId, h);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const renewed = Buffer.from(String(res.body.certificate), 'base64').toString('base64');

  // (The test clock stands still: both have the same created_at, so put the old one first.)
  const rows = (await certificatesOf(h.cardId)).sort((a) => (a.serial === before!.serial ? -1 : 1));
  assert.equal(rows.length, 2);
  assert.deepEqual(
    rows.map((r) => [r.serial === before!.serial, r.status, r.revocation_reason]),
    [
      [true, 'revoked', 'superseded'],
      [false, 'valid', null],
    ],
  );
  assert.equal((await getCard(t.repos, h.cardId)).certificateSerial, rows[1]!.serial);
  // The old certificate no longer signs in; the new one, for the same key, does.
  assert.equal(await codeOf(cardSignIn(h.key, h.certificate)), 'auth.failed');
  assert.equal((await cardSignIn(h.key, renewed)).userId, h.userId);
  assert.deepEqual(
    (await renewalEvents(h.userId)).map((e) => [e.actor, e.after.atDesk, e.after.expired]),
    [[`person:${staff.agent}`, true, false]],
  );
});

test(`[${backend}] an expired certificate: the holder cannot sign in or renew it; an LSA renews it in person`, async () => {
  const h = await holderWithCard();
  clock.advanceDays(731);
  try {
    assert.equal(await codeOf(cardSignIn(h.key, h.certificate)), 'auth.failed');
    const { challengeId, challenge } = await startCardChallenge(op(), 'renew');
    const self = renewCardCertificate(
      op(),
      cardConfig,
      { challengeId, certificate: h.certificate, signature: h.key.sign(ORIGIN, challenge), algorithm: 'ES256' },
      h.userId,
    );
    assert.equal(await codeOf(self), 'auth.failed', 'self-renewal is refused once the certificate has expired');

    const res = await renewAtDesk(await signedIn(staff.lsa), h.cardId, h);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const card = res.body.card as { certificateNotAfter: string; status: string };
    assert.equal(card.status, 'active');
    assert.ok(new Date(card.certificateNotAfter).getTime() > clock.now().getTime() + 700 * 86_400_000);
    assert.equal(
      (await cardSignIn(h.key, Buffer.from(String(res.body.certificate), 'base64').toString('base64'))).userId,
      h.userId,
    );
    assert.deepEqual(
      (await renewalEvents(h.userId)).map((e) => [e.actor, e.after.atDesk, e.after.expired]),
      [[`person:${staff.lsa}`, true, true]],
    );
  } finally {
    clock.advanceDays(-731);
  }
});

test(`[${backend}] who may not: a sponsor, an RA out of scope, an RA for their own card — nothing is issued`, async () => {
  const h = await holderWithCard();
  for (const who of [staff.sponsor, staff.otherAgent]) {
    const res = await renewAtDesk(await signedIn(who), h.cardId, h);
    assert.equal(res.status, 403, JSON.stringify(res.body));
    assert.equal(res.body.error?.code, 'auth.forbidden');
  }
  const own = await issueCard(staff.agent);
  const mine = await renewAtDesk(await signedIn(staff.agent), own.cardId, own);
  assert.equal(mine.status, 403, JSON.stringify(mine.body));
  assert.equal(mine.body.error?.code, 'auth.forbidden');
  assert.equal((await certificatesOf(h.cardId)).length, 1);
  assert.equal((await certificatesOf(own.cardId)).length, 1);
});

test(`[${backend}] refused renewals: no confirmation, another card in the reader, a forged or replayed signature, no CSRF`, async () => {
  const h = await holderWithCard();
  const other = await holderWithCard();
  const agent = await signedIn(staff.agent);

  for (const extra of [{}, { holderSeen: false }, { holderSeen: 'yes' }]) {
    const res = await renewAtDesk(agent, h.cardId, h, extra);
    assert.equal(res.status, 400, JSON.stringify(res.body));
  }

  // The card in the reader is someone else's (it proves possession of its own key, but it is not the card on screen).
  const wrong = await renewAtDesk(agent, h.cardId, other);
  assert.equal(wrong.status, 409, JSON.stringify(wrong.body));
  assert.equal(wrong.body.error?.code, 'card.not_in_reader');

  // A signature by another key over the right challenge, with this card's certificate.
  const forged = await renewAtDesk(agent, h.cardId, { key: new SoftwareCardKey(), certificate: h.certificate });
  assert.equal(forged.status, 401, JSON.stringify(forged.body));
  assert.equal(forged.body.error?.code, 'auth.failed');

  // A challenge used once cannot be used again.
  const challenge = await post(agent, `/api/v1/cards/${h.cardId}/renewal-challenge`, {});
  const body = {
    challengeId: challenge.body.challengeId,
    certificate: h.certificate,
    signature: h.key.sign(ORIGIN, String(challenge.body.challenge)),
    algorithm: 'ES256',
    holderSeen: true,
  };
  assert.equal((await post(agent, `/api/v1/cards/${h.cardId}/renew`, body, { 'csrf-token': 'forged' })).status, 403);
  const first = await post(agent, `/api/v1/cards/${h.cardId}/renew`, body);
  assert.equal(first.status, 200, JSON.stringify(first.body));
  const replay = await post(agent, `/api/v1/cards/${h.cardId}/renew`, body);
  assert.equal(replay.status, 401, JSON.stringify(replay.body));

  // Hostile bodies: never a 500.
  for (const hostile of [
    'not json',
    { challengeId: 'x'.repeat(10_000), certificate: '!!', signature: '$', algorithm: 'ES256', holderSeen: true },
    { challengeId: 'x', certificate: 'A'.repeat(20_000), signature: 'AA', algorithm: 'none', holderSeen: true },
  ]) {
    const res = await post(agent, `/api/v1/cards/${h.cardId}/renew`, hostile);
    assert.ok(res.status >= 400 && res.status < 500, `${res.status} ${JSON.stringify(res.body)}`);
  }
  assert.equal((await post(agent, '/api/v1/cards/12/renewal-challenge', {})).status, 404);

  // Refusals are audited; only the one good renewal issued a certificate.
  const { rows } = await t.db.query<{ n: string }>(
    "SELECT count(*) AS n FROM audit_events WHERE action = 'card.renewal_refused' AND actor = $1",
    [`person:${staff.agent}`],
  );
  assert.ok(Number(rows[0]!.n) >= 2);
  assert.equal((await certificatesOf(h.cardId)).length, 2);
  assert.equal((await certificatesOf(other.cardId)).length, 1);
});

test(`[${backend}] a locked or cancelled card is not renewed (unlock it first, or issue a new card)`, async () => {
  const h = await holderWithCard();
  const agent = await signedIn(staff.agent);
  await reportCardEvent(op(), { tokenSerial: h.tokenSerial, event: 'locked', certificate: h.certificate });
  const locked = await renewAtDesk(agent, h.cardId, h);
  assert.equal(locked.status, 409, JSON.stringify(locked.body));
  assert.equal(locked.body.error?.code, 'card.invalid_state');

  const c = await holderWithCard();
  await cancelCard(op(), c.cardId, 'damaged');
  const cancelled = await renewAtDesk(agent, c.cardId, c);
  assert.equal(cancelled.status, 409, JSON.stringify(cancelled.body));
  assert.equal((await certificatesOf(c.cardId)).length, 1);
});

test(`[${backend}] the audit chain verifies after all of it`, async () => {
  const result = await verifyAuditChain(t.repos, testSealer.auditKeys);
  assert.equal(result.ok, true, JSON.stringify(result));
});
