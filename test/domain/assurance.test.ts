import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sessionExpiry, webauthnCredentialAal } from '../../src/domain/credentials/assurance.ts';
import { passcodeProblem } from '../../src/domain/credentials/passcode.ts';

const at = new Date('2026-11-26T08:00:00Z');
const later = (ms: number) => new Date(at.getTime() + ms);

test('an AAL3 session ends after 15 minutes idle or 12 hours in all', () => {
  assert.equal(sessionExpiry({ aal: 3, authenticatedAt: at, lastSeenAt: at }, later(14 * 60_000)), 'ok');
  assert.equal(sessionExpiry({ aal: 3, authenticatedAt: at, lastSeenAt: at }, later(15 * 60_000)), 'idle');
  assert.equal(
    sessionExpiry({ aal: 3, authenticatedAt: at, lastSeenAt: later(12 * 3_600_000 - 60_000) }, later(12 * 3_600_000)),
    'max_age',
  );
});

test('an AAL2 session ends after 1 hour idle or 24 hours in all', () => {
  assert.equal(sessionExpiry({ aal: 2, authenticatedAt: at, lastSeenAt: at }, later(59 * 60_000)), 'ok');
  assert.equal(sessionExpiry({ aal: 2, authenticatedAt: at, lastSeenAt: at }, later(60 * 60_000)), 'idle');
  assert.equal(
    sessionExpiry({ aal: 2, authenticatedAt: at, lastSeenAt: later(24 * 3_600_000 - 1) }, later(24 * 3_600_000)),
    'max_age',
  );
});

test('synced passkeys are never AAL3; device-bound keys are AAL3 only with trusted attestation', () => {
  assert.equal(webauthnCredentialAal({ backupEligible: true, userVerified: true, attestationTrusted: true }), 2);
  assert.equal(webauthnCredentialAal({ backupEligible: false, userVerified: true, attestationTrusted: true }), 3);
  assert.equal(webauthnCredentialAal({ backupEligible: false, userVerified: true, attestationTrusted: false }), 2);
  assert.equal(webauthnCredentialAal({ backupEligible: false, userVerified: false, attestationTrusted: true }), 1);
});

test('passcodes are 6–8 digits and not trivially guessable', () => {
  for (const ok of ['583920', '4829157', '90817263']) assert.equal(passcodeProblem(ok), null, ok);
  for (const weak of [
    '000000',
    '111111',
    '123456',
    '654321',
    '12345678',
    '987654',
    '121212',
    '123123',
    '890123',
    '12341234',
  ]) {
    assert.equal(passcodeProblem(weak), 'too_simple', weak);
  }
  for (const bad of ['12345', '123456789', ''])
    assert.equal(passcodeProblem(bad), bad === '' ? 'not_digits' : 'wrong_length', bad);
  for (const bad of ['12a456', '١٢٣٤٥٦', '12 3456', '-12345']) assert.equal(passcodeProblem(bad), 'not_digits', bad);
});
