import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { AppError } from '../../src/domain/errors.ts';
import { checkIdentityDocuments, type IdentityDocument, monthsBefore } from '../../src/domain/identity/documents.ts';
import { assignRoleProfile, createPosition, effectiveRoles } from '../../src/services/access.ts';
import { auditTrailOf } from '../../src/services/audit.ts';
import { verifyAuditChain } from '../../src/services/audit-verify.ts';
import {
  type CardConfig,
  certifyCard,
  getCard,
  passcodeGrant,
  redeemCardGrant,
  reportCardEvent,
  startCardIssue,
} from '../../src/services/cards.ts';
import { ensureCertificateAuthority } from '../../src/services/certificates.ts';
import type { ServiceContext } from '../../src/services/context.ts';
import { getPerson, registerPerson, searchPeople } from '../../src/services/people.ts';
import {
  approveRequest,
  cardsExpiringReport,
  changeName,
  changeRoleDates,
  endPosition,
  expireRequests,
  getRequest,
  identityChecksOf,
  leaversReport,
  listApplications,
  listRequests,
  lockedCardsReport,
  markLeaver,
  pendingRequestsReport,
  peopleWithoutRolesReport,
  personPhoto,
  registerWithIdentityCheck,
  rejectApplication,
  rejectRequest,
  rejoin,
  requestAccess,
  restore,
  rolesEndingReport,
  submitApplication,
  suspend,
  verifyApplication,
  verifyIdentity,
  withdrawRequest,
} from '../../src/services/ra.ts';
import { personActorWithPowers } from '../../src/services/ra-powers.ts';
import { currentSession, startSession } from '../../src/services/sessions.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { SoftwareCardKey } from '../support/card.ts';
import { TestClock, testContext, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';
import { tinyPng } from '../support/images.ts';
import { saveTestOrganisations } from '../support/organisations.ts';

let t: TestDatabase;
let app: FastifyInstance | undefined;
const clock = new TestClock(new Date('2026-11-26T09:00:00Z'));
const TODAY = '2026-11-26';
const op = () => testContext(t.db, { clock });
const cardConfig: CardConfig = {
  origin: 'http://localhost:3000',
  publicUrl: 'http://localhost:3000',
  transportSoPin: '87654321',
};

/** Positions and staff: an RA in trust RR8 (under ICB QWO) and one in trust RX1 (under ICB Y51). */
const pos = {} as Record<
  'manager' | 'agent' | 'sponsor' | 'idChecker' | 'otherAgent' | 'nurse' | 'clerk' | 'otherClerk',
  string
>;
const staff = {} as Record<
  'manager' | 'agent' | 'agent2' | 'sponsor' | 'sponsor2' | 'idChecker' | 'otherAgent',
  string
>;

let n = 0;
async function newPerson(extra: Record<string, unknown> = {}) {
  n++;
  return registerPerson(op(), {
    givenName: `Given${n}`,
    familyName: `Family${n}`,
    dateOfBirth: '1980-05-17',
    niNumber: `RA${String(100000 + n)}C`,
    email: `ra${n}@example.nhs.uk`,
    ...extra,
  });
}

async function as(userId: string, c: TestClock = clock): Promise<ServiceContext> {
  return testContext(t.db, { clock: c, actor: await personActorWithPowers(t.repos, userId, c.now()) });
}

async function give(userId: string, positionId: string): Promise<string> {
  return (await assignRoleProfile(op(), { userId, positionId, startDate: TODAY })).personRoleId;
}

before(async () => {
  t = await createTestDatabase();
  await saveTestOrganisations(op());
  await ensureCertificateAuthority(op());
  const position = async (odsCode: string, p: Record<string, unknown>) =>
    (await createPosition(op(), odsCode, p)).positionId;
  pos.manager = await position('RR8', { name: 'RA Manager', jobRoles: ['R5080'] });
  pos.agent = await position('RR8', { name: 'RA Agent', jobRoles: ['R5090'] });
  pos.sponsor = await position('RR8', { name: 'Ward manager (sponsor)', jobRoles: ['R8000'], activities: ['B1300'] });
  pos.idChecker = await position('RR8', { name: 'ID checker', jobRoles: ['R8010'], activities: ['B0267'] });
  pos.otherAgent = await position('RX1', { name: 'RA Agent', jobRoles: ['R5090'] });
  pos.nurse = await position('RR813', { name: 'Ward nurse, ward 7', jobRoles: ['R8001'], assignable: true });
  pos.clerk = await position('RR813', { name: 'Ward clerk', jobRoles: ['R8010'] });
  pos.otherClerk = await position('RX1', { name: 'Clerk', jobRoles: ['R8010'] });
  const hire = async (positionId: string) => {
    const p = await newPerson({ identityAssuranceLevel: 3 });
    await give(p.userId, positionId);
    return p.userId;
  };
  staff.manager = await hire(pos.manager);
  staff.agent = await hire(pos.agent);
  staff.agent2 = await hire(pos.agent);
  staff.sponsor = await hire(pos.sponsor);
  staff.sponsor2 = await hire(pos.sponsor);
  staff.idChecker = await hire(pos.idChecker);
  staff.otherAgent = await hire(pos.otherAgent);
});
after(async () => {
  await app?.close();
  await t.close();
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof AppError, String(err));
    return err.code;
  }
  return 'no error';
}

async function rejects(p: Promise<unknown>, code: string): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof AppError, `expected ${code}, got ${String(err)}`);
    assert.equal(err.code, code, JSON.stringify(err.details));
    return err;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

// A JPEG carrying EXIF with a GPS position (a tiny PNG comes from test/support/images.ts).
const png = tinyPng;
function jpegWithExif(): Buffer {
  const seg = (m: number, d: Buffer) => {
    const h = Buffer.from([0xff, m, 0, 0]);
    h.writeUInt16BE(d.length + 2, 2);
    return Buffer.concat([h, d]);
  };
  return Buffer.concat([
    Buffer.from([0xff, 0xd8]),
    seg(0xe1, Buffer.from('Exif\0\0GPS 51.5074N 0.1278W')),
    seg(0xdb, Buffer.alloc(65, 1)),
    seg(0xc0, Buffer.from([8, 0, 4, 0, 4, 1, 1, 0x11, 0])),
    seg(0xc4, Buffer.alloc(20)),
    seg(0xda, Buffer.from([1, 1, 0, 0, 63, 0])),
    Buffer.from([1, 2, 3, 0xff, 0x00, 4]),
    Buffer.from([0xff, 0xd9]),
  ]);
}
const photo = (bytes: Buffer = png()) => ({ data: bytes.toString('base64') });

const goodDocuments: IdentityDocument[] = [
  { category: 'photo_id', type: 'passport', lastChars: '123A', issuedOn: '2020-01-01', expiresOn: '2030-01-01' },
  { category: 'address', type: 'utility_bill', lastChars: null, issuedOn: '2026-10-01', expiresOn: null },
  { category: 'other', type: 'birth_certificate', lastChars: null, issuedOn: null, expiresOn: null },
];

function newDetails(extra: Record<string, unknown> = {}) {
  n++;
  return {
    givenName: `Newstarter${n}`,
    familyName: `Checked${n}`,
    dateOfBirth: '1990-02-03',
    niNumber: `RB${String(100000 + n)}A`,
    email: `new${n}@example.nhs.uk`,
    ...extra,
  };
}

function checkInput(extra: Record<string, unknown> = {}) {
  return { method: 'face_to_face', place: 'RR8 RA office', documents: goodDocuments, photo: photo(), ...extra };
}

// ---------------------------------------------------------------------------------------------------------------
// The identity check rule (pure)

test('the NHS Employers identity check: one photo ID, one proof of address from the last 3 months, three in all', () => {
  assert.deepEqual(checkIdentityDocuments(goodDocuments, TODAY), []);
  assert.equal(monthsBefore(TODAY, 3), '2026-08-26');
  assert.equal(monthsBefore('2026-05-31', 3), '2026-02-28');
  assert.equal(monthsBefore('2026-02-15', 3), '2025-11-15');
  const messages = (docs: IdentityDocument[]) =>
    checkIdentityDocuments(docs, TODAY)
      .map((p) => p.message)
      .join('; ');
  const [passport, bill, birth] = goodDocuments as [IdentityDocument, IdentityDocument, IdentityDocument];
  assert.match(messages([passport, birth]), /proof of address/);
  assert.match(messages([bill, birth, { ...birth, type: 'p60' }]), /photo ID/);
  assert.match(messages([passport, { ...bill, issuedOn: '2026-08-25' }, birth]), /last 3 months/);
  assert.deepEqual(checkIdentityDocuments([passport, { ...bill, issuedOn: '2026-08-26' }, birth], TODAY), []);
  assert.match(messages([{ ...passport, expiresOn: '2026-11-25' }, bill, birth]), /expired/);
  assert.match(messages([passport, bill]), /at least 3/);
  assert.match(messages([passport, bill, passport]), /listed twice/);
  assert.match(messages([{ ...passport, category: 'address' }, bill, birth]), /does not count/);
  assert.match(messages([passport, { ...bill, issuedOn: '2026-12-01' }, birth]), /future/);
});

// ---------------------------------------------------------------------------------------------------------------
// Register with an identity check

test(`[${backend}] an RA agent registers a person face to face: level 3, documents and photo recorded, metadata stripped`, async () => {
  const ctx = await as(staff.agent);
  const res = await registerWithIdentityCheck(ctx, {
    person: newDetails({ identityAssuranceLevel: 1 }),
    ...checkInput({ photo: photo(jpegWithExif()) }),
  });
  assert.equal(res.created, true);
  assert.equal(res.person.identityAssuranceLevel, 3);
  assert.equal(res.check.resultingLevel, 3);
  assert.equal(res.check.duplicateResolution, 'new_person');
  assert.equal(res.check.checkedBy, staff.agent);
  assert.deepEqual(
    res.check.documents.map((d) => [d.type, d.lastChars]),
    [
      ['passport', '123A'],
      ['utility_bill', null],
      ['birth_certificate', null],
    ],
  );
  const stored = await personPhoto(ctx, res.person.userId);
  assert.equal(stored.mediaType, 'image/jpeg');
  assert.equal(stored.bytes.includes('GPS'), false, 'EXIF is not stored');
  assert.equal(stored.bytes.includes('Exif'), false);
  const checks = await identityChecksOf(ctx, res.person.userId);
  assert.equal(checks.length, 1);
  assert.equal(checks[0]!.place, 'RR8 RA office');
  const trail = (await auditTrailOf(t.repos, 'person', res.person.userId)).map((e) => e.action);
  assert.deepEqual(trail, ['person.registered', 'person.identity_verified']);
  assert.equal(JSON.stringify(await auditTrailOf(t.repos, 'person', res.person.userId)).includes('123A'), false);

  const remote = await registerWithIdentityCheck(ctx, {
    person: newDetails(),
    ...checkInput({ method: 'remote', place: null }),
  });
  assert.equal(remote.person.identityAssuranceLevel, 2);
});

test(`[${backend}] documents that miss the standard, a full document number or a bad photo are refused; nothing is stored`, async () => {
  const ctx = await as(staff.agent);
  const { rows: before } = await t.db.query<{ n: string }>('SELECT count(*)::text AS n FROM people');
  const err = await rejects(
    registerWithIdentityCheck(ctx, { person: newDetails(), ...checkInput({ documents: goodDocuments.slice(0, 2) }) }),
    'identity_check.documents_insufficient',
  );
  assert.ok((err.details as { problems: unknown[] }).problems.length > 0);
  const fullNumber = [{ ...goodDocuments[0], lastChars: '123456789' }, ...goodDocuments.slice(1)];
  await rejects(
    registerWithIdentityCheck(ctx, { person: newDetails(), ...checkInput({ documents: fullNumber }) }),
    'request.invalid',
  );
  await rejects(
    registerWithIdentityCheck(ctx, {
      person: newDetails(),
      ...checkInput({ photo: { data: Buffer.from('hello').toString('base64') } }),
    }),
    'photo.invalid',
  );
  await rejects(
    registerWithIdentityCheck(ctx, { person: newDetails(), ...checkInput({ place: null }) }),
    'request.invalid',
  );
  const { rows: afterRows } = await t.db.query<{ n: string }>('SELECT count(*)::text AS n FROM people');
  assert.equal(afterRows[0]!.n, before[0]!.n);
});

test(`[${backend}] duplicates must be resolved: use the existing record, or confirm each candidate is someone else`, async () => {
  const ctx = await as(staff.agent);
  const first = await registerWithIdentityCheck(ctx, {
    person: newDetails({ givenName: 'Mary Ann', familyName: "O'Neill", dateOfBirth: '1970-01-02', niNumber: null }),
    ...checkInput({ method: 'remote', place: null }),
  });
  const again = newDetails({ givenName: 'Mary', familyName: 'ONEILL', dateOfBirth: '1970-01-02', niNumber: null });
  const err = await rejects(
    registerWithIdentityCheck(ctx, { person: again, ...checkInput() }),
    'identity_check.duplicate_unresolved',
  );
  assert.deepEqual((err.details as { candidates: string[] }).candidates, [first.person.userId]);
  await rejects(
    registerWithIdentityCheck(ctx, { person: again, ...checkInput(), duplicateResolution: 'new_person' }),
    'identity_check.duplicate_unresolved',
  );
  // the RA decides it is the same person: the face-to-face check raises the existing record to level 3
  const attached = await registerWithIdentityCheck(ctx, {
    person: again,
    ...checkInput(),
    duplicateResolution: `existing:${first.person.userId}`,
  });
  assert.equal(attached.created, false);
  assert.equal(attached.person.userId, first.person.userId);
  assert.equal(attached.person.identityAssuranceLevel, 3);
  assert.equal(attached.check.duplicateResolution, `existing:${first.person.userId}`);
  // or confirms it is someone else
  const other = await registerWithIdentityCheck(ctx, {
    person: again,
    ...checkInput(),
    duplicateResolution: 'new_person',
    confirmedDifferentFrom: [first.person.userId],
  });
  assert.equal(other.created, true);
  assert.notEqual(other.person.userId, first.person.userId);
  const trail = await auditTrailOf(t.repos, 'person', other.person.userId);
  assert.match(trail[0]!.reason ?? '', new RegExp(first.person.userId));
  // the same NI number is never someone else
  const withNi = await registerWithIdentityCheck(ctx, {
    person: newDetails({ niNumber: 'RC999999A' }),
    ...checkInput(),
  });
  await rejects(
    registerWithIdentityCheck(ctx, {
      person: newDetails({ niNumber: 'rc 99 99 99 a' }),
      ...checkInput(),
      duplicateResolution: 'new_person',
      confirmedDifferentFrom: [withNi.person.userId],
    }),
    'person.duplicate',
  );
});

test(`[${backend}] an ID checker registers and verifies; a sponsor cannot, and the refusal is audited`, async () => {
  const checker = await registerWithIdentityCheck(await as(staff.idChecker), { person: newDetails(), ...checkInput() });
  assert.equal(checker.person.identityAssuranceLevel, 3);
  const err = await rejects(
    registerWithIdentityCheck(await as(staff.sponsor), { person: newDetails(), ...checkInput() }),
    'auth.forbidden',
  );
  assert.equal((err.details as { statement: string }).statement, 'person:create');
  const { rows } = await t.db.query<{ actor: string; after: { action: string; details: { statement: string } } }>(
    "SELECT actor, after FROM audit_events WHERE action = 'ra.refused' AND actor = $1 ORDER BY seq DESC LIMIT 1",
    [`person:${staff.sponsor}`],
  );
  assert.equal(rows[0]?.after.action, 'person.register_with_identity_check');
  assert.equal(rows[0]?.after.details.statement, 'person:create');
});

test(`[${backend}] verifying an existing person raises their level; an RA of another trust cannot`, async () => {
  const p = await newPerson();
  await give(p.userId, pos.clerk);
  await rejects(verifyIdentity(await as(staff.otherAgent), p.userId, checkInput()), 'auth.forbidden');
  const res = await verifyIdentity(await as(staff.agent), p.userId, checkInput());
  assert.equal(res.person.identityAssuranceLevel, 3);
  assert.equal(res.person.userId, p.userId);
  await rejects(verifyIdentity(await as(staff.agent), staff.agent, checkInput()), 'auth.forbidden');
});

// ---------------------------------------------------------------------------------------------------------------
// Apply for Care ID

const web = () => testContext(t.db, { clock, actor: { kind: 'system', id: 'web:apply-for-care-id' } });

function application(extra: Record<string, unknown> = {}) {
  return {
    applicant: newDetails({ identityAssuranceLevel: 3, photoRef: 'forged' }),
    odsCode: 'rr813',
    selfie: photo(png('selfie taken at home, 51.5N')),
    photoIdImage: photo(jpegWithExif()),
    ...extra,
  };
}

test(`[${backend}] Apply for Care ID: submitted, reviewed by the organisation's RA, verified — the person is at level 2`, async () => {
  const { applicationId, status } = await submitApplication(web(), application(), { ip: '198.51.100.7' });
  assert.equal(status, 'submitted');
  const agent = await as(staff.agent);
  const listed = await listApplications(agent, { status: 'submitted' });
  const mine = listed.find((a) => a.applicationId === applicationId);
  assert.ok(mine, 'the RR8 RA sees an application for RR813');
  assert.equal('identityAssuranceLevel' in mine.applicant, false, 'the applicant cannot choose their level');
  assert.equal(
    (await listApplications(await as(staff.otherAgent))).some((a) => a.applicationId === applicationId),
    false,
    'an RA of another trust does not',
  );
  await rejects(
    verifyApplication(await as(staff.otherAgent), applicationId, {
      videoCheckedAt: clock.now().toISOString(),
      documents: goodDocuments,
    }),
    'auth.forbidden',
  );
  await rejects(
    verifyApplication(agent, applicationId, {
      videoCheckedAt: clock.now().toISOString(),
      documents: goodDocuments.slice(0, 1),
    }),
    'identity_check.documents_insufficient',
  );
  const res = await verifyApplication(agent, applicationId, {
    videoCheckedAt: new Date(clock.now().getTime() - 3_600_000).toISOString(),
    notes: 'Seen on video; passport matches selfie',
    documents: goodDocuments,
  });
  assert.equal(res.created, true);
  assert.equal(res.person.identityAssuranceLevel, 2);
  assert.equal(res.check.method, 'remote');
  assert.equal(res.application.status, 'verified');
  assert.equal(res.application.userId, res.person.userId);
  assert.deepEqual(res.application.documentPhotoIds, [], 'the photo ID image is deleted once decided');
  const portrait = await personPhoto(agent, res.person.userId);
  assert.equal(portrait.bytes.includes('selfie taken'), false, 'the selfie is stored without its text chunk');
  const { rows } = await t.db.query<{ n: string }>(
    "SELECT count(*)::text AS n FROM photos WHERE purpose = 'document' AND user_id IS NULL AND photo_id = ANY($1)",
    [mine.documentPhotoIds],
  );
  assert.equal(rows[0]!.n, '0');
  await rejects(
    verifyApplication(agent, applicationId, { videoCheckedAt: clock.now().toISOString(), documents: goodDocuments }),
    'application.already_decided',
  );
});

test(`[${backend}] Apply for Care ID: rejected with a reason kept verbatim; the images go`, async () => {
  const { applicationId } = await submitApplication(web(), application(), { ip: '198.51.100.8' });
  const reason = 'Photo ID unreadable — please re-apply 🙏 with a clearer image. <b>Merci</b>';
  const rejected = await rejectApplication(await as(staff.agent2), applicationId, { reason });
  assert.equal(rejected.status, 'rejected');
  assert.equal(rejected.reason, reason);
  assert.equal(rejected.selfiePhotoId, null);
  await rejects(
    rejectApplication(await as(staff.agent2), applicationId, { reason: 'again' }),
    'application.already_decided',
  );
  await rejects(rejectApplication(await as(staff.agent2), 'not-an-id', { reason: 'x' }), 'application.not_found');
});

test(`[${backend}] Apply for Care ID: bad images and hostile bodies are refused; one IP is rate-limited`, async () => {
  const ip = '203.0.113.99';
  assert.equal(
    await codeOf(
      submitApplication(web(), application({ selfie: photo(Buffer.from('text file renamed .png')) }), { ip }),
    ),
    'photo.invalid',
  );
  assert.equal(
    await codeOf(submitApplication(web(), application({ odsCode: 'NOPE1' }), { ip })),
    'organisation.not_found',
  );
  assert.equal(await codeOf(submitApplication(web(), null, { ip })), 'request.invalid');
  assert.equal(
    await codeOf(submitApplication(web(), application({ applicant: newDetails({ email: null }) }), { ip })),
    'request.invalid',
  );
  for (let i = 0; i < 6; i++) await codeOf(submitApplication(web(), { nonsense: i }, { ip }));
  assert.equal(await codeOf(submitApplication(web(), application(), { ip })), 'auth.rate_limited');
  assert.equal(await codeOf(submitApplication(web(), application(), { ip: '203.0.113.100' })), 'no error');
});

// ---------------------------------------------------------------------------------------------------------------
// Access requests

test(`[${backend}] a sponsor requests a position, an RA approves, and the role profile is in effect`, async () => {
  const p = await newPerson();
  const sponsor = await as(staff.sponsor);
  const { request, roleProfile } = await requestAccess(sponsor, {
    userId: p.userId,
    positionId: pos.clerk,
    startDate: TODAY,
    reason: 'New ward clerk',
  });
  assert.equal(roleProfile, null);
  assert.equal(request.status, 'pending');
  assert.equal(request.expiresAt, new Date(clock.now().getTime() + 30 * 86_400_000).toISOString());
  assert.deepEqual(await effectiveRoles(t.repos, p.userId, clock.now()), []);
  const approved = await approveRequest(await as(staff.agent), request.requestId);
  assert.equal(approved.request.status, 'approved');
  assert.equal(approved.request.decidedBy, staff.agent);
  const roles = await effectiveRoles(t.repos, p.userId, clock.now());
  assert.deepEqual(
    roles.map((r) => r.positionId),
    [pos.clerk],
  );
  // both sides see it: the requester and the person it is about
  const seenBySponsor = await getRequest(sponsor, request.requestId);
  assert.deepEqual(
    seenBySponsor.history.map((h) => [h.fromStatus, h.toStatus]),
    [
      [null, 'pending'],
      ['pending', 'approved'],
    ],
  );
  const person = testContext(t.db, { clock, actor: { kind: 'person', id: p.userId, userId: p.userId, powers: [] } });
  assert.equal((await getRequest(person, request.requestId)).status, 'approved');
  assert.ok((await listRequests(person, { mine: true })).some((r) => r.requestId === request.requestId));
  assert.ok((await listRequests(sponsor, { mine: 'true' })).some((r) => r.requestId === request.requestId));
  const stranger = await newPerson();
  const strangerCtx = testContext(t.db, {
    clock,
    actor: { kind: 'person', id: stranger.userId, userId: stranger.userId, powers: [] },
  });
  await rejects(getRequest(strangerCtx, request.requestId), 'auth.forbidden');
  assert.equal((await listRequests(strangerCtx)).length, 0);
  assert.equal(
    (await listRequests(await as(staff.otherAgent), { status: 'approved' })).some(
      (r) => r.requestId === request.requestId,
    ),
    false,
  );
});

test(`[${backend}] a sponsor gives an assignable position at once; a non-assignable one stays pending`, async () => {
  const p = await newPerson();
  const res = await requestAccess(await as(staff.sponsor), {
    userId: p.userId,
    positionId: pos.nurse,
    startDate: TODAY,
    endDate: '2027-02-28',
    reason: 'Bank nurse, three months',
  });
  assert.equal(res.request.status, 'approved');
  assert.equal(res.request.decidedBy, staff.sponsor);
  assert.equal(res.request.decisionReason, 'assignable position given directly');
  assert.ok(res.roleProfile);
  assert.equal(res.roleProfile.endDate, '2027-02-28');
  const actions = (await auditTrailOf(t.repos, 'person', p.userId)).map((e) => e.action);
  assert.deepEqual(actions.slice(-3), ['access_request.created', 'role_profile.assigned', 'access_request.approved']);
  // an RA agent's own request is applied at once too
  const direct = await requestAccess(await as(staff.agent), {
    userId: p.userId,
    positionId: pos.clerk,
    startDate: TODAY,
    reason: 'Also clerk',
  });
  assert.equal(direct.request.status, 'approved');
  // a sponsor cannot ask for positions outside their organisation
  await rejects(
    requestAccess(await as(staff.sponsor), {
      userId: p.userId,
      positionId: pos.otherClerk,
      startDate: TODAY,
      reason: 'x',
    }),
    'auth.forbidden',
  );
  await rejects(
    requestAccess(await as(staff.sponsor), {
      userId: p.userId,
      positionId: pos.clerk,
      startDate: TODAY,
      endDate: '2026-01-01',
      reason: 'x',
    }),
    'role_profile.invalid_dates',
  );
  await rejects(
    requestAccess(await as(staff.sponsor), { userId: p.userId, positionId: '999999', startDate: TODAY, reason: 'x' }),
    'position.not_found',
  );
});

test(`[${backend}] a sponsor cannot approve; nobody approves their own request; the requester may withdraw`, async () => {
  const p = await newPerson();
  const requester = await newPerson();
  await give(requester.userId, pos.sponsor);
  const { request } = await requestAccess(await as(requester.userId), {
    userId: p.userId,
    positionId: pos.clerk,
    startDate: TODAY,
    reason: 'clerk',
  });
  await rejects(approveRequest(await as(staff.sponsor2), request.requestId), 'auth.forbidden');
  await rejects(rejectRequest(await as(staff.sponsor2), request.requestId, { reason: 'no' }), 'auth.forbidden');
  // the requester becomes an RA agent: still cannot approve the request they made
  await give(requester.userId, pos.agent);
  const err = await rejects(approveRequest(await as(requester.userId), request.requestId), 'auth.forbidden');
  assert.equal((err.details as { statement: string }).statement, 'request:approve');
  // the person it is about cannot approve it either
  await give(p.userId, pos.agent);
  await rejects(approveRequest(await as(p.userId), request.requestId), 'auth.forbidden');
  const withdrawn = await withdrawRequest(await as(requester.userId), request.requestId, { reason: 'not needed' });
  assert.equal(withdrawn.status, 'withdrawn');
  await rejects(approveRequest(await as(staff.agent), request.requestId), 'access_request.already_decided');
});

test(`[${backend}] two concurrent approvals: exactly one succeeds, the other is told it is already decided`, async () => {
  for (let round = 0; round < 3; round++) {
    const p = await newPerson();
    const { request } = await requestAccess(await as(staff.sponsor), {
      userId: p.userId,
      positionId: pos.clerk,
      startDate: TODAY,
      reason: `race ${round}`,
    });
    const [a, b] = [await as(staff.agent), await as(staff.manager)];
    const results = await Promise.allSettled([
      approveRequest(a, request.requestId),
      approveRequest(b, request.requestId),
    ]);
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(ok.length, 1);
    assert.equal((failed[0]!.reason as AppError).code, 'access_request.already_decided');
    const { rows } = await t.db.query<{ n: string }>(
      'SELECT count(*)::text AS n FROM role_profiles WHERE user_id = $1',
      [p.userId],
    );
    assert.equal(rows[0]!.n, '1', 'one role profile, not two');
  }
});

test(`[${backend}] a double-submitted approval and a stale version get clear conflicts`, async () => {
  const p = await newPerson();
  const { request } = await requestAccess(await as(staff.sponsor), {
    userId: p.userId,
    positionId: pos.clerk,
    startDate: TODAY,
    reason: 'double',
  });
  const agent = await as(staff.agent);
  await rejects(approveRequest(agent, request.requestId, { expectedVersion: 7 }), 'access_request.version_conflict');
  await approveRequest(agent, request.requestId, { expectedVersion: request.version });
  const err = await rejects(
    approveRequest(agent, request.requestId, { expectedVersion: request.version }),
    'access_request.already_decided',
  );
  assert.deepEqual((err.details as { status: string; decidedBy: string }).status, 'approved');
  await rejects(approveRequest(agent, '424242424'), 'access_request.not_found');
  await rejects(approveRequest(agent, '1; DROP TABLE access_requests'), 'access_request.not_found');
  // a second pending request for the same person and position is refused
  const q = await newPerson();
  await requestAccess(await as(staff.sponsor), {
    userId: q.userId,
    positionId: pos.clerk,
    startDate: TODAY,
    reason: 'a',
  });
  await rejects(
    requestAccess(await as(staff.sponsor), { userId: q.userId, positionId: pos.clerk, startDate: TODAY, reason: 'b' }),
    'access_request.duplicate',
  );
});

test(`[${backend}] untouched requests expire; an expired request cannot be approved`, async () => {
  const p = await newPerson();
  const { request } = await requestAccess(await as(staff.sponsor), {
    userId: p.userId,
    positionId: pos.clerk,
    startDate: TODAY,
    reason: 'will expire',
    expiresInDays: 5,
  });
  const later = new TestClock(new Date(clock.now().getTime() + 6 * 86_400_000));
  await rejects(approveRequest(await as(staff.agent, later), request.requestId), 'access_request.already_decided');
  const expired = await expireRequests(testContext(t.db, { clock: later }));
  assert.ok(expired >= 1);
  assert.equal((await getRequest(op(), request.requestId)).status, 'expired');
  await rejects(expireRequests(await as(staff.sponsor)), 'auth.forbidden');
});

test(`[${backend}] a request for someone who has left (or is suspended) is refused`, async () => {
  const p = await newPerson();
  await give(p.userId, pos.clerk);
  await suspend(await as(staff.agent), p.userId, { reason: 'investigation' });
  await rejects(
    requestAccess(await as(staff.sponsor), { userId: p.userId, positionId: pos.nurse, startDate: TODAY, reason: 'x' }),
    'role_profile.person_inactive',
  );
  assert.deepEqual(await effectiveRoles(t.repos, p.userId, clock.now()), [], 'suspended: no access');
  await restore(await as(staff.agent), p.userId, { reason: 'cleared' });
  assert.equal((await effectiveRoles(t.repos, p.userId, clock.now())).length, 1);
  await markLeaver(await as(staff.agent), p.userId, { reason: 'moved away' });
  await rejects(
    requestAccess(await as(staff.agent), { userId: p.userId, positionId: pos.nurse, startDate: TODAY, reason: 'x' }),
    'role_profile.person_inactive',
  );
  await rejects(restore(await as(staff.agent), p.userId, { reason: 'x' }), 'person.invalid_status_change');
});

// ---------------------------------------------------------------------------------------------------------------
// Changes: leaver, re-joiner, names, dates

async function issueCard(userId: string) {
  const key = new SoftwareCardKey();
  const tokenSerial = `TOKEN-${userId}-${n++}`;
  const { card, grant } = await startCardIssue(op(), cardConfig, { userId, kind: 'physical' });
  await redeemCardGrant(op(), cardConfig, { grant, tokenSerial });
  const { certificate } = await certifyCard(op(), cardConfig, {
    grant,
    tokenSerial,
    publicKey: key.spkiBase64(),
    proof: key.sign(cardConfig.origin, grant),
  });
  const g2 = await passcodeGrant(op(), card.cardId);
  await redeemCardGrant(op(), cardConfig, { grant: g2, tokenSerial });
  return { card: await getCard(t.repos, card.cardId), certificate: certificate.toString('base64'), tokenSerial };
}

async function addAuthenticators(userId: string) {
  await t.db.query(
    `INSERT INTO webauthn_credentials (credential_id, user_id, public_key, sign_count, aaguid, attestation_format,
       backup_eligible, backed_up, kind, aal, nickname, status, created_at)
     VALUES ($1, $2, '\\x00', 0, '00000000-0000-0000-0000-000000000000', 'none', false, false, 'security_key', 3, 'key', 'active', $3)`,
    [`cred-${userId}`, userId, clock.now()],
  );
  await t.db.query(
    `INSERT INTO totp_authenticators (totp_id, user_id, secret_sealed, status, nickname, created_at)
     VALUES ($1, $2, 'sealed', 'active', 'phone', $3)`,
    [`totp-${userId}`, userId, clock.now()],
  );
}

test(`[${backend}] a leaver: every profile ended, card cancelled and certificate revoked, authenticators removed, sessions ended — in one go`, async () => {
  const p = await newPerson({ identityAssuranceLevel: 3 });
  const roleA = await give(p.userId, pos.clerk);
  const roleB = await give(p.userId, pos.nurse);
  const { card } = await issueCard(p.userId);
  await addAuthenticators(p.userId);
  const { token } = await unitOfWork(t.db)((tx) =>
    startSession(
      tx,
      op(),
      { userId: p.userId, aal: 3, amr: ['SMARTCARD'], authenticatorId: `card:${card.cardId}` },
      null,
      {
        ip: null,
        userAgent: null,
      },
    ),
  );
  const pending = await requestAccess(await as(staff.sponsor), {
    userId: p.userId,
    positionId: pos.clerk,
    startDate: '2026-12-01',
    reason: 'pending at leaving',
  });
  // the leaver's own RA powers do not let anyone act on themselves, and an RA elsewhere cannot mark them
  await rejects(markLeaver(await as(staff.otherAgent), p.userId, { reason: 'x' }), 'auth.forbidden');

  const out = await markLeaver(await as(staff.agent), p.userId, { reason: 'Resigned — last day 26/11' });
  assert.equal(out.person.status, 'left');
  assert.equal(out.person.userId, p.userId);
  assert.deepEqual(out.roleProfilesEnded.sort(), [roleA, roleB].sort());
  assert.deepEqual(out.cardsCancelled, [card.cardId]);
  assert.equal(out.certificatesRevoked, 1);
  assert.deepEqual(out.authenticatorsRemoved.sort(), [`totp:totp-${p.userId}`, `webauthn:cred-${p.userId}`].sort());
  assert.deepEqual(out.requestsWithdrawn, [pending.request.requestId]);
  assert.equal(out.sessionsEnded, 1);

  assert.equal(await currentSession(t.repos, token, clock.now()), null);
  const cardNow = await getCard(t.repos, card.cardId);
  assert.deepEqual([cardNow.status, cardNow.cancelReason], ['cancelled', 'leaver']);
  const { rows: certs } = await t.db.query<{ status: string; revocation_reason: string }>(
    'SELECT status, revocation_reason FROM pki_certificates WHERE user_id = $1',
    [p.userId],
  );
  assert.deepEqual(certs, [{ status: 'revoked', revocation_reason: 'affiliationChanged' }]);
  const { rows: auth } = await t.db.query<{ status: string }>(
    `SELECT status FROM webauthn_credentials WHERE user_id = $1 UNION ALL SELECT status FROM totp_authenticators WHERE user_id = $1`,
    [p.userId],
  );
  assert.deepEqual(
    auth.map((r) => r.status),
    ['removed', 'removed'],
  );
  const { rows: profiles } = await t.db.query<{ status: string; end_date: string }>(
    'SELECT status, end_date FROM role_profiles WHERE user_id = $1',
    [p.userId],
  );
  assert.ok(profiles.every((r) => r.status === 'ended' && r.end_date === TODAY));
  assert.equal((await getRequest(op(), pending.request.requestId)).status, 'withdrawn');
  const trail = (await auditTrailOf(t.repos, 'person', p.userId)).map((e) => e.action);
  assert.equal(trail.at(-1), 'person.left');
  assert.ok(trail.includes('card.cancelled'));
  await rejects(markLeaver(await as(staff.agent), p.userId, { reason: 'twice' }), 'person.invalid_status_change');
  const chain = await verifyAuditChain(t.repos, testSealer.auditKeys);
  assert.equal(chain.ok, true);
});

test(`[${backend}] a re-joiner comes back under the same user ID, with no access until it is given again`, async () => {
  const p = await newPerson();
  await give(p.userId, pos.clerk);
  await markLeaver(await as(staff.agent), p.userId, { reason: 'left' });
  const back = await rejoin(await as(staff.agent), p.userId, { reason: 'Re-joined as bank staff' });
  assert.equal(back.userId, p.userId);
  assert.equal(back.status, 'active');
  assert.deepEqual(await effectiveRoles(t.repos, p.userId, clock.now()), []);
  const res = await requestAccess(await as(staff.sponsor), {
    userId: p.userId,
    positionId: pos.nurse,
    startDate: TODAY,
    reason: 'back',
  });
  assert.equal(res.request.status, 'approved');
  await rejects(rejoin(await as(staff.agent), p.userId, { reason: 'again' }), 'person.invalid_status_change');
});

test(`[${backend}] a name change keeps the user ID, needs evidence, is audited before and after`, async () => {
  const p = await newPerson({ givenName: 'Jane', familyName: 'Smith' });
  await give(p.userId, pos.clerk);
  const agent = await as(staff.agent);
  await rejects(changeName(agent, p.userId, { familyName: 'Jones' }), 'request.invalid');
  await rejects(
    changeName(agent, p.userId, {
      familyName: 'Jones',
      evidence: { type: 'marriage_certificate', lastChars: 'MC0012345' },
    }),
    'request.invalid',
  );
  await rejects(
    changeName(agent, p.userId, { familyName: 'Jones', evidence: { type: 'a_note_from_mum' } }),
    'request.invalid',
  );
  const after = await changeName(agent, p.userId, {
    familyName: 'Jones-Ó Briain',
    evidence: { type: 'marriage_certificate', lastChars: '2345' },
    reason: 'Married',
  });
  assert.equal(after.userId, p.userId);
  assert.equal(after.familyName, 'Jones-Ó Briain');
  assert.equal(after.givenName, 'Jane');
  const found = await searchPeople(op(), { familyName: 'jones o', givenName: 'jane' });
  assert.deepEqual(
    found.people.map((x) => x.userId),
    [p.userId],
  );
  const { rows } = await t.db.query<{
    evidence_type: string;
    evidence_last_chars: string;
    before: { familyName: string };
  }>('SELECT evidence_type, evidence_last_chars, before FROM name_changes WHERE user_id = $1', [p.userId]);
  assert.deepEqual(
    rows.map((r) => [r.evidence_type, r.evidence_last_chars, r.before.familyName]),
    [['marriage_certificate', '2345', 'Smith']],
  );
  const event = (await auditTrailOf(t.repos, 'person', p.userId)).at(-1)!;
  assert.equal(event.action, 'person.name_changed');
  assert.equal((event.before as { familyName: string }).familyName, 'Smith');
  assert.equal((event.after as { familyName: string }).familyName, 'Jones-Ó Briain');
  await rejects(
    changeName(await as(staff.sponsor), p.userId, { givenName: 'X', evidence: { type: 'deed_poll' } }),
    'auth.forbidden',
  );
});

test(`[${backend}] positions: a sponsor ends one and changes dates; an RA of another trust cannot`, async () => {
  const p = await newPerson();
  const roleId = await give(p.userId, pos.clerk);
  await rejects(
    changeRoleDates(await as(staff.otherAgent), roleId, { endDate: '2027-01-31', reason: 'x' }),
    'auth.forbidden',
  );
  const changed = await changeRoleDates(await as(staff.sponsor), roleId, {
    endDate: '2027-01-31',
    reason: 'Locum until end of January',
  });
  assert.equal(changed.endDate, '2027-01-31');
  await rejects(
    changeRoleDates(await as(staff.sponsor), roleId, { endDate: '2026-01-01', reason: 'x' }),
    'role_profile.invalid_dates',
  );
  await rejects(
    changeRoleDates(await as(staff.sponsor), roleId, { startDate: '2026-12-01', reason: 'x' }),
    'role_profile.invalid_dates',
  );
  const ended = await endPosition(await as(staff.sponsor), roleId, { reason: 'Contract ended' });
  assert.equal(ended.status, 'ended');
  await rejects(endPosition(await as(staff.sponsor), roleId, { reason: 'again' }), 'role_profile.already_ended');
  await rejects(
    changeRoleDates(await as(staff.sponsor), roleId, { endDate: null, reason: 'x' }),
    'role_profile.already_ended',
  );
});

test(`[${backend}] text in any script, and SQL- or HTML-looking text, is stored verbatim in every free-text field`, async () => {
  const texts = [
    "Robert'); DROP TABLE people;--",
    '<script>alert(1)</script>',
    '王明 — Siobhán Nguyễn',
    'مرحبا',
    'Ω≈ç√ 🙂',
  ];
  const agent = await as(staff.agent);
  for (const s of texts) {
    const reg = await registerWithIdentityCheck(agent, {
      person: newDetails({ givenName: s, familyName: s, middleNames: s, preferredName: s, title: s.slice(0, 30) }),
      ...checkInput({ place: s, notes: s }),
    });
    const back = await getPerson(op(), reg.person.userId);
    assert.deepEqual([back.givenName, back.familyName, back.middleNames, back.preferredName], [s, s, s, s]);
    const [check] = await identityChecksOf(op(), reg.person.userId);
    assert.deepEqual([check!.place, check!.notes], [s, s]);
    const given = await requestAccess(await as(staff.sponsor), {
      userId: reg.person.userId,
      positionId: pos.nurse,
      startDate: TODAY,
      reason: s,
    });
    assert.equal(given.request.reason, s);
    const { request } = await requestAccess(await as(staff.sponsor), {
      userId: reg.person.userId,
      positionId: pos.clerk,
      startDate: TODAY,
      reason: s,
    });
    const rejected = await rejectRequest(agent, request.requestId, { reason: s });
    assert.deepEqual([rejected.reason, rejected.decisionReason], [s, s]);
    const renamed = await changeName(await as(staff.manager), reg.person.userId, {
      familyName: `${s} II`,
      evidence: { type: 'deed_poll' },
      reason: s,
    });
    assert.equal(renamed.familyName, `${s} II`);
  }
  assert.equal(
    await codeOf(
      requestAccess(agent, { userId: staff.sponsor, positionId: pos.clerk, startDate: TODAY, reason: 'a\u0000b' }),
    ),
    'request.invalid',
  );
});

// ---------------------------------------------------------------------------------------------------------------
// Reports

test(`[${backend}] reports cover only the actor's organisations`, async () => {
  // pending request
  const p = await newPerson({ identityAssuranceLevel: 3 });
  await give(p.userId, pos.nurse);
  const { request } = await requestAccess(await as(staff.sponsor), {
    userId: p.userId,
    positionId: pos.clerk,
    startDate: TODAY,
    reason: 'report me',
  });
  // a locked card
  const { card, certificate, tokenSerial } = await issueCard(p.userId);
  await reportCardEvent(op(), { tokenSerial, event: 'locked', certificate });
  // a profile ending soon
  const q = await newPerson();
  const ending = await give(q.userId, pos.clerk);
  await changeRoleDates(op(), ending, { endDate: '2026-12-06', reason: 'agency' });
  // someone with no effective profile, and a leaver
  const idle = await newPerson();
  const idleRole = await give(idle.userId, pos.clerk);
  await endPosition(op(), idleRole, { reason: 'finished' });
  const gone = await newPerson();
  await give(gone.userId, pos.clerk);
  await markLeaver(op(), gone.userId, { reason: 'left' });

  const agent = await as(staff.agent);
  const other = await as(staff.otherAgent);
  const ids = <T>(lines: T[], key: keyof T) => lines.map((l) => String(l[key]));
  assert.ok(ids(await pendingRequestsReport(agent), 'requestId').includes(request.requestId));
  assert.equal(ids(await pendingRequestsReport(other), 'requestId').includes(request.requestId), false);
  assert.ok(ids(await lockedCardsReport(agent), 'cardId').includes(card.cardId));
  assert.equal(ids(await lockedCardsReport(other), 'cardId').includes(card.cardId), false);
  const rolesIn30 = ids(await rolesEndingReport(agent), 'personRoleId');
  assert.ok(rolesIn30.includes(ending));
  assert.equal(ids(await rolesEndingReport(agent, { withinDays: 5 }), 'personRoleId').includes(ending), false);
  assert.ok(ids(await peopleWithoutRolesReport(agent), 'userId').includes(idle.userId));
  assert.equal(ids(await peopleWithoutRolesReport(other), 'userId').includes(idle.userId), false);
  assert.ok(ids(await leaversReport(agent), 'userId').includes(gone.userId));
  assert.equal(ids(await leaversReport(other), 'userId').includes(gone.userId), false);
  // cards expiring: the certificate's end seen from a clock 20 days before it
  const notAfter = (await getCard(t.repos, card.cardId)).certificateNotAfter!;
  const nearEnd = new TestClock(new Date(Date.parse(notAfter) - 20 * 86_400_000));
  const agentThen = await as(staff.agent, nearEnd);
  assert.ok(ids(await cardsExpiringReport(agentThen, { withinDays: 30 }), 'cardId').includes(card.cardId));
  const earlier = new TestClock(new Date(Date.parse(notAfter) - 60 * 86_400_000));
  const agentEarlier = await as(staff.agent, earlier);
  assert.equal(ids(await cardsExpiringReport(agentEarlier, { withinDays: 30 }), 'cardId').includes(card.cardId), false);
  assert.ok(ids(await cardsExpiringReport(agentEarlier, { withinDays: 90 }), 'cardId').includes(card.cardId));
  // a sponsor has no report:view
  await rejects(pendingRequestsReport(await as(staff.sponsor)), 'auth.forbidden');
});

// ---------------------------------------------------------------------------------------------------------------
// Through HTTP

async function httpApp(): Promise<FastifyInstance> {
  if (app) return app;
  const config = loadConfig({
    PORT: '0',
    LOG_LEVEL: 'silent',
    ALLOW_EXAMPLE_NI_PREFIX: 'true',
    PUBLIC_URL: 'http://localhost:3000',
  });
  app = await buildApp({
    config,
    db: t.db,
    sealer: testSealer,
    clock,
    logger: false,
    transport: { send: async () => {} },
  });
  return app;
}

interface Browser {
  cookie: string;
  csrf: string;
}

async function signedIn(userId: string): Promise<Browser> {
  const a = await httpApp();
  const page = await a.inject({ method: 'GET', url: '/signin' });
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

async function call(
  b: Browser | null,
  method: 'GET' | 'POST',
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const a = await httpApp();
  return a.inject({
    method,
    url,
    headers: {
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(b ? { cookie: b.cookie, 'csrf-token': b.csrf } : {}),
      ...headers,
    },
    ...(body !== undefined ? { payload: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
}

const errorCode = (res: { json(): unknown }) => (res.json() as { error: { code: string } }).error.code;

test(`[${backend}] HTTP: RA routes need an AAL3 session, a CSRF token for changes, and the policy's permission`, async () => {
  const p = await newPerson();
  const agent = await signedIn(staff.agent);
  const body = { userId: p.userId, positionId: pos.clerk, startDate: TODAY, reason: 'via HTTP' };

  const noSession = await call(null, 'GET', '/api/v1/access-requests');
  assert.equal(noSession.statusCode, 401);
  assert.equal(errorCode(noSession), 'auth.required');

  const noCsrf = await call(agent, 'POST', '/api/v1/access-requests', body, { 'csrf-token': '' });
  assert.equal(noCsrf.statusCode, 403);
  assert.equal(errorCode(noCsrf), 'auth.csrf_invalid');

  const sponsor = await signedIn(staff.sponsor);
  const created = await call(sponsor, 'POST', '/api/v1/access-requests', body);
  assert.equal(created.statusCode, 201, created.body);
  const requestId = (created.json() as { request: { requestId: string } }).request.requestId;

  const other = await signedIn(staff.otherAgent);
  const outOfScope = await call(other, 'POST', `/api/v1/access-requests/${requestId}/approve`, {});
  assert.equal(outOfScope.statusCode, 403);
  assert.equal(errorCode(outOfScope), 'auth.forbidden');

  const approved = await call(agent, 'POST', `/api/v1/access-requests/${requestId}/approve`, {});
  assert.equal(approved.statusCode, 200, approved.body);
  const again = await call(agent, 'POST', `/api/v1/access-requests/${requestId}/approve`, {});
  assert.equal(again.statusCode, 409);
  assert.equal(errorCode(again), 'access_request.already_decided');

  const seen = await call(sponsor, 'GET', `/api/v1/access-requests/${requestId}`);
  assert.equal(seen.statusCode, 200);
  assert.equal((seen.json() as { status: string }).status, 'approved');

  const search = await call(agent, 'POST', '/api/v1/people/search', { familyName: p.familyName });
  assert.equal(search.statusCode, 200, search.body);
  assert.deepEqual(
    (search.json() as { people: { userId: string }[] }).people.map((x) => x.userId),
    [p.userId],
  );

  const report = await call(agent, 'GET', '/api/v1/reports/pending-requests?limit=5');
  assert.equal(report.statusCode, 200, report.body);
  const doc = (await httpApp()).swagger() as { paths: Record<string, unknown> };
  for (const path of [
    '/api/v1/access-requests',
    '/api/v1/applications',
    '/api/v1/people/search',
    '/api/v1/reports/leavers',
  ]) {
    assert.ok(doc.paths[path], path);
  }
});

test(`[${backend}] HTTP: hostile bodies and parameters get 4xx, never 500`, async () => {
  const agent = await signedIn(staff.agent);
  const cases: [string, string, unknown, number][] = [
    ['POST', '/api/v1/access-requests', '{not json', 400],
    ['POST', '/api/v1/access-requests', [1, 2, 3], 400],
    [
      'POST',
      '/api/v1/access-requests',
      { userId: '../../etc/passwd', positionId: pos.clerk, startDate: TODAY, reason: 'x' },
      400,
    ],
    ['POST', '/api/v1/access-requests', '{"__proto__": {"admin": true}, "userId": 1}', 400],
    ['POST', '/api/v1/access-requests', '{"constructor": {"prototype": {"admin": true}}}', 400],
    [
      'POST',
      '/api/v1/access-requests',
      { userId: staff.sponsor, positionId: pos.clerk, startDate: TODAY, reason: 'x'.repeat(2_000_000) },
      413,
    ],
    ['POST', '/api/v1/access-requests/abc/approve', {}, 404],
    ['POST', '/api/v1/people/123/suspend', { reason: 'x' }, 400],
    ['POST', '/api/v1/people/search', { familyName: 'a' }, 400],
    ['POST', '/api/v1/people/search', {}, 400],
    ['POST', '/api/v1/identity-checks', { person: { givenName: 'x' }, method: 'telepathy' }, 400],
    ['GET', '/api/v1/reports/cards-expiring?withinDays=-5', undefined, 400],
    ['GET', '/api/v1/access-requests?status=everything', undefined, 400],
    ['GET', '/api/v1/applications/..%2F..%2Fetc', undefined, 404],
  ];
  for (const [method, url, body, status] of cases) {
    const res = await call(agent, method as 'GET' | 'POST', url, body);
    assert.equal(res.statusCode, status, `${method} ${url}: ${res.body.slice(0, 200)}`);
    assert.ok(errorCode(res));
  }
});

test(`[${backend}] HTTP: Apply for Care ID is public and takes two images; a person's photo is served as an image only`, async () => {
  const res = await call(null, 'POST', '/api/v1/applications', application());
  assert.equal(res.statusCode, 201, res.body);
  const { applicationId } = res.json() as { applicationId: string };
  assert.deepEqual(Object.keys(res.json() as object).sort(), ['applicationId', 'status']);
  const bad = await call(
    null,
    'POST',
    '/api/v1/applications',
    application({ photoIdImage: photo(Buffer.from('%PDF-1.7')) }),
  );
  assert.equal(bad.statusCode, 400);
  assert.equal(errorCode(bad), 'photo.invalid');

  const agent = await signedIn(staff.agent);
  const detail = await call(agent, 'GET', `/api/v1/applications/${applicationId}`);
  assert.equal(detail.statusCode, 200);
  const { selfiePhotoId } = detail.json() as { selfiePhotoId: string };
  const image = await call(agent, 'GET', `/api/v1/applications/${applicationId}/images/${selfiePhotoId}`);
  assert.equal(image.statusCode, 200);
  assert.equal(image.headers['content-type'], 'image/png');
  assert.match(String(image.headers['content-security-policy']), /sandbox/);
  assert.equal(image.headers['x-content-type-options'], 'nosniff');
  const anon = await call(null, 'GET', `/api/v1/applications/${applicationId}`);
  assert.equal(anon.statusCode, 401);
});
