import 'reflect-metadata';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { after, before, test } from 'node:test';
import * as x509 from '@peculiar/x509';
import * as OTPAuth from 'otpauth';
import { AppError } from '../../src/domain/errors.ts';
import { nationalIdFromSequence } from '../../src/domain/identity/user-id.ts';
import { attemptPolicies } from '../../src/services/attempts.ts';
import {
  type CardConfig,
  certifyCard,
  completeSelfServiceUnlock,
  finishCardSignIn,
  getCard,
  passcodeGrant,
  redeemCardGrant,
  reportCardEvent,
  requestSelfServiceUnlock,
  startCardChallenge,
  startCardIssue,
} from '../../src/services/cards.ts';
import { activeAuthority, ensureCertificateAuthority, revokeCertificate } from '../../src/services/certificates.ts';
import { startEnrolment } from '../../src/services/enrolment.ts';
import type { DeliverableMessage, OutboxSender } from '../../src/services/notifications.ts';
import { registerPerson } from '../../src/services/people.ts';
import { confirmTotpEnrolment, signInWithTotp, startTotpEnrolment } from '../../src/services/totp.ts';
import { SoftwareCardKey } from '../support/card.ts';
import { TestClock, testContext } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';
import { databaseDigest, REFUSAL_TABLES } from '../support/digest.ts';
import { recordingOutbox } from '../support/outbox.ts';

/**
 * Attacks on the authenticators' secrets (issue 15, acceptance 4): one-time codes for self-service unlock and
 * enrolment (expiry, single use under concurrency, codes for another person or purpose, flooding a person with codes),
 * TOTP replay within one time step and at once, and smartcard sign-in with certificates that are revoked, superseded,
 * expired or from another CA. Already covered elsewhere and not repeated here: code expiry, reuse and guessing
 * (authenticators.test.ts), TOTP replay one at a time, drift and guessing (authenticators.test.ts, abuse.test.ts),
 * certificate verification itself (pki.test.ts), challenge replay and forged signatures (authenticators.test.ts,
 * cis1.security.test.ts).
 */
let t: TestDatabase;
const clock = new TestClock(new Date('2026-11-26T09:00:00Z'));
const ctx = () => testContext(t.db, { clock });
let sent: DeliverableMessage[];
/** The services queue messages in the outbox; `messagesTo` delivers what is due first, as the sender would. */
let transport: OutboxSender;
const cardConfig: CardConfig = {
  origin: 'http://localhost:3000',
  publicUrl: 'http://localhost:3000',
  transportSoPin: '87654321',
};
let n = 0;

before(async () => {
  t = await createTestDatabase();
  ({ sent, outbox: transport } = recordingOutbox(t.db, clock));
  await ensureCertificateAuthority(ctx());
});
after(() => t.close());

async function newPerson() {
  n++;
  const p = await registerPerson(ctx(), {
    givenName: `Secure${n}`,
    familyName: 'Holder',
    dateOfBirth: '1985-01-01',
    niNumber: `JK${String(700000 + n)}A`,
    email: `secure${n}@example.nhs.uk`,
    identityAssuranceLevel: 3,
  });
  await t.db.query('UPDATE people SET email_verified_at = $2 WHERE user_id = $1', [p.userId, clock.now()]);
  return p;
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

async function issueCard(userId: string) {
  const key = new SoftwareCardKey();
  const tokenSerial = `SEC-${userId}`;
  const { card, grant } = await startCardIssue(ctx(), cardConfig, { userId, kind: 'physical' });
  await redeemCardGrant(ctx(), cardConfig, { grant, tokenSerial });
  const { certificate } = await certifyCard(ctx(), cardConfig, {
    grant,
    tokenSerial,
    publicKey: key.spkiBase64(),
    proof: key.sign(cardConfig.origin, grant),
  });
  await redeemCardGrant(ctx(), cardConfig, { grant: await passcodeGrant(ctx(), card.cardId), tokenSerial });
  return { cardId: card.cardId, key, certificate: certificate.toString('base64'), tokenSerial };
}

const codeIn = (m: DeliverableMessage | undefined) => /\b(\d{8})\b/.exec(m?.text ?? '')?.[1];
async function messagesTo(to: string): Promise<DeliverableMessage[]> {
  await transport.drain();
  return sent.filter((m) => m.to === to);
}

// ---------------------------------------------------------------------------------------------------------------
// One-time codes

test(`[${backend}] asking for unlock codes again and again: 3 go out per 15 minutes, the code already sent keeps working`, async () => {
  const p = await newPerson();
  const { cardId, certificate, tokenSerial } = await issueCard(p.userId);
  await reportCardEvent(ctx(), { tokenSerial, event: 'locked', certificate });
  const before = (await messagesTo(p.email!)).length;
  for (let i = 0; i < 10; i++)
    await requestSelfServiceUnlock(ctx(), transport, { userId: p.userId, ip: `10.9.0.${i}` });
  const mine = (await messagesTo(p.email!)).slice(before);
  assert.equal(mine.length, 3, 'nobody can flood a holder with codes, from however many addresses');
  // The last code sent is the one that works: later requests did not void it.
  const { grant } = await completeSelfServiceUnlock(ctx(), { userId: p.userId, code: codeIn(mine.at(-1)), ip: null });
  assert.ok(grant);
  assert.equal((await getCard(t.repos, cardId)).status, 'locked', 'the card waits for the agent to redeem the grant');
  // 15 minutes later the holder may ask again.
  clock.advanceDays(16 / 1440);
  await requestSelfServiceUnlock(ctx(), transport, { userId: p.userId, ip: '10.9.1.1' });
  assert.equal((await messagesTo(p.email!)).length - before, 4);
});

test(`[${backend}] one address asking for codes for many user IDs is stopped at the address limit (429), others are not`, async () => {
  const people = [await newPerson(), await newPerson()];
  const answers: string[] = [];
  for (let i = 0; i < attemptPolicies.ip.limit + 5; i++) {
    const userId = i < 2 ? people[i]!.userId : nationalIdFromSequence(BigInt(80_000_000_000 + i));
    answers.push(await codeOf(requestSelfServiceUnlock(ctx(), transport, { userId, ip: '203.0.113.77' })));
  }
  assert.deepEqual(answers.slice(0, attemptPolicies.ip.limit), Array(attemptPolicies.ip.limit).fill('no error'));
  assert.deepEqual(answers.slice(attemptPolicies.ip.limit), Array(5).fill('auth.rate_limited'));
  assert.equal(
    await codeOf(requestSelfServiceUnlock(ctx(), transport, { userId: people[0]!.userId, ip: '192.0.2.8' })),
    'no error',
  );
  // Enrolment codes likewise: per address, and at most 3 per email address.
  const e = await newPerson();
  const before = (await messagesTo(e.email!)).length;
  for (let i = 0; i < 6; i++) await startEnrolment(ctx(), transport, { email: e.email, ip: `10.8.0.${i}` });
  assert.equal((await messagesTo(e.email!)).length - before, 3);
});

test(`[${backend}] a code works only for its person and its purpose; nothing changes when it is refused`, async () => {
  const alice = await newPerson();
  const bob = await newPerson();
  const a = await issueCard(alice.userId);
  const b = await issueCard(bob.userId);
  await reportCardEvent(ctx(), { tokenSerial: a.tokenSerial, event: 'locked', certificate: a.certificate });
  await reportCardEvent(ctx(), { tokenSerial: b.tokenSerial, event: 'locked', certificate: b.certificate });
  await requestSelfServiceUnlock(ctx(), transport, { userId: alice.userId });
  const aliceCode = codeIn((await messagesTo(alice.email!)).at(-1))!;
  await startEnrolment(ctx(), transport, { email: bob.email });
  const bobEnrolmentCode = codeIn((await messagesTo(bob.email!)).at(-1))!;
  await requestSelfServiceUnlock(ctx(), transport, { userId: bob.userId });
  // A wrong try is counted on the code itself (one_time_codes.attempts) and against the person: nothing else changes.
  const digest = await databaseDigest(t.db, [...REFUSAL_TABLES, 'one_time_codes']);
  // Alice's code with Bob's user ID: refused (hers is not his).
  assert.equal(
    await codeOf(completeSelfServiceUnlock(ctx(), { userId: bob.userId, code: aliceCode, ip: '10.7.0.1' })),
    'one_time_code.invalid',
  );
  // Bob's enrolment code is no unlock code.
  assert.equal(
    await codeOf(completeSelfServiceUnlock(ctx(), { userId: bob.userId, code: bobEnrolmentCode, ip: '10.7.0.1' })),
    'one_time_code.invalid',
  );
  assert.equal((await getCard(t.repos, b.cardId)).status, 'locked');
  assert.equal(await databaseDigest(t.db, [...REFUSAL_TABLES, 'one_time_codes']), digest);
  // Alice's code still unlocks Alice's card, and the grant it gives cannot be used with Bob's card.
  const { grant, cardId } = await completeSelfServiceUnlock(ctx(), { userId: alice.userId, code: aliceCode, ip: null });
  assert.equal(cardId, a.cardId);
  assert.equal(
    await codeOf(redeemCardGrant(ctx(), cardConfig, { grant, tokenSerial: b.tokenSerial })),
    'card.grant_invalid',
  );
});

test(`[${backend}] the right code sent ten times at once gives exactly one grant`, async () => {
  const p = await newPerson();
  const c = await issueCard(p.userId);
  await reportCardEvent(ctx(), { tokenSerial: c.tokenSerial, event: 'locked', certificate: c.certificate });
  await requestSelfServiceUnlock(ctx(), transport, { userId: p.userId });
  const code = codeIn((await messagesTo(p.email!)).at(-1))!;
  const results = await Promise.allSettled(
    Array.from({ length: 10 }, (_, i) =>
      completeSelfServiceUnlock(ctx(), { userId: p.userId, code, ip: `10.6.0.${i}` }),
    ),
  );
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  // The others were refused: as used, or — every try counting against the person, as a card counts passcode tries —
  // past the person's limit.
  for (const r of results) {
    if (r.status === 'rejected')
      assert.ok(['one_time_code.invalid', 'auth.rate_limited'].includes((r.reason as AppError).code));
  }
  const { rows } = await t.db.query<{ n: string }>(
    "SELECT count(*)::text AS n FROM card_grants WHERE card_id = $1 AND action = 'unlock'",
    [c.cardId],
  );
  assert.equal(rows[0]!.n, '1');
});

// ---------------------------------------------------------------------------------------------------------------
// TOTP

test(`[${backend}] TOTP: the same code sent four times at once signs in once; a code of a step already used never again`, async () => {
  const p = await newPerson();
  const { totpId, secret } = await startTotpEnrolment(ctx(), { userId: p.userId, issuer: 'OpenCIS' });
  const totp = new OTPAuth.TOTP({
    secret: OTPAuth.Secret.fromBase32(secret),
    digits: 6,
    period: 30,
    algorithm: 'SHA1',
  });
  const at = (steps: number) => totp.generate({ timestamp: clock.now().getTime() + steps * 30_000 });
  await confirmTotpEnrolment(ctx(), { userId: p.userId, totpId, code: at(-1), ip: null });
  const code = at(0);
  // Four at once: below the person's limit of 5 tries, so what refuses the others is the replay check, not the limit.
  const results = await Promise.allSettled(
    Array.from({ length: 4 }, (_, i) => signInWithTotp(ctx(), { userId: p.userId, code, ip: `10.5.0.${i}` })),
  );
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  // The code of the step the enrolment used, and this step's again: refused, the step is spent.
  assert.equal(await codeOf(signInWithTotp(ctx(), { userId: p.userId, code: at(-1), ip: '10.5.1.1' })), 'auth.failed');
  assert.equal(await codeOf(signInWithTotp(ctx(), { userId: p.userId, code, ip: '10.5.1.1' })), 'auth.failed');
  // A code one step ahead (drift) moves the step on: the current step's code is then spent too.
  assert.equal((await signInWithTotp(ctx(), { userId: p.userId, code: at(1), ip: '10.5.1.2' })).aal, 2);
  clock.advanceDays(30 / 86_400);
  assert.equal(await codeOf(signInWithTotp(ctx(), { userId: p.userId, code: at(0), ip: '10.5.1.3' })), 'auth.failed');
});

// ---------------------------------------------------------------------------------------------------------------
// Smartcard sign-in with certificates that must not work

async function cardSignIn(key: SoftwareCardKey, certificate: string) {
  const { challengeId, challenge } = await startCardChallenge(ctx(), 'signin');
  return finishCardSignIn(ctx(), cardConfig, {
    challengeId,
    certificate,
    signature: key.sign(cardConfig.origin, challenge),
    algorithm: 'ES256',
  });
}

test(`[${backend}] smartcard sign-in: a revoked certificate on an active card, and an expired one, are refused`, async () => {
  const p = await newPerson();
  const c = await issueCard(p.userId);
  assert.equal((await cardSignIn(c.key, c.certificate)).aal, 3);
  // Expired: the same certificate two years and a day later.
  const later = new TestClock(new Date(clock.now().getTime() + 731 * 86_400_000));
  const { challengeId, challenge } = await startCardChallenge({ ...ctx(), clock: later }, 'signin');
  assert.equal(
    await codeOf(
      finishCardSignIn({ ...ctx(), clock: later }, cardConfig, {
        challengeId,
        certificate: c.certificate,
        signature: c.key.sign(cardConfig.origin, challenge),
        algorithm: 'ES256',
      }),
    ),
    'auth.failed',
  );
  // Revoked at the CA (say, by an operator after a compromise) while the card record still says active.
  const { rows } = await t.db.query<{ certificate_serial: string }>(
    'SELECT certificate_serial FROM cards WHERE card_id = $1',
    [c.cardId],
  );
  await revokeCertificate(ctx(), rows[0]!.certificate_serial, 'keyCompromise');
  assert.equal((await getCard(t.repos, c.cardId)).status, 'active');
  // A refused sign-in writes nothing but its audit record (and spends its challenge).
  const refusal = [...REFUSAL_TABLES, 'auth_challenges'];
  const after = await databaseDigest(t.db, refusal);
  assert.equal(await codeOf(cardSignIn(c.key, c.certificate)), 'auth.failed');
  assert.equal(await databaseDigest(t.db, refusal), after);
  const { rows: audit } = await t.db.query<{ reason: string }>(
    "SELECT reason FROM audit_events WHERE action = 'signin.failed' ORDER BY seq DESC LIMIT 1",
  );
  assert.equal(audit[0]?.reason, 'pki.certificate_revoked');
});

test(`[${backend}] smartcard sign-in: one challenge signed once and sent twice at once signs in once`, async () => {
  const p = await newPerson();
  const c = await issueCard(p.userId);
  const { challengeId, challenge } = await startCardChallenge(ctx(), 'signin');
  const input = {
    challengeId,
    certificate: c.certificate,
    signature: c.key.sign(cardConfig.origin, challenge),
    algorithm: 'ES256',
  };
  const results = await Promise.allSettled([1, 2, 3, 4].map(() => finishCardSignIn(ctx(), cardConfig, input)));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  // A renewal challenge is not a sign-in challenge.
  const renewal = await startCardChallenge(ctx(), 'renew');
  assert.equal(
    await codeOf(
      finishCardSignIn(ctx(), cardConfig, {
        challengeId: renewal.challengeId,
        certificate: c.certificate,
        signature: c.key.sign(cardConfig.origin, renewal.challenge),
        algorithm: 'ES256',
      }),
    ),
    'auth.failed',
  );
});

test(`[${backend}] smartcard sign-in: a copy of a holder's certificate from a rogue CA of the same name is refused`, async () => {
  const p = await newPerson();
  const c = await issueCard(p.userId);
  // The attacker makes a CA with OpenCIS's CA name and issues the holder's certificate again — same serial, subject,
  // user ID and extensions — for a key of their own, with which they sign the challenge.
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const ours = new x509.X509Certificate((await activeAuthority(t.repos))!.certificateDer);
  const rogue = await x509.X509CertificateGenerator.createSelfSigned({
    name: ours.subjectName,
    keys,
    signingAlgorithm: alg,
    notBefore: ours.notBefore,
    notAfter: ours.notAfter,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
  });
  const original = new x509.X509Certificate(Buffer.from(c.certificate, 'base64'));
  const attacker = new SoftwareCardKey();
  const publicKey = await webcrypto.subtle.importKey(
    'spki',
    Buffer.from(attacker.spkiBase64(), 'base64'),
    { name: 'ECDSA', namedCurve: 'P-256' },
    true,
    ['verify'],
  );
  const forged = await x509.X509CertificateGenerator.create({
    serialNumber: original.serialNumber,
    subject: original.subjectName,
    issuer: rogue.subjectName,
    notBefore: original.notBefore,
    notAfter: original.notAfter,
    publicKey,
    signingKey: keys.privateKey,
    signingAlgorithm: alg,
    extensions: original.extensions,
  });
  const refusal = [...REFUSAL_TABLES, 'auth_challenges'];
  const digest = await databaseDigest(t.db, refusal);
  assert.equal(await codeOf(cardSignIn(attacker, Buffer.from(forged.rawData).toString('base64'))), 'auth.failed');
  assert.equal(await databaseDigest(t.db, refusal), digest);
  const { rows } = await t.db.query<{ reason: string }>(
    "SELECT reason FROM audit_events WHERE action = 'signin.failed' ORDER BY seq DESC LIMIT 1",
  );
  assert.equal(rows[0]?.reason, 'pki.certificate_untrusted');
  // The holder's own card still signs in.
  assert.equal((await cardSignIn(c.key, c.certificate)).userId, p.userId);
});
