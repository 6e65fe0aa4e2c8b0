import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

/**
 * Debian's Chromium driven by playwright-core (never a downloaded browser). In CI a missing browser fails the run.
 * Flags from STACK.md: no sandbox (root), no background networking (the machine has no internet).
 */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install -y chromium`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
    ],
  });
}

export interface VirtualAuthenticator {
  id: string;
  /** Forgets every credential the authenticator holds (as if the key were reset). */
  clear(): Promise<void>;
  remove(): Promise<void>;
}

/** A CDP virtual authenticator: a security key (usb, device-bound) or a synced passkey provider (backup eligible). */
export async function addVirtualAuthenticator(
  context: BrowserContext,
  page: Page,
  options: { transport: 'usb' | 'internal'; backupEligible: boolean },
): Promise<VirtualAuthenticator> {
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      ctap2Version: 'ctap2_1',
      transport: options.transport,
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
      defaultBackupEligibility: options.backupEligible,
      defaultBackupState: options.backupEligible,
    },
  });
  return {
    id: authenticatorId,
    clear: async () => {
      await cdp.send('WebAuthn.clearCredentials', { authenticatorId });
    },
    remove: async () => {
      await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
    },
  };
}

/** Every page of a journey is checked with axe-core: no WCAG 2.x A/AA violation is allowed. */
export async function assertAccessible(page: Page, label: string): Promise<void> {
  const results = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'])
    .analyze();
  const violations = results.violations.map(
    (v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join('; ')})`,
  );
  assert.deepEqual(violations, [], `accessibility violations on ${label}`);
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync('test-results', { recursive: true });
  await page.screenshot({ path: join('test-results', `${name}.png`), fullPage: true });
}

/** Waits for the page to reach `url`; on failure says where the page is and what it shows, to make failures readable. */
export async function expectUrl(page: Page, url: string): Promise<void> {
  try {
    await page.waitForURL(url, { timeout: 20_000 });
  } catch (err) {
    const shown = (await page.textContent('main').catch(() => ''))?.replace(/\s+/g, ' ').trim().slice(0, 600);
    throw new Error(`expected ${url}, but the page is at ${page.url()} showing: ${shown}\n${(err as Error).message}`);
  }
}
