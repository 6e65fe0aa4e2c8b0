import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import type { Aal } from '../../src/domain/credentials/assurance.ts';
import { AppError } from '../../src/domain/errors.ts';
import { verifyAuditChain } from '../../src/services/audit-verify.ts';
import { CHALLENGE_TTL_MS } from '../../src/services/challenges.ts';
import { createEnrolmentInvitation } from '../../src/services/enrolment.ts';
import { changePersonStatus, registerPerson } from '../../src/services/people.ts';
import { startSession } from '../../src/services/sessions.ts';
import {
  finishWebauthnAuthentication,
  finishWebauthnRegistration,
  type RelyingPartyConfig,
  removeWebauthnCredential,
  startWebauthnAuthentication,
  startWebauthnRegistration,
  type WebauthnKind,
  webauthnCredentialsOf,
} from '../../src/services/webauthn.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { TestClock, testContext, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';
import {
  type AuthenticateOverrides,
  clientDataJSON,
  createPackedAttestation,
  FLAG,
  newEs256Key,
  type PackedAttestation,
  type RegisterOverrides,
  SoftwareAuthenticator,
} from '../support/webauthn-authenticator.ts';

const ORIGIN = 'http://localhost:3000';
/** An authenticator model on the AAL3 allow list, and one that is not. */
const ALLOWED_AAGUID = '2fc0579f-8113-47ea-b116-bb5a8db9202a';
const OTHER_AAGUID = 'ee882879-721c-4913-9775-3dfcce97072a';

/** The manufacturer roots the service trusts; each test attestation's root is added when the test means to trust it. */
const trustedRoots: X509Certificate[] = [];
const trust = (att: PackedAttestation) => trustedRoots.push(new X509Certificate(att.rootPem));
const rootsFile = join(mkdtempSync(join(tmpdir(), 'opencis-webauthn-roots-')), 'roots.pem');

const rp: RelyingPartyConfig = {
  rpId: 'localhost',
  rpName: 'OpenCIS',
  origin: ORIGIN,
  aal3Aaguids: new Set([ALLOWED_AAGUID]),
  attestationRoots: { roots: () => trustedRoots },
};

let t: TestDatabase;
let app: FastifyInstance;
const clock = new TestClock(new Date('2026-11-26T09:00:00Z'));
const ctx = () => testContext(t.db, { clock });
let allowedAttestation: PackedAttestation;
let otherAttestation: PackedAttestation;
let n = 0;

before(async () => {
  t = await createTestDatabase();
  allowedAttestation = await createPackedAttestation({ aaguid: ALLOWED_AAGUID });
  otherAttestation = await createPackedAttestation({ aaguid: OTHER_AAGUID });
  trust(allowedAttestation);
  trust(otherAttestation);
  writeFileSync(rootsFile, allowedAttestation.rootPem + otherAttestation.rootPem);
  app = await buildApp({
    config: loadConfig({
      PORT: '3000',
      PUBLIC_URL: ORIGIN,
      WEBAUTHN_AAL3_AAGUIDS: ALLOWED_AAGUID.toUpperCase(),
      WEBAUTHN_ATTESTATION_ROOTS: rootsFile,
    }),
    db: t.db,
    sealer: testSealer,
    clock,
    logger: false,
  });
});
after(async () => {
  await app.close();
  await t.close();
});

async function newPerson() {
  n++;
  return registerPerson(ctx(), {
    givenName: `Key${n}`,
    familyName: 'Holder',
    dateOfBirth: '1980-02-03',
    niNumber: `JK${String(300000 + n)}B`,
    email: `keyholder${n}@example.nhs.uk`,
    identityAssuranceLevel: 3,
  });
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AppError, `not an AppError: ${String(e)}`);
    return e.code;
  }
  return 'no error';
}

async function headSeq(): Promise<number> {
  const { rows } = await t.db.query<{ seq: string }>('SELECT coalesce(max(seq), 0) AS seq FROM audit_events');
  return Number(rows[0]!.seq);
}

interface AuditRow {
  action: string;
  target_id: string | null;
  reason: string | null;
  after: unknown;
}

async function auditSince(seq: number): Promise<AuditRow[]> {
  const { rows } = await t.db.query<AuditRow>(
    'SELECT action, target_id, reason, after FROM audit_events WHERE seq > $1 ORDER BY seq',
    [seq],
  );
  return rows;
}

async function credentialRow(credentialId: string) {
  const { rows } = await t.db.query<{ sign_count: string; clone_warning: boolean; status: string; aal: number }>(
    'SELECT sign_count, clone_warning, status, aal FROM webauthn_credentials WHERE credential_id = $1',
    [credentialId],
  );
  return rows[0]!;
}

/** Options from the service, the authenticator's answer, and the service's verdict. */
async function register(
  userId: string,
  auth: SoftwareAuthenticator,
  opts: { kind?: WebauthnKind; callerAal?: Aal; overrides?: RegisterOverrides; origin?: string } = {},
) {
  const { challengeId, options } = await startWebauthnRegistration(ctx(), rp, {
    userId,
    kind: opts.kind ?? 'security_key',
  });
  const response = auth.register(options, opts.origin ?? ORIGIN, opts.overrides);
  return finishWebauthnRegistration(ctx(), rp, {
    userId,
    challengeId,
    response,
    callerAal: opts.callerAal ?? 2,
  });
}

async function signIn(auth: SoftwareAuthenticator, overrides: AuthenticateOverrides = {}, userId?: string) {
  const { challengeId, options } = await startWebauthnAuthentication(ctx(), rp, userId ? { userId } : {});
  const response = auth.authenticate(options, ORIGIN, overrides);
  return finishWebauthnAuthentication(ctx(), rp, { challengeId, response });
}

const passkeyProvider = () => new SoftwareAuthenticator({ backupEligible: true, counter: 'zero' });
const plainKey = (aaguid = ALLOWED_AAGUID) => new SoftwareAuthenticator({ aaguid });
const allowedKey = () => new SoftwareAuthenticator({ aaguid: ALLOWED_AAGUID, attestation: allowedAttestation });

// ---------------------------------------------------------------------------------------------------------------
// Registration and the level each credential earns

test(`[${backend}] a synced (backup-eligible) passkey registers at AAL2 as kind passkey`, async () => {
  const p = await newPerson();
  const seq = await headSeq();
  const auth = passkeyProvider();
  const cred = await register(p.userId, auth, { kind: 'passkey' });
  assert.equal(cred.kind, 'passkey');
  assert.equal(cred.aal, 2);
  assert.equal(cred.backupEligible, true);
  assert.equal(cred.userId, p.userId);
  assert.equal(cred.credentialId, auth.credentials[0]!.id);
  const events = await auditSince(seq);
  assert.deepEqual(
    events.map((e) => [e.action, e.target_id]),
    [['authenticator.webauthn_registered', p.userId]],
  );
  assert.deepEqual(
    (await webauthnCredentialsOf(ctx(), p.userId)).map((c) => c.credentialId),
    [cred.credentialId],
  );
});

test(`[${backend}] a synced passkey stays AAL2 even with a trusted attestation on the allow list`, async () => {
  const p = await newPerson();
  const auth = new SoftwareAuthenticator({
    aaguid: ALLOWED_AAGUID,
    attestation: allowedAttestation,
    backupEligible: true,
  });
  const cred = await register(p.userId, auth, { kind: 'security_key', callerAal: 3 });
  assert.equal(cred.aal, 2);
  assert.equal(cred.kind, 'passkey', 'a backup-eligible key is recorded as a passkey whatever was declared');
});

test(`[${backend}] a device-bound key with attestation 'none' is AAL2, even if its AAGUID is on the allow list`, async () => {
  const p = await newPerson();
  const cred = await register(p.userId, plainKey(ALLOWED_AAGUID), { kind: 'security_key', callerAal: 3 });
  assert.equal(cred.aal, 2);
  assert.equal(cred.kind, 'security_key');
  assert.equal(cred.backupEligible, false);
  assert.equal(cred.aaguid, ALLOWED_AAGUID);
  // declared as a passkey but device-bound: recorded as a security key
  const q = await newPerson();
  const declaredPasskey = await register(q.userId, plainKey(), { kind: 'passkey' });
  assert.equal(declaredPasskey.kind, 'security_key');
  assert.equal(declaredPasskey.aal, 2);
});

test(`[${backend}] packed attestation with an x5c chain: AAL3 when the AAGUID is allowed, AAL2 when not`, async () => {
  const p = await newPerson();
  const seq = await headSeq();
  const aal3 = await register(p.userId, allowedKey(), { kind: 'security_key', callerAal: 3 });
  assert.equal(aal3.aal, 3);
  assert.equal(aal3.kind, 'security_key');
  const registered = (await auditSince(seq)).find((e) => e.action === 'authenticator.webauthn_registered');
  assert.deepEqual(registered?.after, {
    credentialId: aal3.credentialId,
    kind: 'security_key',
    aal: 3,
    aaguid: ALLOWED_AAGUID,
    format: 'packed',
    backupEligible: false,
  });

  const q = await newPerson();
  const other = new SoftwareAuthenticator({ aaguid: OTHER_AAGUID, attestation: otherAttestation });
  const aal2 = await register(q.userId, other, { kind: 'security_key', callerAal: 3 });
  assert.equal(aal2.aal, 2);

  // a leaf without the AAGUID extension is acceptable too (the extension is optional)
  const r = await newPerson();
  const noExt = await createPackedAttestation({ aaguid: ALLOWED_AAGUID, aaguidExtension: false });
  trust(noExt);
  const withoutExt = await register(
    r.userId,
    new SoftwareAuthenticator({ aaguid: ALLOWED_AAGUID, attestation: noExt }),
    {
      callerAal: 3,
    },
  );
  assert.equal(withoutExt.aal, 3);

  // an attestation certificate anyone can make (a root the service does not trust) earns nothing, even with an
  // allowed AAGUID: a software authenticator cannot promote itself to AAL3
  const u = await newPerson();
  const selfMade = await createPackedAttestation({ aaguid: ALLOWED_AAGUID });
  const forged = await register(
    u.userId,
    new SoftwareAuthenticator({ aaguid: ALLOWED_AAGUID, attestation: selfMade }),
    {
      callerAal: 3,
    },
  );
  assert.equal(forged.aal, 2);

  // self attestation (packed without x5c) is not a trusted attestation
  const s = await newPerson();
  const self = await register(s.userId, plainKey(ALLOWED_AAGUID), { callerAal: 3, overrides: { fmt: 'packed' } });
  assert.equal(self.aal, 2);
});

test(`[${backend}] a Windows Hello (platform) key at AAL3 signs in with amr WHFB`, async () => {
  const p = await newPerson();
  const auth = new SoftwareAuthenticator({
    aaguid: ALLOWED_AAGUID,
    attestation: allowedAttestation,
    attachment: 'platform',
    transports: ['internal'],
  });
  const cred = await register(p.userId, auth, { kind: 'platform', callerAal: 3 });
  assert.deepEqual([cred.kind, cred.aal], ['platform', 3]);
  const result = await signIn(auth);
  assert.deepEqual([result.userId, result.aal, result.amr], [p.userId, 3, ['WHFB']]);
});

test(`[${backend}] adding an AAL3 authenticator from an AAL2 (or enrolment) session needs step-up; nothing is stored`, async () => {
  const p = await newPerson();
  assert.equal(
    await codeOf(register(p.userId, allowedKey(), { kind: 'security_key', callerAal: 2 })),
    'auth.step_up_required',
  );
  assert.equal(
    await codeOf(register(p.userId, allowedKey(), { kind: 'security_key', callerAal: 1 })),
    'auth.step_up_required',
  );
  assert.deepEqual(await webauthnCredentialsOf(ctx(), p.userId), []);
  // an AAL2 authenticator is fine from an AAL1 enrolment session
  const cred = await register(p.userId, passkeyProvider(), { kind: 'passkey', callerAal: 1 });
  assert.equal(cred.aal, 2);
});

test(`[${backend}] the same credential cannot be registered twice, nor taken over by another person`, async () => {
  const p = await newPerson();
  const auth = plainKey();
  const cred = await register(p.userId, auth);
  // the options exclude it, so a browser would refuse; a forged response trying anyway is refused by the server
  const again = await startWebauthnRegistration(ctx(), rp, { userId: p.userId, kind: 'security_key' });
  assert.deepEqual(
    again.options.excludeCredentials?.map((c) => c.id),
    [cred.credentialId],
  );
  assert.throws(() => auth.register(again.options, ORIGIN), /InvalidStateError/);
  const rawId = auth.credentials[0]!.rawId;
  assert.equal(
    await codeOf(register(p.userId, plainKey(), { overrides: { rawId, ignoreExclude: true } })),
    'webauthn.verification_failed',
  );
  const q = await newPerson();
  assert.equal(
    await codeOf(register(q.userId, plainKey(), { overrides: { rawId, ignoreExclude: true } })),
    'webauthn.verification_failed',
  );
  assert.deepEqual(await webauthnCredentialsOf(ctx(), q.userId), []);
  assert.equal((await signIn(auth)).userId, p.userId);
});

// ---------------------------------------------------------------------------------------------------------------
// Sign-in

test(`[${backend}] usernameless sign-in finds the person from the credential: passkey → AAL2 PASSKEY`, async () => {
  const p = await newPerson();
  const auth = passkeyProvider();
  const cred = await register(p.userId, auth, { kind: 'passkey' });
  const { options } = await startWebauthnAuthentication(ctx(), rp, {});
  assert.equal(options.allowCredentials, undefined, 'usernameless: no credential list');
  assert.equal(options.userVerification, 'required');
  assert.equal(options.rpId, 'localhost');
  const result = await signIn(auth);
  assert.deepEqual(result, {
    userId: p.userId,
    aal: 2,
    amr: ['PASSKEY'],
    authenticatorId: `webauthn:${cred.credentialId}`,
  });
  // a zero-counter passkey keeps working with counter 0
  assert.equal((await signIn(auth)).userId, p.userId);
  const [listed] = await webauthnCredentialsOf(ctx(), p.userId);
  assert.equal(listed?.lastUsedAt, clock.now().toISOString());
});

test(`[${backend}] usernameless sign-in with an AAL3 security key → AAL3 FIDO2; an AAL2 key → AAL2 PASSKEY`, async () => {
  const p = await newPerson();
  const key = allowedKey();
  await register(p.userId, key, { callerAal: 3 });
  assert.deepEqual(await signIn(key).then((r) => [r.userId, r.aal, r.amr]), [p.userId, 3, ['FIDO2']]);

  const q = await newPerson();
  const aal2Key = plainKey(OTHER_AAGUID);
  await register(q.userId, aal2Key);
  assert.deepEqual(await signIn(aal2Key).then((r) => [r.userId, r.aal, r.amr]), [q.userId, 2, ['PASSKEY']]);
});

test(`[${backend}] sign-in naming the person lists only their credentials`, async () => {
  const p = await newPerson();
  const a = plainKey();
  const b = passkeyProvider();
  const ca = await register(p.userId, a);
  const cb = await register(p.userId, b, { kind: 'passkey' });
  const { options } = await startWebauthnAuthentication(ctx(), rp, { userId: p.userId });
  assert.deepEqual(options.allowCredentials?.map((c) => c.id).sort(), [ca.credentialId, cb.credentialId].sort());
  assert.equal((await signIn(a, {}, p.userId)).userId, p.userId);
  assert.equal(await codeOf(startWebauthnAuthentication(ctx(), rp, { userId: '12345' })), 'person.invalid_user_id');
});

test(`[${backend}] a key that later reports itself backed up (synced) signs in at AAL2 at most`, async () => {
  const p = await newPerson();
  const key = allowedKey();
  await register(p.userId, key, { callerAal: 3 });
  const result = await signIn(key, { flags: FLAG.UP | FLAG.UV | FLAG.BE | FLAG.BS });
  assert.equal(result.aal, 2);
  assert.deepEqual(result.amr, ['PASSKEY']);
});

test(`[${backend}] the signature counter must increase: a repeated or lower value flags a clone and fails`, async () => {
  const p = await newPerson();
  const key = allowedKey();
  const cred = await register(p.userId, key, { callerAal: 3 });
  await signIn(key); // 1
  await signIn(key); // 2
  assert.equal((await credentialRow(cred.credentialId)).sign_count, '2');
  assert.equal((await credentialRow(cred.credentialId)).clone_warning, false);

  const seq = await headSeq();
  assert.equal(await codeOf(signIn(key, { signCount: 2 })), 'auth.failed');
  const row = await credentialRow(cred.credentialId);
  assert.equal(row.clone_warning, true);
  assert.equal(row.sign_count, '2', 'a refused assertion does not move the stored counter');
  const events = await auditSince(seq);
  const warning = events.find((e) => e.action === 'authenticator.clone_warning');
  assert.ok(warning, JSON.stringify(events));
  assert.equal(warning.target_id, p.userId);
  assert.deepEqual(warning.after, { credentialId: cred.credentialId, storedCounter: 2 });
  assert.equal(await codeOf(signIn(key, { signCount: 1 })), 'auth.failed');
  assert.equal(await codeOf(signIn(key, { signCount: 0 })), 'auth.failed', 'a counter falling back to 0 too');
  assert.equal((await webauthnCredentialsOf(ctx(), p.userId))[0]?.cloneWarning, true);
});

test(`[${backend}] two assertions carrying the same counter, sent at once, do not both succeed`, async () => {
  const p = await newPerson();
  const key = allowedKey();
  const cred = await register(p.userId, key, { callerAal: 3 });
  await signIn(key); // stored counter 1
  const a = await startWebauthnAuthentication(ctx(), rp, {});
  const b = await startWebauthnAuthentication(ctx(), rp, {});
  // a cloned key: both copies answer with counter 2
  const ra = key.authenticate(a.options, ORIGIN, { signCount: 2 });
  const rb = key.authenticate(b.options, ORIGIN, { signCount: 2 });
  const results = await Promise.allSettled([
    finishWebauthnAuthentication(ctx(), rp, { challengeId: a.challengeId, response: ra }),
    finishWebauthnAuthentication(ctx(), rp, { challengeId: b.challengeId, response: rb }),
  ]);
  const ok = results.filter((r) => r.status === 'fulfilled').length;
  assert.equal(ok, 1, `one sign-in with counter 2 succeeds, the other is refused: ${JSON.stringify(results)}`);
  const rejected = results.find((r) => r.status === 'rejected');
  assert.ok(rejected?.reason instanceof AppError && rejected.reason.code === 'auth.failed');
  const row = await credentialRow(cred.credentialId);
  assert.equal(row.sign_count, '2');
  assert.equal(row.clone_warning, true);
});

// ---------------------------------------------------------------------------------------------------------------
// Hostile input: registration

function omit(o: Record<string, unknown>, key: string): Record<string, unknown> {
  const copy = { ...o };
  delete copy[key];
  return copy;
}

type Mutation<T> = [label: string, mutate: (r: T) => unknown];

test(`[${backend}] malformed registration responses are refused before parsing`, async () => {
  const p = await newPerson();
  const { challengeId, options } = await startWebauthnRegistration(ctx(), rp, { userId: p.userId, kind: 'passkey' });
  const good = passkeyProvider().register(options, ORIGIN);
  const resp = (r: RegistrationResponseJSON, patch: Record<string, unknown>) => ({
    ...r,
    response: { ...r.response, ...patch },
  });
  const cases: Mutation<RegistrationResponseJSON>[] = [
    ['undefined', () => undefined],
    ['null', () => null],
    ['a string', () => 'public-key'],
    ['an array', (r) => [r]],
    ['missing id', (r) => omit({ ...r }, 'id')],
    ['id a number', (r) => ({ ...r, id: 12345 })],
    ['id too short', (r) => ({ ...r, id: 'abc', rawId: 'abc' })],
    ['id not base64url', (r) => ({ ...r, id: `${r.id}+/!`, rawId: `${r.id}+/!` })],
    ['type not public-key', (r) => ({ ...r, type: 'password' })],
    ['missing response', (r) => omit({ ...r }, 'response')],
    ['response a string', (r) => ({ ...r, response: 'x' })],
    ['missing clientDataJSON', (r) => ({ ...r, response: omit({ ...r.response }, 'clientDataJSON') })],
    ['missing attestationObject', (r) => ({ ...r, response: omit({ ...r.response }, 'attestationObject') })],
    ['attestationObject an object', (r) => resp(r, { attestationObject: { fmt: 'none' } })],
    ['clientDataJSON not base64url', (r) => resp(r, { clientDataJSON: '{"type":"webauthn.create"}' })],
    ['transports not an array', (r) => resp(r, { transports: 'usb' })],
    ['too many transports', (r) => resp(r, { transports: Array(50).fill('usb') })],
    ['publicKeyAlgorithm a string', (r) => resp(r, { publicKeyAlgorithm: '-7' })],
    ['extension results an array', (r) => ({ ...r, clientExtensionResults: [1] })],
    ['unknown attachment', (r) => ({ ...r, authenticatorAttachment: 'bluetooth' })],
    ['100 KB attestationObject', (r) => resp(r, { attestationObject: 'A'.repeat(100_000) })],
    ['100 KB clientDataJSON', (r) => resp(r, { clientDataJSON: 'A'.repeat(100_000) })],
    ['2 KB id', (r) => ({ ...r, id: 'A'.repeat(2_000), rawId: 'A'.repeat(2_000) })],
  ];
  for (const [label, mutate] of cases) {
    const code = await codeOf(
      finishWebauthnRegistration(ctx(), rp, { userId: p.userId, challengeId, response: mutate(good), callerAal: 2 }),
    );
    assert.equal(code, 'webauthn.verification_failed', label);
  }
  for (const bad of [undefined, null, 42, '', 'short', 'x'.repeat(65), "' OR 1=1 --", ['a'], { id: 1 }]) {
    const code = await codeOf(
      finishWebauthnRegistration(ctx(), rp, { userId: p.userId, challengeId: bad, response: good, callerAal: 2 }),
    );
    assert.equal(code, 'webauthn.challenge_invalid', JSON.stringify(bad));
  }
  assert.deepEqual(await webauthnCredentialsOf(ctx(), p.userId), []);
});

test(`[${backend}] forged registrations are refused and audited: origin, RP ID, type, UV, challenge, algorithm, attestation`, async () => {
  const p = await newPerson();
  const badOu = await createPackedAttestation({
    aaguid: ALLOWED_AAGUID,
    subject: 'C=GB, O=OpenCIS Test, OU=Something Else, CN=OpenCIS Test Key',
  });
  const caLeaf = await createPackedAttestation({ aaguid: ALLOWED_AAGUID, leafIsCa: true });
  const noCountry = await createPackedAttestation({
    aaguid: ALLOWED_AAGUID,
    subject: 'O=OpenCIS Test, OU=Authenticator Attestation, CN=OpenCIS Test Key',
  });
  const wrongAaguidExt = await createPackedAttestation({ aaguid: ALLOWED_AAGUID, aaguidExtension: OTHER_AAGUID });
  const expired = await createPackedAttestation({
    aaguid: ALLOWED_AAGUID,
    notBefore: new Date(Date.now() - 3 * 86_400_000),
    notAfter: new Date(Date.now() - 86_400_000),
  });
  const attested = (a: PackedAttestation) => new SoftwareAuthenticator({ aaguid: ALLOWED_AAGUID, attestation: a });
  const cases: [string, SoftwareAuthenticator, RegisterOverrides][] = [
    ['wrong origin', passkeyProvider(), { origin: 'https://evil.example' }],
    ['origin on another port', passkeyProvider(), { origin: 'http://localhost:3001' }],
    ['wrong RP ID', passkeyProvider(), { rpId: 'evil.example' }],
    ['clientData type webauthn.get', passkeyProvider(), { type: 'webauthn.get' }],
    ['no user verification', passkeyProvider(), { flags: FLAG.UP | FLAG.AT | FLAG.BE | FLAG.BS }],
    ['no user presence', passkeyProvider(), { flags: FLAG.UV | FLAG.AT }],
    ['no attested credential data', passkeyProvider(), { flags: FLAG.UP | FLAG.UV }],
    ['signed over another challenge', passkeyProvider(), { challenge: 'b3RoZXItY2hhbGxlbmdlLW90aGVyLWNoYWxsZW5nZQ' }],
    ['unsupported key algorithm', passkeyProvider(), { alg: -8 }],
    ['attestation OU not "Authenticator Attestation"', attested(badOu), {}],
    ['attestation leaf is a CA', attested(caLeaf), {}],
    ['attestation subject without C', attested(noCountry), {}],
    ['attestation AAGUID extension differs', attested(wrongAaguidExt), {}],
    ['attestation certificate expired', attested(expired), {}],
    ['attestation signed by another key', allowedKey(), { attestationKey: newEs256Key().privateKey }],
  ];
  for (const [label, auth, overrides] of cases) {
    const seq = await headSeq();
    const code = await codeOf(register(p.userId, auth, { kind: 'passkey', callerAal: 3, overrides }));
    assert.equal(code, 'webauthn.verification_failed', label);
    const events = await auditSince(seq);
    assert.deepEqual(
      events.map((e) => [e.action, e.target_id]),
      [['webauthn.registration_refused', p.userId]],
      label,
    );
  }
  assert.deepEqual(await webauthnCredentialsOf(ctx(), p.userId), []);
});

test(`[${backend}] registration challenges: single use, 5 minutes, bound to the person and the ceremony`, async () => {
  const p = await newPerson();
  const q = await newPerson();
  const finish = (userId: string, challengeId: string, response: unknown) =>
    finishWebauthnRegistration(ctx(), rp, { userId, challengeId, response, callerAal: 2 });

  // replay: the second use of the same challenge
  const first = await startWebauthnRegistration(ctx(), rp, { userId: p.userId, kind: 'passkey' });
  const auth = passkeyProvider();
  await finish(p.userId, first.challengeId, auth.register(first.options, ORIGIN));
  assert.equal(
    await codeOf(finish(p.userId, first.challengeId, passkeyProvider().register(first.options, ORIGIN))),
    'webauthn.challenge_invalid',
  );

  // a failed attempt uses the challenge up too
  const failed = await startWebauthnRegistration(ctx(), rp, { userId: p.userId, kind: 'passkey' });
  const bad = passkeyProvider().register(failed.options, 'https://evil.example');
  assert.equal(await codeOf(finish(p.userId, failed.challengeId, bad)), 'webauthn.verification_failed');
  const retry = passkeyProvider().register(failed.options, ORIGIN);
  assert.equal(await codeOf(finish(p.userId, failed.challengeId, retry)), 'webauthn.challenge_invalid');

  // expired
  const old = await startWebauthnRegistration(ctx(), rp, { userId: p.userId, kind: 'passkey' });
  clock.set(new Date(clock.now().getTime() + CHALLENGE_TTL_MS + 1_000));
  assert.equal(
    await codeOf(finish(p.userId, old.challengeId, passkeyProvider().register(old.options, ORIGIN))),
    'webauthn.challenge_invalid',
  );

  // issued to another person
  const forQ = await startWebauthnRegistration(ctx(), rp, { userId: q.userId, kind: 'passkey' });
  assert.equal(
    await codeOf(finish(p.userId, forQ.challengeId, passkeyProvider().register(forQ.options, ORIGIN))),
    'webauthn.challenge_invalid',
  );

  // from a sign-in ceremony
  const signin = await startWebauthnAuthentication(ctx(), rp, {});
  const asCreation = { challenge: signin.options.challenge, rp: { id: 'localhost' }, user: { id: 'eA' } };
  assert.equal(
    await codeOf(finish(p.userId, signin.challengeId, passkeyProvider().register(asCreation, ORIGIN))),
    'webauthn.challenge_invalid',
  );
  assert.equal((await webauthnCredentialsOf(ctx(), p.userId)).length, 1);
  assert.equal((await webauthnCredentialsOf(ctx(), q.userId)).length, 0);
});

test(`[${backend}] unknown and suspended people cannot register`, async () => {
  assert.equal(
    await codeOf(startWebauthnRegistration(ctx(), rp, { userId: '999999999999', kind: 'passkey' })),
    'person.not_found',
  );
  const p = await newPerson();
  await changePersonStatus(ctx(), p.userId, 'suspended', 'test');
  assert.equal(
    await codeOf(startWebauthnRegistration(ctx(), rp, { userId: p.userId, kind: 'passkey' })),
    'person.not_found',
  );
});

test(`[${backend}] a person suspended between the options and the response cannot finish registering`, async () => {
  const p = await newPerson();
  const { challengeId, options } = await startWebauthnRegistration(ctx(), rp, { userId: p.userId, kind: 'passkey' });
  await changePersonStatus(ctx(), p.userId, 'suspended', 'test');
  const response = passkeyProvider().register(options, ORIGIN);
  const code = await codeOf(
    finishWebauthnRegistration(ctx(), rp, { userId: p.userId, challengeId, response, callerAal: 2 }),
  );
  assert.equal(code, 'webauthn.verification_failed');
  const { rows } = await t.db.query('SELECT 1 FROM webauthn_credentials WHERE user_id = $1', [p.userId]);
  assert.equal(rows.length, 0);
});

// ---------------------------------------------------------------------------------------------------------------
// Hostile input: sign-in

test(`[${backend}] malformed sign-in responses are refused before parsing`, async () => {
  const p = await newPerson();
  const auth = passkeyProvider();
  await register(p.userId, auth, { kind: 'passkey' });
  const { challengeId, options } = await startWebauthnAuthentication(ctx(), rp, {});
  const good = auth.authenticate(options, ORIGIN);
  const resp = (r: AuthenticationResponseJSON, patch: Record<string, unknown>) => ({
    ...r,
    response: { ...r.response, ...patch },
  });
  const cases: Mutation<AuthenticationResponseJSON>[] = [
    ['undefined', () => undefined],
    ['null', () => null],
    ['a number', () => 7],
    ['an array', (r) => [r]],
    ['missing id', (r) => omit({ ...r }, 'id')],
    ['missing rawId', (r) => omit({ ...r }, 'rawId')],
    ['id an object', (r) => ({ ...r, id: { $ne: null } })],
    ['id not base64url', (r) => ({ ...r, id: "' OR '1'='1' --xx", rawId: "' OR '1'='1' --xx" })],
    ['type missing', (r) => omit({ ...r }, 'type')],
    ['missing response', (r) => omit({ ...r }, 'response')],
    ['response null', (r) => ({ ...r, response: null })],
    ['missing signature', (r) => ({ ...r, response: omit({ ...r.response }, 'signature') })],
    ['missing authenticatorData', (r) => ({ ...r, response: omit({ ...r.response }, 'authenticatorData') })],
    ['missing clientDataJSON', (r) => ({ ...r, response: omit({ ...r.response }, 'clientDataJSON') })],
    ['signature a number', (r) => resp(r, { signature: 3045 })],
    ['signature not base64url', (r) => resp(r, { signature: 'MEUCIQ+/==abc' })],
    ['authenticatorData an array', (r) => resp(r, { authenticatorData: [1, 2, 3] })],
    ['userHandle a number', (r) => resp(r, { userHandle: 123456789012 })],
    ['userHandle not base64url', (r) => resp(r, { userHandle: '<script>' })],
    ['clientDataJSON with spaces', (r) => resp(r, { clientDataJSON: 'eyJ0 eXBl' })],
    ['100 KB signature', (r) => resp(r, { signature: 'A'.repeat(100_000) })],
    ['100 KB authenticatorData', (r) => resp(r, { authenticatorData: 'A'.repeat(100_000) })],
    ['100 KB userHandle', (r) => resp(r, { userHandle: 'A'.repeat(100_000) })],
    ['extension results a string', (r) => ({ ...r, clientExtensionResults: 'x' })],
  ];
  for (const [label, mutate] of cases) {
    const code = await codeOf(finishWebauthnAuthentication(ctx(), rp, { challengeId, response: mutate(good) }));
    assert.equal(code, 'webauthn.verification_failed', label);
  }
  for (const bad of [undefined, null, 0, '', 'A'.repeat(9), 'A'.repeat(65), '../../etc/passwd', { challengeId }]) {
    const code = await codeOf(finishWebauthnAuthentication(ctx(), rp, { challengeId: bad, response: good }));
    assert.equal(code, 'webauthn.challenge_invalid', JSON.stringify(bad));
  }
  // none of it used the challenge up: the genuine response still signs in
  assert.equal((await finishWebauthnAuthentication(ctx(), rp, { challengeId, response: good })).userId, p.userId);
});

test(`[${backend}] forged assertions fail with auth.failed and a signin.failed audit event`, async () => {
  const p = await newPerson();
  const key = allowedKey();
  const cred = await register(p.userId, key, { callerAal: 3 });
  const other = await newPerson();
  const otherKey = passkeyProvider();
  await register(other.userId, otherKey, { kind: 'passkey' });
  const otherHandle = otherKey.credentials[0]!.userHandle;
  const cases: [string, AuthenticateOverrides][] = [
    ['wrong origin', { origin: 'https://evil.example' }],
    ['wrong RP ID', { rpId: 'evil.example' }],
    ['clientData type webauthn.create', { type: 'webauthn.create' }],
    ['no user verification', { flags: FLAG.UP }],
    ['no user presence', { flags: FLAG.UV }],
    ['signed over another challenge', { challenge: 'b3RoZXItY2hhbGxlbmdlLW90aGVyLWNoYWxsZW5nZQ' }],
    ['signature by the wrong key', { privateKey: newEs256Key().privateKey }],
    ['signature by another registered key', { privateKey: otherKey.credentials[0]!.privateKey }],
    ['cross-origin iframe', { crossOrigin: true, clientData: { topOrigin: 'https://evil.example' } }],
    ['topOrigin without crossOrigin', { clientData: { topOrigin: 'https://evil.example' } }],
    ['user handle of another person', { userHandle: otherHandle }],
  ];
  for (const [label, overrides] of cases) {
    const seq = await headSeq();
    assert.equal(await codeOf(signIn(key, { ...overrides, keepCounter: true })), 'auth.failed', label);
    const events = await auditSince(seq);
    assert.deepEqual(
      events.map((e) => [e.action, e.target_id]),
      [['signin.failed', p.userId]],
      label,
    );
  }
  // structurally valid but meaningless bytes
  const raw: [string, (r: AuthenticationResponseJSON) => AuthenticationResponseJSON][] = [
    ['truncated authenticatorData', (r) => ({ ...r, response: { ...r.response, authenticatorData: 'AAAA' } })],
    [
      'clientDataJSON not JSON',
      (r) => ({ ...r, response: { ...r.response, clientDataJSON: Buffer.from('not json').toString('base64url') } }),
    ],
    ['clientDataJSON null', (r) => ({ ...r, response: { ...r.response, clientDataJSON: clientDataJSON({}) } })],
    ['clientDataJSON the JSON null', (r) => ({ ...r, response: { ...r.response, clientDataJSON: 'bnVsbA' } })],
    ['signature not DER', (r) => ({ ...r, response: { ...r.response, signature: 'AAAAAAAA' } })],
    ['rawId differs from id', (r) => ({ ...r, rawId: `${r.rawId.slice(0, -2)}AA` })],
  ];
  for (const [label, forge] of raw) {
    const { challengeId, options } = await startWebauthnAuthentication(ctx(), rp, {});
    const response = forge(key.authenticate(options, ORIGIN, { keepCounter: true }));
    const seq = await headSeq();
    assert.equal(
      await codeOf(finishWebauthnAuthentication(ctx(), rp, { challengeId, response })),
      'auth.failed',
      label,
    );
    assert.deepEqual(
      (await auditSince(seq)).map((e) => e.action),
      ['signin.failed'],
      label,
    );
  }
  // after all of that the key still works, and none of it raised a clone warning
  assert.equal((await signIn(key)).userId, p.userId);
  assert.equal((await credentialRow(cred.credentialId)).clone_warning, false);
});

test(`[${backend}] a credential ID that does not exist, or was removed, fails sign-in`, async () => {
  const seq = await headSeq();
  const stranger = plainKey();
  stranger.register({ challenge: 'AAAAAAAAAAAAAAAAAAAAAA', rp: { id: 'localhost' }, user: { id: 'MTIz' } }, ORIGIN);
  assert.equal(await codeOf(signIn(stranger)), 'auth.failed');
  assert.deepEqual(
    (await auditSince(seq)).map((e) => [e.action, e.target_id, e.reason]),
    [['signin.failed', null, 'unknown or removed credential']],
  );

  const p = await newPerson();
  const key = passkeyProvider();
  const cred = await register(p.userId, key, { kind: 'passkey' });
  // claims an ID it does not hold the key for
  const victim = await newPerson();
  const victimKey = passkeyProvider();
  const victimCred = await register(victim.userId, victimKey, { kind: 'passkey' });
  assert.equal(
    await codeOf(signIn(key, { claimId: victimCred.credentialId, userHandle: victimKey.credentials[0]!.userHandle })),
    'auth.failed',
  );

  assert.equal(
    await codeOf(removeWebauthnCredential(ctx(), victim.userId, cred.credentialId)),
    'authenticator.not_found',
    "nobody removes another person's credential",
  );
  await removeWebauthnCredential(ctx(), p.userId, cred.credentialId);
  const removedSeq = await headSeq();
  assert.equal(await codeOf(signIn(key)), 'auth.failed');
  assert.deepEqual(
    (await auditSince(removedSeq)).map((e) => [e.action, e.target_id, e.reason]),
    [['signin.failed', p.userId, 'unknown or removed credential']],
  );
  assert.equal((await credentialRow(cred.credentialId)).status, 'removed');
});

test(`[${backend}] a suspended person cannot sign in with a valid key, and can again once reactivated`, async () => {
  const p = await newPerson();
  const key = allowedKey();
  await register(p.userId, key, { callerAal: 3 });
  await changePersonStatus(ctx(), p.userId, 'suspended', 'test');
  const seq = await headSeq();
  assert.equal(await codeOf(signIn(key)), 'auth.failed');
  assert.deepEqual(
    (await auditSince(seq)).map((e) => [e.action, e.target_id, e.reason]),
    [['signin.failed', p.userId, 'person suspended']],
  );
  await changePersonStatus(ctx(), p.userId, 'active', 'test');
  assert.equal((await signIn(key)).aal, 3);
});

test(`[${backend}] sign-in challenges: single use, 5 minutes, and only for sign-in`, async () => {
  const p = await newPerson();
  const key = passkeyProvider();
  await register(p.userId, key, { kind: 'passkey' });
  // replay of a whole successful assertion
  const { challengeId, options } = await startWebauthnAuthentication(ctx(), rp, {});
  const response = key.authenticate(options, ORIGIN);
  await finishWebauthnAuthentication(ctx(), rp, { challengeId, response });
  assert.equal(
    await codeOf(finishWebauthnAuthentication(ctx(), rp, { challengeId, response })),
    'webauthn.challenge_invalid',
  );
  // the same assertion against a fresh challenge
  const fresh = await startWebauthnAuthentication(ctx(), rp, {});
  assert.equal(
    await codeOf(finishWebauthnAuthentication(ctx(), rp, { challengeId: fresh.challengeId, response })),
    'auth.failed',
  );
  // a failed attempt uses the challenge up
  const once = await startWebauthnAuthentication(ctx(), rp, {});
  const wrong = key.authenticate(once.options, 'https://evil.example');
  assert.equal(
    await codeOf(finishWebauthnAuthentication(ctx(), rp, { challengeId: once.challengeId, response: wrong })),
    'auth.failed',
  );
  const right = key.authenticate(once.options, ORIGIN);
  assert.equal(
    await codeOf(finishWebauthnAuthentication(ctx(), rp, { challengeId: once.challengeId, response: right })),
    'webauthn.challenge_invalid',
  );
  // expired
  const old = await startWebauthnAuthentication(ctx(), rp, {});
  clock.set(new Date(clock.now().getTime() + CHALLENGE_TTL_MS + 1_000));
  assert.equal(
    await codeOf(
      finishWebauthnAuthentication(ctx(), rp, {
        challengeId: old.challengeId,
        response: key.authenticate(old.options, ORIGIN),
      }),
    ),
    'webauthn.challenge_invalid',
  );
  // just inside 5 minutes is fine
  const edge = await startWebauthnAuthentication(ctx(), rp, {});
  clock.set(new Date(clock.now().getTime() + CHALLENGE_TTL_MS - 1_000));
  assert.equal(
    (
      await finishWebauthnAuthentication(ctx(), rp, {
        challengeId: edge.challengeId,
        response: key.authenticate(edge.options, ORIGIN),
      })
    ).userId,
    p.userId,
  );
  // a registration challenge used for sign-in
  const reg = await startWebauthnRegistration(ctx(), rp, { userId: p.userId, kind: 'passkey' });
  assert.equal(
    await codeOf(
      finishWebauthnAuthentication(ctx(), rp, {
        challengeId: reg.challengeId,
        response: key.authenticate({ challenge: reg.options.challenge, rpId: 'localhost' }, ORIGIN),
      }),
    ),
    'webauthn.challenge_invalid',
  );
  // ... which it did not use up: it still registers
  const cred = await finishWebauthnRegistration(ctx(), rp, {
    userId: p.userId,
    challengeId: reg.challengeId,
    response: passkeyProvider().register(reg.options, ORIGIN),
    callerAal: 2,
  });
  assert.equal(cred.userId, p.userId);
});

// ---------------------------------------------------------------------------------------------------------------
// Through HTTP

interface Browser {
  cookies: Map<string, string>;
  csrf: string;
}

function cookieHeader(b: Browser): string {
  return [...b.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
}

function keepCookies(b: Browser, res: { cookies: { name: string; value: string }[] }) {
  for (const c of res.cookies) {
    if (c.value === '') b.cookies.delete(c.name);
    else b.cookies.set(c.name, c.value);
  }
}

/** A browser that has loaded a page: the CSRF cookie and the page's data-csrf token. */
async function openPage(url = '/signin'): Promise<Browser> {
  const res = await app.inject({ method: 'GET', url });
  assert.equal(res.statusCode, 200, res.body);
  const b: Browser = { cookies: new Map(), csrf: '' };
  keepCookies(b, res);
  assert.ok(b.cookies.get('opencis_csrf'), 'the page sets the CSRF cookie');
  const m = /data-csrf="([^"]+)"/.exec(res.body);
  assert.ok(m?.[1], 'the page carries a CSRF token');
  b.csrf = m[1];
  return b;
}

async function post(b: Browser, url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await app.inject({
    method: 'POST',
    url,
    headers: {
      'content-type': 'application/json',
      'csrf-token': b.csrf,
      cookie: cookieHeader(b),
      ...headers,
    },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
  keepCookies(b, res);
  return res;
}

function errorCode(res: { json(): unknown }): string {
  return (res.json() as { error: { code: string } }).error.code;
}

test(`[${backend}] HTTP: /signin/webauthn/options needs the CSRF cookie and a matching token`, async () => {
  const b = await openPage();
  const noToken = await app.inject({
    method: 'POST',
    url: '/signin/webauthn/options',
    headers: { 'content-type': 'application/json', cookie: cookieHeader(b) },
    payload: '{}',
  });
  assert.equal(noToken.statusCode, 403);
  assert.equal(errorCode(noToken), 'auth.csrf_invalid');

  const forged = await post(b, '/signin/webauthn/options', {}, { 'csrf-token': 'forged-token-value' });
  assert.equal(forged.statusCode, 403);
  assert.equal(errorCode(forged), 'auth.csrf_invalid');

  const other = await openPage();
  const crossed = await post(b, '/signin/webauthn/options', {}, { 'csrf-token': other.csrf });
  assert.equal(crossed.statusCode, 403, "another browser's token does not match this cookie");
  assert.equal(errorCode(crossed), 'auth.csrf_invalid');

  const noCookie = await app.inject({
    method: 'POST',
    url: '/signin/webauthn/options',
    headers: { 'content-type': 'application/json', 'csrf-token': b.csrf },
    payload: '{}',
  });
  assert.equal(noCookie.statusCode, 403);
  assert.equal(errorCode(noCookie), 'auth.csrf_invalid');

  const verify = await app.inject({
    method: 'POST',
    url: '/signin/webauthn/verify',
    headers: { 'content-type': 'application/json', cookie: cookieHeader(b) },
    payload: '{}',
  });
  assert.equal(verify.statusCode, 403);
  assert.equal(errorCode(verify), 'auth.csrf_invalid');

  const ok = await post(b, '/signin/webauthn/options', {});
  assert.equal(ok.statusCode, 200, ok.body);
  const body = ok.json() as { challengeId: string; options: { challenge: string; rpId: string } };
  assert.equal(typeof body.challengeId, 'string');
  assert.equal(body.options.rpId, 'localhost');
});

test(`[${backend}] HTTP: usernameless sign-in with a passkey starts an AAL2 session`, async () => {
  const p = await newPerson();
  const key = passkeyProvider();
  await register(p.userId, key, { kind: 'passkey' });
  const b = await openPage();
  const opts = await post(b, '/signin/webauthn/options', {});
  const { challengeId, options } = opts.json() as { challengeId: string; options: { challenge: string } };
  const res = await post(b, '/signin/webauthn/verify', {
    challengeId,
    response: key.authenticate(options, ORIGIN),
    return: '/account',
  });
  assert.equal(res.statusCode, 200, res.body);
  assert.deepEqual(res.json(), { redirect: '/account', aal: 2, amr: ['PASSKEY'] });
  assert.ok(b.cookies.get('opencis_session'));
  const account = await app.inject({ method: 'GET', url: '/account', headers: { cookie: cookieHeader(b) } });
  assert.equal(account.statusCode, 200);
  assert.match(account.body, new RegExp(p.userId));

  // the replayed request is refused with the catalogued code
  const again = await post(b, '/signin/webauthn/verify', { challengeId, response: key.authenticate(options, ORIGIN) });
  assert.equal(again.statusCode, 400);
  assert.equal(errorCode(again), 'webauthn.challenge_invalid');
});

test(`[${backend}] HTTP: oversized and malformed sign-in bodies get catalogued errors, never a crash`, async () => {
  const b = await openPage();
  const huge = await post(b, '/signin/webauthn/verify', {
    challengeId: 'A'.repeat(22),
    response: { id: 'x'.repeat(20 * 1024 * 1024) },
  });
  assert.equal(huge.statusCode, 413);
  assert.equal(errorCode(huge), 'request.too_large');

  const p = await newPerson();
  const key = passkeyProvider();
  await register(p.userId, key, { kind: 'passkey' });
  const { challengeId, options } = (await post(b, '/signin/webauthn/options', {})).json() as {
    challengeId: string;
    options: { challenge: string };
  };
  const good = key.authenticate(options, ORIGIN);
  const bigField = await post(b, '/signin/webauthn/verify', {
    challengeId,
    response: { ...good, response: { ...good.response, signature: 'A'.repeat(100 * 1024) } },
  });
  assert.equal(bigField.statusCode, 400);
  assert.equal(errorCode(bigField), 'webauthn.verification_failed');

  for (const body of [{}, { challengeId }, { challengeId, response: 'x' }, { challengeId: 5, response: good }, []]) {
    const res = await post(b, '/signin/webauthn/verify', body);
    assert.equal(res.statusCode, 400, JSON.stringify(body));
    assert.match(errorCode(res), /^(webauthn\.verification_failed|webauthn\.challenge_invalid|request\.invalid)$/);
  }
  const notJson = await post(b, '/signin/webauthn/verify', '{"challengeId":');
  assert.equal(notJson.statusCode, 400);
  assert.equal(errorCode(notJson), 'request.malformed_json');

  const forged = await post(b, '/signin/webauthn/verify', {
    challengeId,
    response: key.authenticate(options, 'https://evil.example'),
  });
  assert.equal(forged.statusCode, 401);
  assert.equal(errorCode(forged), 'auth.failed');
  assert.equal(b.cookies.get('opencis_session'), undefined);
});

test(`[${backend}] HTTP: a signed-in person adds a passkey at AAL2; an AAL3 key from that session needs step-up`, async () => {
  const p = await newPerson();
  const b = await openPage();
  const noSession = await post(b, '/account/webauthn/options', { kind: 'passkey' });
  assert.equal(noSession.statusCode, 401);
  assert.equal(errorCode(noSession), 'auth.required');

  const { token } = await unitOfWork(t.db)((tx) =>
    startSession(tx, ctx(), { userId: p.userId, aal: 2, amr: ['TOTP'], authenticatorId: 'totp:test' }, null, {
      ip: null,
      userAgent: null,
    }),
  );
  b.cookies.set('opencis_session', token);

  const o1 = (await post(b, '/account/webauthn/options', { kind: 'passkey' })).json() as {
    challengeId: string;
    options: { challenge: string; rp: { id: string }; user: { id: string } };
  };
  assert.equal(o1.options.rp.id, 'localhost');
  const added = await post(b, '/account/webauthn/verify', {
    challengeId: o1.challengeId,
    response: passkeyProvider().register(o1.options, ORIGIN),
    nickname: '  My phone  ',
  });
  assert.equal(added.statusCode, 200, added.body);
  const { credential } = added.json() as {
    credential: { aal: number; kind: string; nickname: string; userId: string };
  };
  assert.deepEqual(
    [credential.aal, credential.kind, credential.nickname, credential.userId],
    [2, 'passkey', 'My phone', p.userId],
  );

  const o2 = (await post(b, '/account/webauthn/options', { kind: 'security_key' })).json() as {
    challengeId: string;
    options: { challenge: string; rp: { id: string }; user: { id: string } };
  };
  const stepUp = await post(b, '/account/webauthn/verify', {
    challengeId: o2.challengeId,
    response: allowedKey().register(o2.options, ORIGIN),
  });
  assert.equal(stepUp.statusCode, 403);
  assert.equal(errorCode(stepUp), 'auth.step_up_required');
  assert.equal((await webauthnCredentialsOf(ctx(), p.userId)).length, 1);

  // a registration response for another ceremony's challenge
  const signin = (await post(b, '/signin/webauthn/options', {})).json() as { challengeId: string };
  const wrongKind = await post(b, '/account/webauthn/verify', {
    challengeId: signin.challengeId,
    response: passkeyProvider().register(o1.options, ORIGIN),
  });
  assert.equal(wrongKind.statusCode, 400);
  assert.equal(errorCode(wrongKind), 'webauthn.challenge_invalid');
});

test(`[${backend}] HTTP: an AAL3 enrolment invitation registers a security key and signs its holder in at AAL3`, async () => {
  const p = await newPerson();
  const token = await createEnrolmentInvitation(ctx(), { userId: p.userId, maxAal: 3 });
  const b = await openPage(`/enrol/invite?t=${token}`);
  const o = await post(b, '/enrol/invite/options', { token, kind: 'security_key' });
  assert.equal(o.statusCode, 200, o.body);
  const { challengeId, options } = o.json() as {
    challengeId: string;
    options: { challenge: string; rp: { id: string }; user: { id: string } };
  };
  const key = allowedKey();
  const res = await post(b, '/enrol/invite/verify', { token, challengeId, response: key.register(options, ORIGIN) });
  assert.equal(res.statusCode, 200, res.body);
  const body = res.json() as { credential: { aal: number; kind: string }; redirect: string };
  assert.deepEqual([body.credential.aal, body.credential.kind, body.redirect], [3, 'security_key', '/account']);
  assert.ok(b.cookies.get('opencis_session'));

  // the invitation is single use
  const reuse = await post(b, '/enrol/invite/options', { token, kind: 'security_key' });
  assert.equal(reuse.statusCode, 403);
  assert.equal(errorCode(reuse), 'card.grant_invalid');

  // and the key signs in at AAL3 through the sign-in page
  const s = await openPage();
  const so = (await post(s, '/signin/webauthn/options', {})).json() as {
    challengeId: string;
    options: { challenge: string };
  };
  const signedIn = await post(s, '/signin/webauthn/verify', {
    challengeId: so.challengeId,
    response: key.authenticate(so.options, ORIGIN),
  });
  assert.equal(signedIn.statusCode, 200, signedIn.body);
  assert.deepEqual(signedIn.json(), { redirect: '/account', aal: 3, amr: ['FIDO2'] });
});

test(`[${backend}] HTTP: an AAL2 invitation cannot be used to register an AAL3 key`, async () => {
  const p = await newPerson();
  const token = await createEnrolmentInvitation(ctx(), { userId: p.userId, maxAal: 2 });
  const b = await openPage(`/enrol/invite?t=${token}`);
  const { challengeId, options } = (await post(b, '/enrol/invite/options', { token })).json() as {
    challengeId: string;
    options: { challenge: string; rp: { id: string }; user: { id: string } };
  };
  const res = await post(b, '/enrol/invite/verify', {
    token,
    challengeId,
    response: allowedKey().register(options, ORIGIN),
  });
  assert.equal(res.statusCode, 403);
  assert.equal(errorCode(res), 'auth.step_up_required');
  assert.equal(b.cookies.get('opencis_session'), undefined);
  assert.deepEqual(await webauthnCredentialsOf(ctx(), p.userId), []);
});

test(`[${backend}] the audit chain verifies after all of it`, async () => {
  const result = await verifyAuditChain(t.repos, testSealer.auditKeys);
  assert.equal(result.ok, true, JSON.stringify(result));
});
