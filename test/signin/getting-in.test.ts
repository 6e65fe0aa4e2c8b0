import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { attestationChainTrusted } from '../../src/authenticators/webauthn/attestation-trust.ts';
import { DEMO_AAGUID } from '../../src/authenticators/webauthn/demo-trust.ts';
import { loadConfig } from '../../src/config.ts';
import { relyingPartyFrom } from '../../src/http/deps.ts';
import { bootstrapRaManager } from '../../src/services/bootstrap.ts';
import { isDemoInstallation, seedDemo } from '../../src/services/demo.ts';
import { peekInvitation } from '../../src/services/enrolment.ts';
import { startBanner } from '../../src/services/start-banner.ts';
import { repositoriesOn } from '../../src/storage/repositories/index.ts';
import { cliEnvFor, runOpencis } from '../support/cli.ts';
import { type ConsoleHarness, consoleHarness } from '../support/console.ts';
import { testContext } from '../support/context.ts';
import { backend, createTestDatabase, type TestDatabase } from '../support/db.ts';

/*
 * Getting in (issue #14 acceptance 1–2): a sign-in below the level a page needs says which level, why and what to do;
 * `opencis bootstrap` on a database with an RA Manager says so and names them; demo mode — and only demo mode — prints
 * a one-time link for the demo RA Manager and trusts Chromium's virtual security key.
 */
let h: ConsoleHarness;

before(async () => {
  h = await consoleHarness();
});
after(async () => h?.close());

async function credential(userId: string, id: string, c: { aaguid: string; fmt: string; synced: boolean }) {
  await h.t.db.query(
    `INSERT INTO webauthn_credentials (credential_id, user_id, public_key, sign_count, aaguid, attestation_format,
       backup_eligible, backed_up, kind, aal, nickname, status, created_at)
     VALUES ($1, $2, '\\x00', 0, $3, $4, $5, $5, $6, 2, 'Blue key', 'active', now())`,
    [id, userId, c.aaguid, c.fmt, c.synced, c.synced ? 'passkey' : 'security_key'],
  );
}

async function sessionWith(userId: string, authenticatorId: string, aal: 1 | 2) {
  const b = await h.signedIn(userId, aal === 1 ? 1 : 2);
  // (signedIn makes a TOTP-shaped session at AAL2: point it at the authenticator under test.)
  await h.t.db.query(
    'UPDATE web_sessions SET authenticator_id = $2, aal = $3 WHERE user_id = $1 AND ended_at IS NULL',
    [userId, authenticatorId, aal],
  );
  return b;
}

test(`[${backend}] a sign-in below AAL3 at the RA console says which level it reached, why, and what to do`, async () => {
  const manager = await h.person(
    { givenName: 'Grace', familyName: 'Okafor' },
    await h.position('RR8', { name: 'RA Manager', jobRoles: ['R5080'] }),
  );
  const cases = [
    [
      { aaguid: '2fc0579f-8113-47ea-b116-bb5a8db9202a', fmt: 'packed', synced: false },
      /model is not on this server&#39;s trusted list \(WEBAUTHN_AAL3_AAGUIDS\)/,
    ],
    [{ aaguid: '2fc0579f-8113-47ea-b116-bb5a8db9202a', fmt: 'none', synced: false }, /did not say who made it/],
    [
      { aaguid: '00000000-0000-0000-0000-000000000000', fmt: 'none', synced: true },
      /passkey that syncs between devices/,
    ],
  ] as const;
  let i = 0;
  for (const [c, why] of cases) {
    const id = `below-aal3-credential-${++i}`;
    await credential(manager, id, c);
    const b = await sessionWith(manager, `webauthn:${id}`, 2);
    // The console sends the AAL2 session to sign in at AAL3 …
    const ra = await h.get(b, '/ra');
    assert.equal(ra.headers.location, '/signin?return=%2Fra&aal=3');
    // … where the page now explains, instead of showing the same sign-in page with no word.
    const page = await h.get(b, String(ra.headers.location));
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /id="assurance-explained"/);
    assert.match(page.body, /This needs AAL3; you are signed in at AAL2/);
    assert.match(
      page.body,
      /You signed in with your (security key|passkey) &quot;Blue key&quot;\. It counts as AAL2 because/,
    );
    assert.match(page.body, why);
    assert.match(
      page.body,
      /What to do:<\/strong> sign in below with a smartcard, or with a security key or Windows Hello/,
    );
    assert.match(page.body, /WEBAUTHN_ATTESTATION_ROOTS/);
  }
  // A key whose model is listed but whose maker's chain is not trusted.
  const listed = await consoleHarness({ WEBAUTHN_AAL3_AAGUIDS: '2fc0579f-8113-47ea-b116-bb5a8db9202a' });
  try {
    const p = await listed.person({}, await listed.position('RR8', { name: 'RA Manager', jobRoles: ['R5080'] }));
    await listed.t.db.query(
      `INSERT INTO webauthn_credentials (credential_id, user_id, public_key, sign_count, aaguid, attestation_format,
         backup_eligible, backed_up, kind, aal, nickname, status, created_at)
       VALUES ('listed-model-credential', $1, '\\x00', 0, '2fc0579f-8113-47ea-b116-bb5a8db9202a', 'packed', false, false,
         'security_key', 2, 'Green key', 'active', now())`,
      [p],
    );
    const b = await listed.signedIn(p, 2);
    await listed.t.db.query(
      "UPDATE web_sessions SET authenticator_id = 'webauthn:listed-model-credential' WHERE user_id = $1",
      [p],
    );
    const page = await listed.get(b, '/signin?return=%2Fra&aal=3');
    assert.match(
      page.body,
      /maker is not on the trusted list: its attestation does not chain to a root in WEBAUTHN_ATTESTATION_ROOTS/,
    );
  } finally {
    await listed.close();
  }
  // An authenticator app.
  const b = await sessionWith(manager, 'totp:some-app', 2);
  assert.match(
    (await h.get(b, '/signin?return=%2Fra&aal=3')).body,
    /It counts as AAL2 because codes from an authenticator app can be phished/,
  );
  // Not signed in: no explanation, just the sign-in.
  assert.doesNotMatch((await h.get(null, '/signin?return=%2Fra&aal=3')).body, /assurance-explained/);
});

test(`[${backend}] the account page says why a security key counts as AAL2`, async () => {
  const p = await h.person({ givenName: 'Kim', familyName: 'Keyholder' });
  await credential(p, 'account-page-credential', {
    aaguid: '2fc0579f-8113-47ea-b116-bb5a8db9202a',
    fmt: 'packed',
    synced: false,
  });
  const page = await h.get(await h.signedIn(p, 2), '/account');
  assert.match(page.body, /AAL2 because this key&#39;s model is not on this server&#39;s trusted list/);
});

test(`[${backend}] opencis bootstrap on a database that has an RA Manager says so and names them`, async () => {
  let t: TestDatabase | null = null;
  let demoDb: TestDatabase | null = null;
  if (backend === 'postgres') {
    t = await createTestDatabase();
    demoDb = await createTestDatabase();
  }
  try {
    const env = { ...cliEnvFor(t), DEMO_DATA: 'false' };
    const args = (given: string) => [
      'bootstrap',
      '--ods',
      'RR8',
      '--org-name',
      'Leeds Teaching Hospitals',
      '--given-name',
      given,
      '--family-name',
      'Okafor',
      '--date-of-birth',
      '1975-06-30',
      '--email',
      `${given.toLowerCase()}@example.nhs.uk`,
    ];
    const first = await runOpencis(args('Grace'), env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /One-time enrolment link/);
    const again = await runOpencis(args('Gary'), env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /An RA Manager already exists, so there is nothing to bootstrap/);
    assert.match(again.stderr, /\[bootstrap\.ra_manager_exists\]/);
    assert.match(again.stderr, /\d{12} {2}Grace Okafor, Leeds Teaching Hospitals \(RR8\)/);
    assert.match(again.stderr, /Ask one of them to appoint you in the RA console/);
    assert.doesNotMatch(again.stderr, /You do not have permission/);
    // On demo data: the demo RA Manager is named, and the way in.
    const demoEnv = cliEnvFor(demoDb);
    const seeded = await runOpencis(['seed', '--demo'], demoEnv);
    assert.equal(seeded.code, 0, seeded.stderr);
    const onDemo = await runOpencis(args('Gary'), { ...demoEnv, DEMO_DATA: 'true' });
    assert.equal(onDemo.code, 1);
    assert.match(onDemo.stderr, /Alex Morgan, Demo Teaching Hospitals NHS Trust \(RR8\)/);
    assert.match(
      onDemo.stderr,
      /Alex Morgan is the demo RA Manager\. Start the server \(npm start\) and follow the one-time link/,
    );
  } finally {
    await t?.close();
    await demoDb?.close();
  }
});

test(`[${backend}] demo mode prints a one-time link for the demo RA Manager and trusts Chromium's virtual key; outside it, nothing of this exists`, async () => {
  const chromiumCert = new X509Certificate(readFileSync('data/demo/chromium-virtual-authenticator.pem'));
  const at = new Date('2026-11-26T09:00:00Z');
  const seeded = await createTestDatabase();
  const bare = await createTestDatabase();
  try {
    const ctx = testContext(seeded.db, { clock: h.clock });
    await seedDemo({ ...ctx, actor: { kind: 'system', id: 'system:demo-seed' } });
    assert.equal(await isDemoInstallation(repositoriesOn(seeded.db)), true);
    const invitations = async () =>
      Number(
        (await seeded.db.query<{ n: string }>('SELECT count(*)::text AS n FROM enrolment_invitations')).rows[0]!.n,
      );

    // Demo mode: DEMO_DATA on and the demo data seeded.
    const demoConfig = loadConfig({ DEMO_DATA: 'true', PUBLIC_URL: 'http://localhost:3000', LOG_LEVEL: 'silent' });
    const lines = await startBanner(ctx, demoConfig, 'http://localhost:3000', true);
    const text = lines.join('\n');
    assert.match(text, /DEMO MODE/);
    assert.match(text, /\d{12} {2}Alex Morgan +RA Manager at Demo Teaching Hospitals \(RR8\)/);
    assert.match(text, /\d{12} {2}Priya Shah +RA Agent at RR8/);
    assert.match(text, /DevTools > More tools > WebAuthn/);
    const link = /(http:\/\/localhost:3000\/enrol\/invite\?t=([A-Za-z0-9_-]{43}))/.exec(text)!;
    const invite = await peekInvitation(ctx, link[2]);
    assert.equal(invite.maxAal, 3);
    const demoRp = relyingPartyFrom(demoConfig, { demo: true });
    assert.ok(demoRp.aal3Aaguids.has(DEMO_AAGUID));
    assert.equal(attestationChainTrusted([chromiumCert.raw], demoRp.attestationRoots.roots(), at), true);

    // DEMO_DATA off on the same (seeded) database: no link, no invitation made, the virtual key is not trusted.
    const before = await invitations();
    const offConfig = loadConfig({ DEMO_DATA: 'false', PUBLIC_URL: 'http://localhost:3000', LOG_LEVEL: 'silent' });
    const offText = (await startBanner(ctx, offConfig, 'http://localhost:3000', false)).join('\n');
    assert.doesNotMatch(offText, /DEMO MODE|enrol\/invite/);
    assert.equal(await invitations(), before);
    const offRp = relyingPartyFrom(offConfig, { demo: true });
    assert.ok(!offRp.aal3Aaguids.has(DEMO_AAGUID));
    assert.equal(attestationChainTrusted([chromiumCert.raw], offRp.attestationRoots.roots(), at), false);

    // DEMO_DATA on but a database that was never seeded with the demo: not demo mode.
    const bareCtx = testContext(bare.db, { clock: h.clock });
    assert.equal(await isDemoInstallation(repositoriesOn(bare.db)), false);
    const bareText = (await startBanner(bareCtx, demoConfig, 'http://localhost:3000', false)).join('\n');
    assert.doesNotMatch(bareText, /DEMO MODE|enrol\/invite/);
    assert.match(
      bareText,
      /No RA Manager yet: stop the server \(Ctrl-C\) and create the first one with `npx opencis bootstrap --help`/,
    );
    await bootstrapRaManager(
      bareCtx,
      {
        odsCode: 'RR8',
        orgName: 'Trust',
        givenName: 'Grace',
        familyName: 'Okafor',
        dateOfBirth: '1975-06-30',
        email: 'g@example.nhs.uk',
      },
      'http://localhost:3000',
    );
    assert.deepEqual(await startBanner(bareCtx, demoConfig, 'http://localhost:3000', false), []);
    // The running app: the console's WebAuthn trust follows the same rule (buildApp reads the demo marker).
    assert.ok(!relyingPartyFrom(demoConfig).aal3Aaguids.has(DEMO_AAGUID), 'no demo trust unless asked for');
  } finally {
    await seeded.close();
    await bare.close();
  }
});
