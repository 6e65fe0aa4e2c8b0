import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, test } from 'node:test';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { nationalIdFromSequence } from '../../src/domain/identity/user-id.ts';
import { cardConfigFrom } from '../../src/http/deps.ts';
import { ensureCertificateAuthority, issueAuthenticationCertificate } from '../../src/services/certificates.ts';
import { expiryForecast } from '../../src/services/expiry-forecast.ts';
import { expiryForecastReport } from '../../src/services/operations-reports.ts';
import { TestClock, testContext, testSealer } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';

/**
 * Expiry waves (the 2022 CIS incident: ~140,000 smartcard certificates expiring together). Certificates issued on one
 * day must not expire on one day; the forecast and the alert metric show a wave coming.
 */
let t: TestDatabase;
const clock = new TestClock(new Date('2026-11-26T09:00:00Z'));
const ctx = () => testContext(t.db, { clock });
const spki = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' });
let next = 90_000_000_000n;
/**
 * How many are issued on the one day: 10,000 on PostgreSQL (four at a time, about a minute here); 2,000 on PGlite, which
 * issues one at a time at ~20 ms each (10,000 would add four minutes to every run of the PGlite suite).
 */
const COUNT = backend === 'postgres' ? 10_000 : 2_000;
const FEWEST = Math.floor(COUNT / 29);
const MOST = Math.ceil(COUNT / 29);

before(async () => {
  t = await createTestDatabase();
  await ensureCertificateAuthority(ctx());
});
after(() => t.close());

async function issue(count: number, expirySpreadDays: number): Promise<void> {
  // Several at once on PostgreSQL, as several RA desks and card agents would; PGlite runs them one by one anyway.
  const parallel = backend === 'postgres' ? 4 : 1;
  let left = count;
  const worker = async () => {
    while (left > 0) {
      left--;
      await issueAuthenticationCertificate(ctx(), {
        userId: nationalIdFromSequence(next++),
        cardId: null,
        publicKeySpki: spki,
        publicUrl: 'http://localhost:3000',
        expirySpreadDays,
      });
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

async function scrape(): Promise<string> {
  const config = loadConfig({ DATA_DIR: '/tmp/opencis-unused', LOG_LEVEL: 'silent', DEMO_DATA: 'false' });
  const app = await buildApp({
    config,
    db: t.db,
    sealer: testSealer,
    clock,
    logger: false,
    transport: { send: async () => {} },
  });
  try {
    return (await app.inject({ method: 'GET', url: '/metrics' })).body;
  } finally {
    await app.close();
  }
}

const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);

test(`[${backend}] ${COUNT.toLocaleString('en-GB')} certificates issued on one simulated day expire over 29 days, at most ⌈${COUNT} / 29⌉ a day: no wave`, async (tc) => {
  assert.equal(cardConfigFrom(loadConfig({})).expirySpreadDays, 14, 'cards spread ± 14 days by default');
  await issue(COUNT, 14);
  const f = await expiryForecast(t.repos, clock.now(), { days: 1_095, alertPercent: 5 });
  const busy = f.days.filter((d) => d.expiring > 0);
  tc.diagnostic(`expiries per day: ${busy.map((d) => `${d.date} ${d.expiring}`).join(', ')}`);
  assert.equal(f.total, COUNT);
  assert.equal(busy.length, 29, 'every day of the ± 14-day window');
  assert.equal(busy[0]!.date, '2028-11-11');
  assert.equal(busy.at(-1)!.date, '2028-12-09');
  // Sequential issuing fills the quietest day each time (10,000 = 29 × 344 + 24). Concurrent issues may read the same
  // counts and pick the same day, a few over.
  const most = Math.max(...busy.map((d) => d.expiring));
  const fewest = Math.min(...busy.map((d) => d.expiring));
  if (backend === 'pglite') assert.deepEqual([fewest, most], [FEWEST, MOST]);
  assert.ok(most <= MOST + 8 && fewest >= FEWEST - 8, `${fewest}…${most}`);
  assert.ok(most < f.threshold, `busiest day ${most}, wave threshold ${f.threshold} (5 % of ${COUNT})`);
  assert.deepEqual(f.waveDays, []);
  // Without the spread, all of them would have been on 2028-11-25: 100 % of the year's expiries on one day.
  const page = await scrape();
  assert.equal(metric(page, 'opencis_certificate_expiry_wave_alert'), 0);
  assert.equal(metric(page, 'opencis_certificate_expiries_next_year'), 0, '(none within 12 months yet)');
});

test(`[${backend}] a batch issued with no spread makes a wave: the forecast marks the day and the alert metric fires`, async () => {
  clock.set('2028-01-10T09:00:00Z');
  await issue(600, 0);
  clock.set('2028-02-01T09:00:00Z');
  const f = await expiryForecast(t.repos, clock.now(), { days: 365, alertPercent: 5 });
  assert.equal(f.total, COUNT, 'the 600 expire after the next 12 months');
  const later = await expiryForecast(t.repos, new Date('2029-10-01T09:00:00Z'), { days: 365, alertPercent: 5 });
  assert.deepEqual(later.waveDays, ['2030-01-09']);
  assert.equal(later.peak?.expiring, 600);
  clock.set('2029-10-01T09:00:00Z');
  const page = await scrape();
  assert.equal(metric(page, 'opencis_certificate_expiry_wave_alert'), 1);
  assert.equal(metric(page, 'opencis_certificate_expiry_wave_days'), 1);
  assert.equal(metric(page, 'opencis_certificate_expiry_peak_day'), 600);
  // The RA report shows the same; out-of-range arguments are usage errors, and it is for RA staff only.
  const report = await expiryForecastReport(ctx(), 5, { days: '366' });
  assert.deepEqual(report.waveDays, ['2030-01-09']);
  assert.equal(report.days.length, 367);
  for (const days of ['0', '367', 'twelve', '-5']) {
    await assert.rejects(expiryForecastReport(ctx(), 5, { days }), { code: 'request.invalid' }, days);
  }
  await assert.rejects(
    expiryForecastReport(
      { ...ctx(), actor: { kind: 'person', id: 'p', userId: nationalIdFromSequence(90_000_000_000n), powers: [] } },
      5,
    ),
    { code: 'auth.forbidden' },
  );
  clock.set('2026-11-26T09:00:00Z');
});

test(`[${backend}] a spread wider than the validity, or outside 0–60 days, is refused`, async () => {
  for (const expirySpreadDays of [-1, 61, 1.5]) {
    await assert.rejects(
      issueAuthenticationCertificate(ctx(), {
        userId: nationalIdFromSequence(next++),
        cardId: null,
        publicKeySpki: spki,
        publicUrl: 'http://localhost:3000',
        expirySpreadDays,
      }),
      { code: 'pki.invalid_validity' },
    );
  }
});
