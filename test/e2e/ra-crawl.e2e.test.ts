import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { cardConfigFrom } from '../../src/http/deps.ts';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import { startCardIssue } from '../../src/services/cards.ts';
import { registerClient } from '../../src/services/clients.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { requestAccess, submitApplication } from '../../src/services/ra.ts';
import { personActorWithPowers } from '../../src/services/ra-powers.ts';
import { startSession } from '../../src/services/sessions.ts';
import { unitOfWork } from '../../src/storage/repositories/index.ts';
import { assertAccessible, launchBrowser } from '../support/browser.ts';
import { testContext } from '../support/context.ts';
import { tinyPng } from '../support/images.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

/*
 * Issue #14 acceptance 7: every console and portal page, signed in as an RA Manager, an RA Agent, a Sponsor and a
 * health worker, in one browser: axe-core (WCAG 2.2 A/AA) finds nothing, the page reflows at 320 CSS px without
 * scrolling sideways (WCAG 1.4.10), and the keyboard reaches its controls with a visible focus (2.1.1, 2.4.7).
 * TOUR_SCREENSHOTS=docs/tour writes the screenshots of docs/tour.md.
 */
let server: TestServer;
let browser: Browser;
const who = {} as Record<'manager' | 'agent' | 'sponsor' | 'worker' | 'subject' | 'starter', string>;
let ids: { roleId: string; requestId: string; applicationId: string; cardId: string; clientId: string };

before(async () => {
  server = await startTestServer({ CARD_TRANSPORT_SO_PIN: '24681357' });
  const op = server.operator();
  for (const o of [
    { odsCode: 'QWO', name: 'West Yorkshire ICB', type: 'icb' },
    { odsCode: 'RR8', name: 'Leeds Teaching Hospitals NHS Trust', type: 'trust', parentOdsCode: 'QWO' },
    { odsCode: 'RR813', name: "St James's University Hospital", type: 'site', parentOdsCode: 'RR8' },
  ]) {
    await saveOrganisation(op, o);
  }
  const position = async (ods: string, p: Record<string, unknown>) => (await createPosition(op, ods, p)).positionId;
  const manager = await position('RR8', { name: 'Registration Authority Manager', jobRoles: ['R5080'] });
  const agent = await position('RR8', { name: 'Registration Authority Agent', jobRoles: ['R5090'] });
  const sponsor = await position('RR8', { name: 'Ward manager', jobRoles: ['R8000'], activities: ['B1300'] });
  const nurse = await position('RR813', { name: 'Staff nurse, ward 7', jobRoles: ['R8001'], assignable: true });
  const clerk = await position('RR813', { name: 'Ward clerk, ward 7', jobRoles: ['R8010'] });
  const today = server.clock.now().toISOString().slice(0, 10);
  const hire = async (p: Record<string, unknown>, positionId?: string) => {
    const person = await registerPerson(op, { dateOfBirth: '1984-03-02', identityAssuranceLevel: 3, ...p });
    const rp = positionId ? await assignRoleProfile(op, { userId: person.userId, positionId, startDate: today }) : null;
    return { userId: person.userId, roleId: rp?.personRoleId ?? '' };
  };
  who.manager = (
    await hire({ givenName: 'Grace', familyName: 'Okafor', email: 'grace.okafor@example.nhs.uk' }, manager)
  ).userId;
  who.agent = (await hire({ givenName: 'Aisha', familyName: 'Begum' }, agent)).userId;
  who.sponsor = (await hire({ givenName: 'Sam', familyName: 'Patel' }, sponsor)).userId;
  const subject = await hire(
    { givenName: 'Priya', familyName: 'Raman', niNumber: 'JK123456C', email: 'priya.raman@example.nhs.uk' },
    nurse,
  );
  who.subject = subject.userId;
  who.worker = who.subject;
  who.starter = (await hire({ givenName: 'Noah', familyName: 'Raman' })).userId;
  const sponsorCtx = testContext(server.t.db, {
    clock: server.clock,
    actor: await personActorWithPowers(server.t.repos, who.sponsor, server.clock.now()),
  });
  const { request } = await requestAccess(sponsorCtx, {
    userId: who.starter,
    positionId: clerk,
    startDate: today,
    reason: 'Starts on ward 7 on Monday',
  });
  const application = await submitApplication(
    testContext(server.t.db, { clock: server.clock, actor: { kind: 'system', id: 'web:apply-for-care-id' } }),
    {
      applicant: {
        givenName: 'Amara',
        familyName: 'Eze',
        dateOfBirth: '1996-12-01',
        email: 'amara.eze@example.nhs.uk',
      },
      odsCode: 'RR813',
      selfie: { data: tinyPng().toString('base64') },
      photoIdImage: { data: tinyPng().toString('base64') },
    },
    { ip: '192.0.2.10' },
  );
  const { card } = await startCardIssue(op, cardConfigFrom(server.config), { userId: who.subject, kind: 'physical' });
  await server.t.db.query(
    `INSERT INTO webauthn_credentials (credential_id, user_id, public_key, sign_count, aaguid, attestation_format,
       backup_eligible, backed_up, kind, aal, nickname, status, created_at)
     VALUES ('crawl-credential-0000001', $1, '\\x00', 0, '00000000-0000-0000-0000-000000000000', 'none', false, false,
       'security_key', 2, 'Blue key', 'active', now())`,
    [who.subject],
  );
  const { client } = await registerClient(op, {
    name: 'Leeds EPR',
    odsCode: 'RR8',
    redirectUris: ['https://epr.example.nhs.uk/callback'],
    tokenEndpointAuthMethod: 'client_secret_basic',
  });
  ids = {
    roleId: subject.roleId,
    requestId: request.requestId,
    applicationId: application.applicationId,
    cardId: card.cardId,
    clientId: client.clientId,
  };
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** A browser signed in as `userId` at `aal` (the sign-in itself is tested elsewhere: here, the pages). */
async function signedInPage(userId: string, aal: 2 | 3): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const { token } = await unitOfWork(server.t.db)((tx) =>
    startSession(
      tx,
      server.operator(),
      {
        userId,
        aal,
        amr: [aal === 3 ? 'SMARTCARD' : 'TOTP'],
        authenticatorId: aal === 3 ? 'card:crawl' : 'totp:crawl',
      },
      null,
      { ip: null, userAgent: null },
    ),
  );
  await context.addCookies([{ name: 'opencis_session', value: token, url: server.url }]);
  return context.newPage();
}

/** The element with the focus: whether the focus is visible on it, and whether it is in the main content. */
async function focused(page: Page): Promise<{ none: boolean; visible?: boolean; inMain?: boolean; what?: string }> {
  return (await page.evaluate(`(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return { none: true };
    const s = getComputedStyle(el);
    const visible = (s.outlineStyle !== 'none' && s.outlineWidth !== '0px') || s.boxShadow !== 'none'
      || s.backgroundColor === 'rgb(255, 235, 59)';
    return { none: false, visible, inMain: !!el.closest('main'),
      what: el.tagName + '#' + el.id + ' ' + (el.textContent || '').trim().slice(0, 40) };
  })()`)) as { none: boolean; visible?: boolean; inMain?: boolean; what?: string };
}

/**
 * The keyboard: the first Tab reaches the skip link, which takes the focus to the main content, where Tab reaches
 * its controls — each with a visible focus. On a role's first page every stop of the header is checked too.
 */
/** Puts the keyboard's starting point back at the top of the page, as on arrival. */
async function resetFocus(page: Page): Promise<void> {
  await page.evaluate(
    "document.body.setAttribute('tabindex', '-1'); document.body.focus(); document.body.removeAttribute('tabindex'); window.scrollTo(0, 0)",
  );
}

async function keyboardCheck(page: Page, label: string, whole: boolean): Promise<void> {
  await resetFocus(page);
  if (whole) {
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press('Tab');
      const f = await focused(page);
      if (f.none || f.inMain) break;
      assert.ok(f.visible, `${label}: the focus is visible on ${f.what}`);
    }
    await resetFocus(page);
  }
  await page.keyboard.press('Tab');
  const skip = await focused(page);
  assert.match(skip.what ?? '', /^A# Skip to main content/, `${label}: the first Tab reaches the skip link`);
  assert.ok(skip.visible, `${label}: the skip link's focus is visible`);
  await page.keyboard.press('Enter');
  let reached = 0;
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press('Tab');
    const f = await focused(page);
    if (f.none) break;
    assert.ok(f.visible, `${label}: the focus is visible on ${f.what}`);
    if (f.inMain) reached++;
  }
  assert.ok(reached > 0, `${label}: the keyboard reaches the main content`);
}

/** At 320 CSS px the page reflows: nothing makes the whole page scroll sideways (wide tables scroll in place). */
async function reflowCheck(page: Page, label: string): Promise<void> {
  await page.setViewportSize({ width: 320, height: 640 });
  // The design system's header script moves the menu items that no longer fit under "More" on resize.
  await page
    .waitForFunction(
      'document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1 && ((document.querySelector(".nhsuk-header__navigation-list") || {}).offsetHeight || 0) <= 60',
      undefined,
      { timeout: 2_000 },
    )
    .catch(() => {});
  const widths = (await page.evaluate(
    '({ page: document.documentElement.scrollWidth, view: document.documentElement.clientWidth, nav: (document.querySelector(".nhsuk-header__navigation-list") || {}).offsetHeight || 0 })',
  )) as { page: number; view: number; nav: number };
  if (widths.page > widths.view + 1) {
    // Name what sticks out, to make the failure readable.
    const wide = await page.evaluate(
      `[...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).slice(0, 6).map((e) => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join(' | ')`,
    );
    assert.fail(`${label}: at 320 px the page is ${widths.page} px wide (view ${widths.view}): ${wide}`);
  }
  assert.ok(widths.nav <= 60, `${label}: at 320 px the menu is one row (${widths.nav} px high)`);
  await page.setViewportSize({ width: 1280, height: 900 });
}

const tour = process.env.TOUR_SCREENSHOTS;

async function crawl(page: Page, role: string, pages: [string, number, string?][]): Promise<number> {
  let first = true;
  for (const [path, status, shot] of pages) {
    const label = `${role} ${path}`;
    const res = await page.goto(`${server.url}${path}`);
    assert.equal(
      res?.status(),
      status,
      `${label}: ${(await page.textContent('main'))?.replace(/\s+/g, ' ').slice(0, 200)}`,
    );
    assert.equal(new URL(page.url()).pathname, path.split('?')[0], `${label} is not redirected`);
    await assertAccessible(page, label);
    await keyboardCheck(page, label, first);
    first = false;
    await reflowCheck(page, label);
    if (tour && shot) {
      mkdirSync(tour, { recursive: true });
      const file = join(tour, `${shot}.png`);
      await page.setViewportSize({ width: 1024, height: 768 });
      await page.evaluate('document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)');
      await page.waitForTimeout(300);
      await page.screenshot({ path: file, fullPage: false });
      await page.setViewportSize({ width: 1280, height: 900 });
      execFileSync('pngquant', ['--force', '--ext', '.png', '--quality', '40-70', '--speed', '1', file]);
    }
  }
  return pages.length;
}

test('every console and portal page, as an RA Manager, an RA Agent, a Sponsor and a health worker: axe, keyboard, 320 px', async () => {
  const p = (rest: string) => `/ra/people/${who.subject}${rest}`;
  const c = `/ra/clients/${ids.clientId}`;
  const roles: (() => Promise<number>)[] = [];
  roles.push(async () =>
    crawl(await signedInPage(who.manager, 3), 'RA Manager', [
      ['/ra', 200, '01-ra-home'],
      ['/ra/people/search', 200],
      ['/ra/people/search?familyName=Raman', 200, '02-search-results'],
      ['/ra/people/search?org=RR813&status=active&sort=dob', 200],
      ['/ra/people/new', 200, '04-register'],
      [p(''), 200, '03-person'],
      [p('/name'), 200],
      [p('/suspend'), 200],
      [p('/leaver'), 200],
      [p('/access'), 200],
      [p('/access?org=RR813'), 200],
      [p('/identity-check'), 200],
      [p('/invite'), 200, '05-invite'],
      [p(`/roles/${ids.roleId}/dates`), 200],
      [p(`/roles/${ids.roleId}/end`), 200],
      [p('/cards/new'), 200],
      [p(`/cards/${ids.cardId}/cancel`), 200],
      [p('/authenticators/webauthn%3Acrawl-credential-0000001/remove'), 200, '06-confirm-removal'],
      [`/ra/cards/${ids.cardId}/face`, 200],
      ['/ra/requests', 200],
      [`/ra/requests/${ids.requestId}`, 200, '07-request'],
      ['/ra/applications', 200],
      ['/ra/applications?status=rejected', 200],
      [`/ra/applications/${ids.applicationId}`, 200],
      ['/ra/organisations/RR8', 200, '08-organisation'],
      ['/ra/reports', 200, '09-reports'],
      ['/ra/reports?org=RR813', 200],
      ['/ra/audit', 200, '10-audit'],
      [`/ra/audit?person=${who.subject}`, 200],
      ['/ra/clients', 200, '11-clients'],
      ['/ra/clients/new', 200],
      [c, 200, '12-client'],
      [`${c}/edit`, 200],
      [`${c}/disable`, 200],
      [`${c}/rekey`, 200],
      ['/account', 200],
    ]),
  );

  roles.push(async () =>
    crawl(await signedInPage(who.agent, 3), 'RA Agent', [
      ['/ra', 200],
      ['/ra/people/search?familyName=Raman', 200],
      [p(''), 200],
      [p('/suspend'), 200],
      [p('/invite'), 200],
      ['/ra/people/new', 200],
      ['/ra/requests', 200],
      [`/ra/requests/${ids.requestId}`, 200],
      ['/ra/applications', 200],
      ['/ra/reports', 200],
      ['/ra/audit', 403],
      ['/ra/clients', 403],
      ['/account', 200],
    ]),
  );

  roles.push(async () =>
    crawl(await signedInPage(who.sponsor, 3), 'Sponsor', [
      ['/ra', 200],
      ['/ra/people/search?familyName=Raman', 200],
      [p(''), 200],
      [p('/access?org=RR813'), 200],
      ['/ra/requests', 200],
      [`/ra/requests/${ids.requestId}`, 200],
      ['/ra/reports', 403],
      ['/account', 200],
    ]),
  );

  // A health worker (AAL2: an authenticator app): their account and the self-service pages; the console explains.
  roles.push(async () =>
    crawl(await signedInPage(who.worker, 2), 'health worker', [
      ['/account', 200, '13-account'],
      ['/signin?return=%2Fra&aal=3', 200, '14-signin-below-aal3'],
      ['/enrol', 200],
      ['/card/unlock', 200],
      ['/', 200],
      ['/apply', 200],
    ]),
  );
  roles.push(async () =>
    crawl(await signedInPage(who.worker, 3), 'health worker at AAL3', [
      ['/ra', 403],
      ['/account', 200],
    ]),
  ); // The roles in parallel, each in its own browser context (axe's work is in the browser, on both cores).
  const visited = (await Promise.all(roles.map((r) => r()))).reduce((a, b) => a + b, 0);
  console.log(`crawled ${visited} pages: axe, keyboard and 320 px reflow on each`);
});
