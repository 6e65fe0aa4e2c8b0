import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Aal } from '../../src/domain/credentials/assurance.ts';
import { AppError } from '../../src/domain/errors.ts';
import { registerPerson } from '../../src/services/people.ts';
import {
  finishWebauthnRegistration,
  type RelyingPartyConfig,
  startWebauthnRegistration,
  webauthnCredentialsOf,
} from '../../src/services/webauthn.ts';
import { TestClock, testContext } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';
import { databaseDigest, REFUSAL_TABLES } from '../support/digest.ts';
import {
  type AttestationCertificateOptions,
  createPackedAttestation,
  SoftwareAuthenticator,
} from '../support/webauthn-authenticator.ts';

/**
 * The attestation policy that decides AAL3 (DOMAIN §6: a FIDO2 key is AAL3 only with an attestation from an allowed
 * list), attacked (issue 15, acceptance 4). Already covered in webauthn.test.ts and not repeated: 'none' and self
 * attestation, a root the service does not trust, an AAGUID off the list, synced passkeys, a forged attestation
 * signature, origin / RP ID / UV / UP / type / challenge forgeries, counters that do not increase, replayed challenges.
 *
 * Here: a chain through an "intermediate" that is no CA; and an expired attestation certificate judged by its expiry
 * — each case has a control that differs from it in that one respect and reaches AAL3, so the refusal is proven to
 * come from the property under test, not from a clock or another accident. @simplewebauthn checks the leaf's dates
 * against the machine's clock; OpenCIS's own trust check judges the whole chain at the service's clock.
 */
const ORIGIN = 'http://localhost:3000';
const AAGUID = '6d44ba9b-f6ec-2e49-b930-0c8fe920cb73';
const trusted: X509Certificate[] = [];
const rp: RelyingPartyConfig = {
  rpId: 'localhost',
  rpName: 'OpenCIS',
  origin: ORIGIN,
  aal3Aaguids: new Set([AAGUID]),
  attestationRoots: { roots: () => trusted },
};
const DAY = 86_400_000;

let t: TestDatabase;
let n = 0;

before(async () => {
  t = await createTestDatabase();
});
after(() => t.close());

async function newPerson(clock: TestClock) {
  n++;
  return registerPerson(testContext(t.db, { clock }), {
    givenName: `Attested${n}`,
    familyName: 'Keyholder',
    dateOfBirth: '1981-02-03',
    niNumber: `JK${String(600000 + n)}D`,
    identityAssuranceLevel: 3,
  });
}

/** Registers a key with a packed attestation made from `options` (its root trusted) at the service time `clock`. */
async function registerWith(options: AttestationCertificateOptions, clock: TestClock): Promise<Aal | string> {
  const attestation = await createPackedAttestation(options);
  trusted.push(new X509Certificate(attestation.rootPem));
  const ctx = testContext(t.db, { clock });
  const p = await newPerson(clock);
  const { challengeId, options: creation } = await startWebauthnRegistration(ctx, rp, {
    userId: p.userId,
    kind: 'security_key',
  });
  const response = new SoftwareAuthenticator({ aaguid: AAGUID, attestation }).register(creation, ORIGIN);
  const digest = await databaseDigest(t.db, [...REFUSAL_TABLES, 'auth_challenges']);
  try {
    return (await finishWebauthnRegistration(ctx, rp, { userId: p.userId, challengeId, response, callerAal: 3 })).aal;
  } catch (err) {
    assert.ok(err instanceof AppError, String(err));
    // A refused registration stores nothing.
    assert.deepEqual(await webauthnCredentialsOf(ctx, p.userId), []);
    assert.equal(await databaseDigest(t.db, [...REFUSAL_TABLES, 'auth_challenges']), digest);
    return err.code;
  }
}

test(`[${backend}] a chain through an intermediate that is no CA is not a trusted attestation (AAL2); through a CA it is (AAL3)`, async () => {
  const clock = new TestClock(new Date());
  assert.equal(await registerWith({ aaguid: AAGUID, intermediate: { ca: true } }, clock), 3, 'control');
  // An end-entity certificate of a trusted manufacturer used to sign an attestation certificate of one's own making:
  // RFC 5280 §6.1.4 (k) — only a CA may issue certificates.
  assert.equal(await registerWith({ aaguid: AAGUID, intermediate: { ca: false } }, clock), 2);
});

test(`[${backend}] an expired attestation certificate never reaches AAL3 — judged by its expiry, whatever the clocks`, async () => {
  const real = Date.now();
  // The service's clock a month ahead of the machine's, so the two checks can be told apart.
  const service = new TestClock(new Date(real + 30 * DAY));
  const from = new Date(real - 10 * 365 * DAY);
  // Control: in date at both clocks → AAL3.
  assert.equal(
    await registerWith({ aaguid: AAGUID, notBefore: from, notAfter: new Date(real + 365 * DAY) }, service),
    3,
  );
  // In date by the machine's clock, expired by the service's (it expired ten days ago, service time): OpenCIS's own
  // check refuses the trust; the key is still a good AAL2 authenticator.
  assert.equal(
    await registerWith({ aaguid: AAGUID, notBefore: from, notAfter: new Date(real + 20 * DAY) }, service),
    2,
  );
  // Expired at both clocks: the library refuses the attestation outright — and no key is stored.
  assert.equal(
    await registerWith({ aaguid: AAGUID, notBefore: from, notAfter: new Date(real - DAY) }, service),
    'webauthn.verification_failed',
  );
});
