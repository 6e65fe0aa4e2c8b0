import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as OTPAuth from 'otpauth';
import { AppError } from '../../src/domain/errors.ts';
import { nationalIdFromSequence } from '../../src/domain/identity/user-id.ts';
import { verifyAuditChain } from '../../src/services/audit-verify.ts';
import {
  type CardConfig,
  cancelCard,
  certifyCard,
  completeSelfServiceUnlock,
  finishCardSignIn,
  getCard,
  passcodeGrant,
  redeemCardGrant,
  renewCardCertificate,
  reportCardEvent,
  requestSelfServiceUnlock,
  sendExpiryWarnings,
  startCardChallenge,
  startCardIssue,
} from '../../src/services/cards.ts';
import { ensureCertificateAuthority } from '../../src/services/certificates.ts';
import { registerPerson } from '../../src/services/people.ts';
import { currentSession, startSession } from '../../src/services/sessions.ts';
import { confirmTotpEnrolment, signInWithTotp, startTotpEnrolment } from '../../src/services/totp.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { SoftwareCardKey } from '../support/card.ts';
import { TestClock, testContext, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';
import { recordingOutbox } from '../support/outbox.ts';

let t: TestDatabase;
const clock = new TestClock(new Date('2026-11-26T09:00:00Z'));
const ctx = () => testContext(t.db, { clock });
let sent: ReturnType<typeof recordingOutbox>['sent'];
let outbox: ReturnType<typeof recordingOutbox>['outbox'];
/** Runs the action, then lets the outbox deliver what it queued (delivery follows the action, not inside it). */
async function delivering(action: Promise<unknown>): Promise<void> {
  await action;
  await outbox.drain();
}
const cardConfig: CardConfig = {
  origin: 'http://localhost:3000',
  publicUrl: 'http://localhost:3000',
  transportSoPin: '87654321',
};
let n = 0;

before(async () => {
  t = await createTestDatabase();
  ({ sent, outbox } = recordingOutbox(t.db, clock));
  await ensureCertificateAuthority(ctx());
});
after(() => t.close());

async function newPerson(extra: Record<string, unknown> = {}) {
  n++;
  const p = await registerPerson(ctx(), {
    givenName: `Card${n}`,
    familyName: 'Holder',
    dateOfBirth: '1985-01-01',
    niNumber: `JK${String(200000 + n)}A`,
    email: `holder${n}@example.nhs.uk`,
    mobile: '07700900123',
    identityAssuranceLevel: 3,
    ...extra,
  });
  await t.db.query('UPDATE people SET email_verified_at = $2 WHERE user_id = $1', [p.userId, clock.now()]);
  return p;
}

async function codeOf(err: Promise<unknown>): Promise<string> {
  try {
    await err;
  } catch (e) {
    assert.ok(e instanceof AppError, String(e));
    return e.code;
  }
  return 'no error';
}

/** Issues a card the way the card agent does it, with a software key in place of the token. */
async function issueCard(userId: string, tokenSerial = `TOKEN-${userId}`) {
  const key = new SoftwareCardKey();
  const { card, grant } = await startCardIssue(ctx(), cardConfig, { userId, kind: 'physical' });
  const redeemed = await redeemCardGrant(ctx(), cardConfig, { grant, tokenSerial });
  assert.equal(redeemed.transportSoPin, '87654321');
  assert.equal(redeemed.action, 'issue');
  const { certificate } = await certifyCard(ctx(), cardConfig, {
    grant,
    tokenSerial,
    publicKey: key.spkiBase64(),
    proof: key.sign(cardConfig.origin, grant),
  });
  const g2 = await passcodeGrant(ctx(), card.cardId);
  const r2 = await redeemCardGrant(ctx(), cardConfig, { grant: g2, tokenSerial });
  assert.equal(r2.unblockSecret, redeemed.unblockSecret);
  return { card: await getCard(t.repos, card.cardId), key, certificate: certificate.toString('base64'), tokenSerial };
}

async function cardSignIn(key: SoftwareCardKey, certificate: string, origin = cardConfig.origin) {
  const { challengeId, challenge } = await startCardChallenge(ctx(), 'signin');
  return finishCardSignIn(ctx(), cardConfig, {
    challengeId,
    certificate,
    signature: key.sign(origin, challenge),
    algorithm: 'ES256',
  });
}

test(`[${backend}] a card is issued, certified for the key on it, and signs its holder in at AAL3`, async () => {
  const p = await newPerson();
  const { card, key, certificate } = await issueCard(p.userId);
  assert.equal(card.status, 'active');
  const result = await cardSignIn(key, certificate);
  assert.deepEqual(
    { userId: result.userId, aal: result.aal, amr: result.amr },
    { userId: p.userId, aal: 3, amr: ['SMARTCARD'] },
  );
});

test(`[${backend}] grants are single-use and bound to their card and token`, async () => {
  const p = await newPerson();
  const { card, tokenSerial } = await issueCard(p.userId);
  const grant = await passcodeGrant(ctx(), card.cardId).catch((e) => e);
  assert.equal((grant as AppError).code, 'card.invalid_state', 'an active card needs no first-passcode grant');
  assert.equal(
    await codeOf(redeemCardGrant(ctx(), cardConfig, { grant: 'x'.repeat(43), tokenSerial })),
    'card.grant_invalid',
  );
  assert.equal(await codeOf(redeemCardGrant(ctx(), cardConfig, { grant: 42, tokenSerial })), 'card.grant_invalid');
  assert.equal(await codeOf(redeemCardGrant(ctx(), cardConfig, null)), 'card.grant_invalid');
  // a second card cannot take a token already in use
  const other = await newPerson();
  const { grant: g } = await startCardIssue(ctx(), cardConfig, { userId: other.userId, kind: 'physical' });
  assert.equal(await codeOf(redeemCardGrant(ctx(), cardConfig, { grant: g, tokenSerial })), 'card.token_in_use');
});

test(`[${backend}] a certificate request without proof of possession of the key is refused`, async () => {
  const p = await newPerson();
  const key = new SoftwareCardKey();
  const imposter = new SoftwareCardKey();
  const { grant } = await startCardIssue(ctx(), cardConfig, { userId: p.userId, kind: 'virtual' });
  await redeemCardGrant(ctx(), cardConfig, { grant, tokenSerial: 'VT-1' });
  const res = certifyCard(ctx(), cardConfig, {
    grant,
    tokenSerial: 'VT-1',
    publicKey: key.spkiBase64(),
    proof: imposter.sign(cardConfig.origin, grant),
  });
  assert.equal(await codeOf(res), 'card.proof_invalid');
});

test(`[${backend}] sign-in is refused for a wrong key, another origin, a replayed or forged challenge`, async () => {
  const p = await newPerson();
  const { key, certificate } = await issueCard(p.userId);
  assert.equal(await codeOf(cardSignIn(new SoftwareCardKey(), certificate)), 'auth.failed');
  assert.equal(await codeOf(cardSignIn(key, certificate, 'https://evil.example')), 'auth.failed');
  const { challengeId, challenge } = await startCardChallenge(ctx(), 'signin');
  const signed = { challengeId, certificate, signature: key.sign(cardConfig.origin, challenge), algorithm: 'ES256' };
  await finishCardSignIn(ctx(), cardConfig, signed);
  assert.equal(await codeOf(finishCardSignIn(ctx(), cardConfig, signed)), 'auth.failed', 'replay');
  assert.equal(
    await codeOf(finishCardSignIn(ctx(), cardConfig, { ...signed, challengeId: 'forged-challenge-id' })),
    'auth.failed',
  );
  assert.equal(await codeOf(finishCardSignIn(ctx(), cardConfig, { ...signed, certificate: 'AAAA' })), 'auth.failed');
  assert.equal(
    await codeOf(finishCardSignIn(ctx(), cardConfig, { ...signed, signature: 'x'.repeat(5000) })),
    'auth.failed',
  );
});

test(`[${backend}] an expired challenge is refused`, async () => {
  const p = await newPerson();
  const { key, certificate } = await issueCard(p.userId);
  const { challengeId, challenge } = await startCardChallenge(ctx(), 'signin');
  clock.advanceDays(1 / 24 / 6); // 10 minutes
  const res = finishCardSignIn(ctx(), cardConfig, {
    challengeId,
    certificate,
    signature: key.sign(cardConfig.origin, challenge),
    algorithm: 'ES256',
  });
  assert.equal(await codeOf(res), 'auth.failed');
});

test(`[${backend}] cancelling a card revokes its certificate at once, ends its sessions and refuses sign-in`, async () => {
  const p = await newPerson();
  const { card, key, certificate } = await issueCard(p.userId);
  const result = await cardSignIn(key, certificate);
  const { token } = await unitOfWork(t.db)((tx) =>
    startSession(tx, ctx(), result, null, { ip: null, userAgent: null }),
  );
  assert.ok(await currentSession(t.repos, token, clock.now()));
  await cancelCard(ctx(), card.cardId, 'lost');
  assert.equal(await currentSession(t.repos, token, clock.now()), null);
  const { rows } = await t.db.query<{ status: string; revocation_reason: string }>(
    'SELECT status, revocation_reason FROM pki_certificates WHERE card_id = $1',
    [card.cardId],
  );
  assert.deepEqual(rows, [{ status: 'revoked', revocation_reason: 'keyCompromise' }]);
  assert.equal(await codeOf(cardSignIn(key, certificate)), 'auth.failed');
});

test(`[${backend}] a card agent's lock report locks the card only when it names the card's certificate`, async () => {
  const p = await newPerson();
  const { card, certificate, tokenSerial, key } = await issueCard(p.userId);
  await reportCardEvent(ctx(), { tokenSerial, event: 'locked', certificate: null });
  assert.equal((await getCard(t.repos, card.cardId)).status, 'active');
  await reportCardEvent(ctx(), { tokenSerial, event: 'locked', certificate });
  assert.equal((await getCard(t.repos, card.cardId)).status, 'locked');
  assert.equal(await codeOf(cardSignIn(key, certificate)), 'auth.failed');
  assert.equal(
    await codeOf(reportCardEvent(ctx(), { tokenSerial, event: 'exploded', certificate })),
    'request.invalid',
  );
});

test(`[${backend}] self-service unlock: a code to the verified contact, valid 15 minutes, single use`, async () => {
  const p = await newPerson();
  const { card, certificate, tokenSerial } = await issueCard(p.userId);
  await reportCardEvent(ctx(), { tokenSerial, event: 'locked', certificate });
  sent.length = 0;
  await delivering(requestSelfServiceUnlock(ctx(), outbox, { userId: p.userId }));
  assert.equal(sent.length, 1);
  assert.equal(sent[0]!.channel, 'email', 'the mobile is not verified, so the email is used');
  const code = /code to unlock your smartcard is (\d{8})/.exec(sent[0]!.text)?.[1];
  assert.ok(code);
  assert.equal(
    await codeOf(completeSelfServiceUnlock(ctx(), { userId: p.userId, code: '00000000', ip: '10.0.0.1' })),
    'one_time_code.invalid',
  );
  const { grant } = await completeSelfServiceUnlock(ctx(), { userId: p.userId, code, ip: '10.0.0.1' });
  assert.equal(
    await codeOf(completeSelfServiceUnlock(ctx(), { userId: p.userId, code, ip: '10.0.0.1' })),
    'one_time_code.invalid',
    'reuse',
  );
  const redeemed = await redeemCardGrant(ctx(), cardConfig, { grant, tokenSerial });
  assert.equal(redeemed.action, 'unlock');
  assert.equal((await getCard(t.repos, card.cardId)).status, 'active');
  // an expired code
  await reportCardEvent(ctx(), { tokenSerial, event: 'locked', certificate });
  sent.length = 0;
  await delivering(requestSelfServiceUnlock(ctx(), outbox, { userId: p.userId }));
  const code2 = /is (\d{8})/.exec(sent[0]!.text)![1];
  clock.advanceDays(16 / 1440);
  assert.equal(
    await codeOf(completeSelfServiceUnlock(ctx(), { userId: p.userId, code: code2, ip: '10.0.0.1' })),
    'one_time_code.invalid',
  );
  // unknown people get the same silence as known ones
  sent.length = 0;
  await delivering(requestSelfServiceUnlock(ctx(), outbox, { userId: nationalIdFromSequence(99_999_999_999n) }));
  assert.equal(sent.length, 0);
});

test(`[${backend}] guessing one-time codes locks the person out before the code can be found`, async () => {
  const p = await newPerson();
  const { certificate, tokenSerial } = await issueCard(p.userId);
  await reportCardEvent(ctx(), { tokenSerial, event: 'locked', certificate });
  await delivering(requestSelfServiceUnlock(ctx(), outbox, { userId: p.userId }));
  const codes: string[] = [];
  for (let i = 0; i < 6; i++)
    codes.push(
      await codeOf(
        completeSelfServiceUnlock(ctx(), { userId: p.userId, code: String(10000000 + i), ip: `10.1.0.${i}` }),
      ),
    );
  assert.deepEqual(codes.slice(0, 5), Array(5).fill('one_time_code.invalid'));
  assert.equal(codes[5], 'auth.rate_limited');
});

test(`[${backend}] holders renew their own certificate only in its last 90 days`, async () => {
  const p = await newPerson();
  const { key, certificate, card } = await issueCard(p.userId);
  const renew = async (cert: string) => {
    const { challengeId, challenge } = await startCardChallenge(ctx(), 'renew');
    return renewCardCertificate(ctx(), cardConfig, {
      challengeId,
      certificate: cert,
      signature: key.sign(cardConfig.origin, challenge),
      algorithm: 'ES256',
    });
  };
  assert.equal(await codeOf(renew(certificate)), 'card.renewal_not_allowed');
  clock.advanceDays(730 - 60);
  const renewed = await renew(certificate);
  assert.notEqual(renewed.card.certificateSerial, card.certificateSerial);
  // the old certificate no longer signs in; the new one does, with the same key
  assert.equal(await codeOf(cardSignIn(key, certificate)), 'auth.failed');
  const newCert = renewed.certificate.toString('base64');
  assert.equal((await cardSignIn(key, newCert)).userId, p.userId);
  clock.advanceDays(-(730 - 60));
});

test(`[${backend}] expiry warnings go out at 90, 30 and 7 days, each once`, async () => {
  const p = await newPerson();
  await issueCard(p.userId);
  const mine = () => sent.filter((m) => m.userId === p.userId).map((m) => m.template);
  sent.length = 0;
  clock.advanceDays(730 - 89);
  await delivering(sendExpiryWarnings(ctx(), outbox));
  await delivering(sendExpiryWarnings(ctx(), outbox));
  assert.deepEqual(mine(), ['card.expiry_warning.90']);
  clock.advanceDays(60);
  await delivering(sendExpiryWarnings(ctx(), outbox));
  clock.advanceDays(23);
  await delivering(sendExpiryWarnings(ctx(), outbox));
  assert.deepEqual(mine(), ['card.expiry_warning.90', 'card.expiry_warning.30', 'card.expiry_warning.7']);
  clock.advanceDays(-(730 - 89 + 60 + 23));
});

test(`[${backend}] TOTP: enrolment, sign-in at AAL2, replay refused, one step of drift accepted and two refused`, async () => {
  const p = await newPerson();
  const { totpId, secret } = await startTotpEnrolment(ctx(), { userId: p.userId, issuer: 'OpenCIS' });
  const totp = new OTPAuth.TOTP({
    secret: OTPAuth.Secret.fromBase32(secret),
    digits: 6,
    period: 30,
    algorithm: 'SHA1',
  });
  const at = (offsetSteps: number) => totp.generate({ timestamp: clock.now().getTime() + offsetSteps * 30_000 });
  assert.equal(
    await codeOf(confirmTotpEnrolment(ctx(), { userId: p.userId, totpId, code: '12345', ip: null })),
    'totp.invalid_code',
  );
  await confirmTotpEnrolment(ctx(), { userId: p.userId, totpId, code: at(0), ip: null });
  clock.advanceDays(60 / 86_400); // next step
  const ok = await signInWithTotp(ctx(), { userId: p.userId, code: at(0), ip: '10.2.0.1' });
  assert.deepEqual({ aal: ok.aal, amr: ok.amr }, { aal: 2, amr: ['TOTP'] });
  assert.equal(
    await codeOf(signInWithTotp(ctx(), { userId: p.userId, code: at(0), ip: '10.2.0.1' })),
    'auth.failed',
    'replay',
  );
  assert.equal(
    await codeOf(signInWithTotp(ctx(), { userId: p.userId, code: at(-1), ip: '10.2.0.1' })),
    'auth.failed',
    'older step',
  );
  clock.advanceDays(90 / 86_400);
  assert.equal(
    await codeOf(signInWithTotp(ctx(), { userId: p.userId, code: at(2), ip: '10.2.0.1' })),
    'auth.failed',
    'two steps ahead',
  );
  assert.equal(
    (await signInWithTotp(ctx(), { userId: p.userId, code: at(1), ip: '10.2.0.1' })).aal,
    2,
    'one step ahead',
  );
});

test(`[${backend}] TOTP guessing locks the person (not everyone on the IP) after 5 failures`, async () => {
  const p = await newPerson();
  const other = await newPerson();
  const results: string[] = [];
  for (let i = 0; i < 6; i++)
    results.push(await codeOf(signInWithTotp(ctx(), { userId: p.userId, code: String(100000 + i), ip: '10.3.0.1' })));
  assert.deepEqual(results, [...Array(5).fill('auth.failed'), 'auth.rate_limited']);
  assert.equal(
    await codeOf(signInWithTotp(ctx(), { userId: other.userId, code: '000000', ip: '10.3.0.1' })),
    'auth.failed',
  );
  for (const bad of [
    { userId: 'x', code: '123456' },
    { userId: p.userId, code: 'abcdef' },
    { userId: null, code: null },
  ]) {
    assert.ok(
      ['auth.failed', 'auth.rate_limited'].includes(await codeOf(signInWithTotp(ctx(), { ...bad, ip: '10.4.0.1' }))),
    );
  }
});

test(`[${backend}] sessions end after the NIST limits of their level`, async () => {
  const p = await newPerson();
  const { token } = await unitOfWork(t.db)((tx) =>
    startSession(tx, ctx(), { userId: p.userId, aal: 3, amr: ['SMARTCARD'], authenticatorId: 'card:x' }, null, {
      ip: null,
      userAgent: null,
    }),
  );
  clock.advanceDays(14 / 1440);
  assert.ok(await currentSession(t.repos, token, clock.now()));
  clock.advanceDays(14 / 1440);
  assert.ok(await currentSession(t.repos, token, clock.now()), 'activity 14 minutes ago');
  clock.advanceDays(16 / 1440);
  assert.equal(await currentSession(t.repos, token, clock.now()), null, '16 minutes idle at AAL3');
});

test(`[${backend}] the audit chain verifies after all of it`, async () => {
  const res = await verifyAuditChain(t.repos, testSealer.auditKeys);
  assert.ok(res.ok, JSON.stringify(res));
});
