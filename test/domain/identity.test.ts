import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCalendarDate, ukDate } from '../../src/domain/dates.ts';
import { duplicateNameKey, normaliseName } from '../../src/domain/identity/names.ts';
import { isValidNiNumber, normaliseNiNumber } from '../../src/domain/identity/ni-number.ts';
import { newPersonSchema } from '../../src/domain/identity/person.ts';
import { isNationalId, luhnCheckDigit, nationalIdFromSequence } from '../../src/domain/identity/user-id.ts';

test('a user ID is 11 sequence digits and a Luhn check digit', () => {
  const id = nationalIdFromSequence(55507310310n);
  assert.equal(id.length, 12);
  assert.equal(id.slice(0, 11), '55507310310');
  assert.ok(isNationalId(id));
  assert.equal(luhnCheckDigit('7992739871'), 3); // the textbook Luhn example
});

test('a mistyped digit or two swapped neighbours fail the user ID check', () => {
  const id = nationalIdFromSequence(55507310310n);
  for (let i = 0; i < 12; i++) {
    const d = Number(id[i]);
    const typo = id.slice(0, i) + String((d + 1) % 10) + id.slice(i + 1);
    assert.equal(isNationalId(typo), false, `typo at ${i}`);
  }
  for (let i = 0; i < 11; i++) {
    if (id[i] === id[i + 1]) continue;
    const swapped = id.slice(0, i) + id[i + 1] + id[i] + id.slice(i + 2);
    if (`${id[i]}${id[i + 1]}` === '09' || `${id[i]}${id[i + 1]}` === '90') continue; // Luhn's one blind spot
    assert.equal(isNationalId(swapped), false, `swap at ${i}`);
  }
});

test('user IDs refuse other shapes', () => {
  for (const bad of ['', '12345678901', '1234567890123', '55507310310a', ' 555073103100', '055507310310']) {
    assert.equal(isNationalId(bad), false, bad);
  }
  assert.throws(() => nationalIdFromSequence(1));
  assert.throws(() => nationalIdFromSequence(100_000_000_000n));
});

test('NI numbers follow the HMRC prefix and suffix rules', () => {
  assert.ok(isValidNiNumber('AB123456C'));
  assert.ok(isValidNiNumber('ab 12 34 56 c'));
  assert.equal(normaliseNiNumber(' ab 12 34 56 c '), 'AB123456C');
  for (const bad of [
    'AB123456E',
    'AB12345C',
    'A1123456C',
    'DA123456A',
    'FA123456A',
    'AD123456A',
    'AO123456A',
    'BG123456A',
    'GB123456A',
    'NK123456A',
    'KN123456A',
    'NT123456A',
    'TN123456A',
    'ZZ123456A',
    'AB1234567',
    '',
  ]) {
    assert.equal(isValidNiNumber(bad), false, bad);
  }
});

test('the example prefix QQ is accepted only where demo data is allowed', () => {
  assert.equal(isValidNiNumber('QQ123456C'), false);
  assert.equal(isValidNiNumber('QQ123456C', { allowExamplePrefix: true }), true);
});

test('names normalise across case, accents and punctuation but keep non-Latin scripts', () => {
  assert.equal(normaliseName("O'Brien"), 'OBRIEN');
  assert.equal(normaliseName('o brien'), 'OBRIEN');
  assert.equal(normaliseName('Zoë'), 'ZOE');
  assert.equal(normaliseName('Nguyễn'), 'NGUYEN');
  assert.equal(normaliseName('王'), '王');
  assert.equal(normaliseName('Smith-Jones'), 'SMITHJONES');
  assert.equal(duplicateNameKey("O'Brien", 'Siobhán Mary'), 'OBRIEN|SIOBHAN');
});

test('calendar dates must exist', () => {
  assert.ok(isCalendarDate('2024-02-29'));
  for (const bad of [
    '2023-02-29',
    '2025-02-31',
    '2025-13-01',
    '2025-00-10',
    '2025-1-1',
    '20250101',
    '1799-12-31',
    'yesterday',
  ]) {
    assert.equal(isCalendarDate(bad), false, bad);
  }
});

test('the UK date follows Europe/London, not UTC', () => {
  assert.equal(ukDate(new Date('2026-06-30T23:30:00Z')), '2026-07-01'); // BST
  assert.equal(ukDate(new Date('2026-12-31T23:30:00Z')), '2026-12-31'); // GMT
});

const schema = newPersonSchema({ today: '2026-11-26', allowExampleNiPrefix: false });

test('a person record keeps apostrophes, accents, non-Latin scripts and SQL/HTML-looking text verbatim', () => {
  for (const name of [
    "O'Brien",
    'Zoë',
    'Nguyễn',
    '王',
    "Robert'); DROP TABLE people;--",
    '<script>alert(1)</script>',
  ]) {
    const res = schema.parse({ givenName: 'Test', familyName: name, dateOfBirth: '1990-01-01' });
    assert.equal(res.familyName, name);
  }
});

test('a person record refuses future and impossible dates of birth, empty, over-long and control-character fields', () => {
  const base = { givenName: 'Ann', familyName: 'Lee', dateOfBirth: '1990-01-01' };
  assert.ok(schema.safeParse(base).success);
  for (const bad of [
    { dateOfBirth: '2027-01-01' },
    { dateOfBirth: '2025-02-31' },
    { dateOfBirth: '1899-12-31' },
    { givenName: '' },
    { givenName: '   ' },
    { familyName: 'x'.repeat(101) },
    { familyName: 'Lee\u0000' },
    { niNumber: 'QQ123456C' },
    { niNumber: 'AB123456E' },
    { email: 'not-an-email' },
    { mobile: '12ab' },
    { identityAssuranceLevel: 4 },
  ]) {
    assert.equal(schema.safeParse({ ...base, ...bad }).success, false, JSON.stringify(bad));
  }
});
